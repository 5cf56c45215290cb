-- The ef_search `papers hnsw tune` measured for this collection and its HNSW build: the smallest that reaches the
-- recall target (docs/design.md, "HNSW tuned to the collection"). Every API process reads it at start unless
-- PAPERS_EF_SEARCH sets one; kept in the database so replicas and every process see the same.
CREATE TABLE hnsw_tuning (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    ef_search        integer NOT NULL CHECK (ef_search BETWEEN 1 AND 1000),
    recall           real NOT NULL CHECK (recall BETWEEN 0 AND 1),
    queries          integer NOT NULL CHECK (queries > 0),
    papers           bigint NOT NULL CHECK (papers >= 0),
    m                integer NOT NULL,
    ef_construction  integer NOT NULL,
    measured_at      timestamptz NOT NULL DEFAULT now()
);
