-- Pulling listings from their sites: what each URL answered last (for conditional requests), and
-- which scheduled pull ran in which interval (one row per slot: the worker that inserts it queues the pull).
CREATE TABLE pull_state (
    url             text PRIMARY KEY,
    etag            text,
    last_modified   text,
    content_sha256  text,
    status          integer NOT NULL,
    fetched_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pull_runs (
    name        text NOT NULL,
    slot        bigint NOT NULL,
    job_id      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, slot)
);
