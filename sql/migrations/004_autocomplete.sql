-- Title autocomplete (sql/browse.py): titles that start with what was typed come from a btree range on the
-- lowercased title; the rest, nearest by trigram word similarity, from a GiST index, which (unlike the GIN
-- one kept for fuzzy matching) can return rows in order of distance, so LIMIT 10 reads about 10 rows.
CREATE INDEX papers_title_prefix_idx ON papers (lower(title) text_pattern_ops);
CREATE INDEX papers_title_trgm_gist_idx ON papers USING gist (title gist_trgm_ops);
