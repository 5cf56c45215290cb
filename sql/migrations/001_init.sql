-- Base schema: papers (deduplicated by title fingerprint), listings with ranked entries,
-- rejects kept with their reason, and the ingest job queue.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE papers (
    paper_key           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id           text NOT NULL UNIQUE,
    fingerprint         text NOT NULL UNIQUE,
    title               text NOT NULL,
    abstract            text NOT NULL,
    -- true when the canonical abstract came from a source that names the arXiv id (the arXiv summary)
    abstract_from_arxiv boolean NOT NULL DEFAULT false,
    arxiv_id            text UNIQUE,
    first_seen          timestamptz NOT NULL DEFAULT now(),
    last_seen           timestamptz NOT NULL DEFAULT now(),
    first_listed        date,
    last_listed         date,
    embedding           vector(384),
    embedding_model     text,
    search              tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', abstract), 'B')
    ) STORED,
    CHECK (fingerprint <> ''),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL))
);

CREATE INDEX papers_search_idx ON papers USING gin (search);
CREATE INDEX papers_title_trgm_idx ON papers USING gin (title gin_trgm_ops);
CREATE INDEX papers_last_listed_idx ON papers (last_listed DESC NULLS LAST, paper_key DESC);
CREATE INDEX papers_first_seen_idx ON papers (first_seen, paper_key);

CREATE TABLE listings (
    listing_key     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id       text NOT NULL UNIQUE,
    source          text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('page', 'hf_daily', 'jsonl')),
    date_label      text,
    listed_on       date,
    heading         text,
    content_sha256  text NOT NULL UNIQUE CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    raw             bytea NOT NULL,
    entry_count     integer NOT NULL DEFAULT 0,
    reject_count    integer NOT NULL DEFAULT 0,
    ingested_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX listings_listed_on_idx ON listings (listed_on DESC NULLS LAST, listing_key DESC);

CREATE TABLE listing_entries (
    listing_key     bigint NOT NULL REFERENCES listings ON DELETE CASCADE,
    rank            integer NOT NULL CHECK (rank > 0),
    paper_key       bigint NOT NULL REFERENCES papers,
    -- as printed in this listing, only where it differs from the paper's canonical text
    title_variant   text,
    abstract_variant text,
    listed_on       date,
    line_start      integer NOT NULL,
    line_end        integer NOT NULL,
    PRIMARY KEY (listing_key, rank)
);

CREATE INDEX listing_entries_paper_idx ON listing_entries (paper_key, listing_key);

CREATE TABLE ingest_rejects (
    reject_key      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    listing_key     bigint NOT NULL REFERENCES listings ON DELETE CASCADE,
    line_start      integer NOT NULL,
    line_end        integer NOT NULL,
    reason          text NOT NULL,
    raw             text NOT NULL
);

CREATE INDEX ingest_rejects_listing_idx ON ingest_rejects (listing_key);

CREATE TABLE ingest_jobs (
    job_key         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id       text NOT NULL UNIQUE,
    source          text NOT NULL,
    format          text,
    year            integer,
    payload         bytea NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 5,
    run_after       timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    result          jsonb,
    worker          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);

-- 'running' rows stay candidates: a worker that died no longer holds the job's advisory lock,
-- so another worker can take the job over.
CREATE INDEX ingest_jobs_ready_idx ON ingest_jobs (run_after, job_key) WHERE status IN ('queued', 'running');
