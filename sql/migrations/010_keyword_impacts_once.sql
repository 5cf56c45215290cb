-- Read each paper's tsvector once when writing its postings. Inlined into `FROM papers p,
-- keyword_impacts(p.search)`, migration 006's body took `length(doc)` for every stem, and every one of
-- those calls fetched the paper's tsvector from the TOAST table again: 95 fetches a paper. Behind
-- OFFSET 0 the length is taken once a paper. Measured on 50,000 papers (docs/design.md, "Bulk load"):
-- writing their postings 13.5 -> 5.7 s of PostgreSQL CPU; the same rows.
CREATE OR REPLACE FUNCTION keyword_impacts(doc tsvector) RETURNS TABLE (term text, impact real)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT s.lexeme, keyword_impact(cardinality(s.positions) + 2 * cardinality(array_positions(s.weights, 'A')),
                                    d.stems)
    FROM (SELECT length(doc) AS stems OFFSET 0) AS d, unnest(doc) AS s
$$;
