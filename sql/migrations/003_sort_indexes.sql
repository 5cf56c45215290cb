-- The keyset sorts order by coalesce(date, '-infinity'): index exactly that expression, so a page
-- of papers or listings is an index range scan instead of a sort of the whole table.
DROP INDEX papers_last_listed_idx;
CREATE INDEX papers_recent_idx ON papers ((coalesce(last_listed, '-infinity'::date)) DESC, paper_key DESC);
-- listed_from / listed_to filters
CREATE INDEX papers_listed_span_idx ON papers (last_listed, first_listed);

DROP INDEX listings_listed_on_idx;
CREATE INDEX listings_recent_idx ON listings ((coalesce(listed_on, '-infinity'::date)) DESC, listing_key DESC);
