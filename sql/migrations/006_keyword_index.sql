-- BM25 keyword index (docs/design.md, "Keyword ranking"): impact-ordered postings kept in step with
-- papers by statement triggers, in the transaction that changes the paper, so every reader (any API
-- process, any streaming replica) sees postings and papers from the same snapshot.

-- One row per (word stem, paper): the BM25 term-frequency part of the word's score in the paper.
-- The per-word idf is applied at query time (keyword_terms), so a growing collection never rewrites
-- postings; reading a word's postings in index order gives its papers best first.
CREATE TABLE keyword_postings (
    term      text NOT NULL,
    impact    real NOT NULL,
    paper_key bigint NOT NULL
);
CREATE INDEX keyword_postings_idx ON keyword_postings (term, impact DESC, paper_key);

-- Document frequency per stem; the row for '' (never a stem) counts the papers.
CREATE TABLE keyword_terms (
    term text PRIMARY KEY,
    df   bigint NOT NULL  -- no CHECK: a removal is written as a negative row before it meets the stored one
);

-- BM25F over the title-weighted tsvector: a title occurrence (weight A) counts as 3 abstract ones;
-- k1 = 1.2, b = 0.75; the length is the number of distinct stems (known without reading the positions)
-- against a fixed pivot of PIVOT stems (the median title + abstract of the seed listings) instead of the
-- running average, so an impact never changes once written. A plain SQL function: the planner inlines it.
CREATE FUNCTION keyword_impact(tf integer, stems integer) RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (tf * 2.2::float8 / (tf + 1.2::float8 * (0.25::float8 + 0.75::float8 * stems / 100.0::float8)))::real
$$;

CREATE FUNCTION keyword_impacts(doc tsvector) RETURNS TABLE (term text, impact real)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT s.lexeme, keyword_impact(cardinality(s.positions) + 2 * cardinality(array_positions(s.weights, 'A')),
                                    length(doc))
    FROM unnest(doc) AS s
$$;

-- Add (+1) or remove (-1) the postings and document frequencies of papers; stems in sorted order,
-- so two transactions counting the same stems lock them in the same order.
CREATE FUNCTION keyword_apply(keys bigint[], docs tsvector[], sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF sign > 0 THEN
        INSERT INTO keyword_postings (term, impact, paper_key)
        SELECT i.term, i.impact, d.k FROM unnest(keys, docs) AS d(k, doc), keyword_impacts(d.doc) AS i;
    ELSE
        DELETE FROM keyword_postings p
        USING unnest(keys, docs) AS d(k, doc), keyword_impacts(d.doc) AS i
        WHERE p.term = i.term AND p.impact = i.impact AND p.paper_key = d.k;
    END IF;
    INSERT INTO keyword_terms AS t (term, df)
    SELECT term, sign * count(*) FROM (
        SELECT unnest(tsvector_to_array(doc)) AS term FROM unnest(docs) AS doc
        UNION ALL SELECT '' FROM unnest(keys)
    ) s GROUP BY term ORDER BY term
    ON CONFLICT (term) DO UPDATE SET df = t.df + excluded.df;
END $$;

CREATE FUNCTION keyword_papers_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keyword_apply(array_agg(paper_key), array_agg(search), 1) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- Only papers whose searchable text changed (a new canonical abstract); an update of dates or of the
-- embedding leaves the index alone.
CREATE FUNCTION keyword_papers_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the old postings go first: an unchanged (stem, impact) is deleted, then written again
    PERFORM keyword_apply(array_agg(o.paper_key), array_agg(o.search), -1)
    FROM old_rows o JOIN new_rows n USING (paper_key) WHERE o.search IS DISTINCT FROM n.search HAVING count(*) > 0;
    PERFORM keyword_apply(array_agg(n.paper_key), array_agg(n.search), 1)
    FROM old_rows o JOIN new_rows n USING (paper_key) WHERE o.search IS DISTINCT FROM n.search HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION keyword_papers_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keyword_apply(array_agg(paper_key), array_agg(search), -1) FROM old_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER papers_keyword_insert AFTER INSERT ON papers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION keyword_papers_inserted();
CREATE TRIGGER papers_keyword_update AFTER UPDATE ON papers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION keyword_papers_updated();
CREATE TRIGGER papers_keyword_delete AFTER DELETE ON papers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION keyword_papers_deleted();

-- Write the index again from the papers, 10,000 at a time (an array of a million tsvectors would pass
-- PostgreSQL's 1 GB allocation limit). `papers reindex` runs it under a lock that holds writers back.
CREATE FUNCTION keyword_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    low bigint := 0;
    high bigint;
BEGIN
    DELETE FROM keyword_postings;
    DELETE FROM keyword_terms;
    LOOP
        SELECT max(paper_key) INTO high FROM (
            SELECT paper_key FROM papers WHERE paper_key > low ORDER BY paper_key LIMIT 10000) s;
        EXIT WHEN high IS NULL;
        PERFORM keyword_apply(array_agg(paper_key), array_agg(search), 1)
        FROM papers WHERE paper_key > low AND paper_key <= high;
        low := high;
    END LOOP;
END $$;

SELECT keyword_rebuild();
