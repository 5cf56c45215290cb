-- New input formats are kinds of their own: generic JSON layouts (the documented rule or a --map),
-- arXiv Atom answers and RSS feeds, saved HTML listing pages.
ALTER TABLE listings DROP CONSTRAINT listings_kind_check;
ALTER TABLE listings ADD CONSTRAINT listings_kind_check
    CHECK (kind IN ('page', 'hf_daily', 'jsonl', 'json', 'atom', 'rss', 'html'));
