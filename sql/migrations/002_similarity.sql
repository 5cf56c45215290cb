-- Similarity: the embedding space the stored vectors belong to, retry bookkeeping for failed
-- embeddings, and an HNSW index on cosine distance.

-- One row: the model and dimension of every stored embedding. Vectors of another model are never
-- compared with these; switching models re-embeds everything (`papers embed --all`).
CREATE TABLE embedding_space (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model       text NOT NULL,
    dim         integer NOT NULL CHECK (dim > 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE papers
    ADD COLUMN embedding_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN embedding_error text;

-- m and ef_construction chosen by measurement (docs/similarity.md).
CREATE INDEX papers_embedding_hnsw_idx ON papers USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);

CREATE INDEX papers_unembedded_idx ON papers (paper_key) WHERE embedding IS NULL;
