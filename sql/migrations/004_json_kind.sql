-- Generic JSON listings (any layout read by the documented rule or a --map) are a kind of their own.
ALTER TABLE listings DROP CONSTRAINT listings_kind_check;
ALTER TABLE listings ADD CONSTRAINT listings_kind_check CHECK (kind IN ('page', 'hf_daily', 'jsonl', 'json'));
