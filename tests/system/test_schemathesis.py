"""schemathesis (`st run --checks all`) against `/schema/openapi.json` and `/graphql` of `papers serve`.

schemathesis is not a project dependency (its pins would fight the project's); it lives in a virtualenv of its own:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis

PAPERS_SCHEMATHESIS names another `st` executable; PAPERS_SCHEMATHESIS_SECONDS bounds each run (default 60 s;
fuzzing repeats until the time is spent).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.system.harness import child_env, corpus, load, serving, start, stop, unhandled, wait_semantic

pytestmark = pytest.mark.slow

INSTALL = "python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis"
ST_SECONDS = int(os.environ.get("PAPERS_SCHEMATHESIS_SECONDS") or 60)
MAX_EXAMPLES = 50
PAPERS = 1000
API_KEY = "schemathesis-key"  # sent with every request, so the submit operations are exercised past the key check
TARGETS = {"openapi": "/schema/openapi.json", "graphql": "/graphql"}
# Failure codes (`st explain --list`): ST1xx judge responses against the schema (server errors, GraphQL field
# failures, undocumented statuses or bodies) and fail the test. ST2xx judge input handling, e.g. a schema-valid
# cursor of another query refused with 400; they are printed, not failed on. ST112 is a time limit we do not set.
FAILING = re.compile(r"ST1(?!12)\d\d")


@pytest.fixture
def st() -> str:
    """The `st` executable: PAPERS_SCHEMATHESIS, else /tmp/st/bin/st."""
    path = os.environ.get("PAPERS_SCHEMATHESIS") or "/tmp/st/bin/st"
    if not os.access(path, os.X_OK):
        pytest.skip(f"schemathesis not found at {path} (set PAPERS_SCHEMATHESIS); install it with `{INSTALL}`")
    return path


@pytest.fixture
async def server(fresh_db: str, tmp_path: Path, onnx_models: Path) -> AsyncIterator[tuple[str, Path]]:
    """`papers serve` with the local model and an API key over a loaded corpus: (base URL, its log)."""
    assert await load(fresh_db, corpus(PAPERS), vectors=True) == PAPERS
    log = tmp_path / "serve.log"
    data = str(onnx_models.parent)  # the model exported once for the session
    with serving(fresh_db, log, PAPERS_EMBEDDER="local", PAPERS_DATA_DIR=data, PAPERS_API_KEY=API_KEY) as (base, _):
        await wait_semantic(base)  # semantic routes answer, rather than 503 while the model loads
        yield base, log


def st_run(st: str, location: str, workdir: Path) -> int | None:
    """Run schemathesis once (in its own process group) and return its exit code, None if it overran."""
    args = [st, "run", location, "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--max-time", str(ST_SECONDS)]
    args += ["--seed", "7", "--request-timeout", "10", "--header", f"Authorization: Bearer {API_KEY}", "--no-color"]
    args += ["--report", "junit", "--report-dir", str(workdir / "report"), "--generation-database", "none"]
    # its working directory is scratch: schemathesis keeps a cache (.schemathesis/) there
    proc = start(args, workdir / "st.log", env=child_env(), cwd=workdir)
    try:
        return proc.wait(timeout=ST_SECONDS + 300)
    except subprocess.TimeoutExpired:
        return None
    finally:
        stop(proc, grace=2.0)


def findings(report_dir: Path) -> tuple[int, list[str], list[str]]:
    """From the junit report: operations tested, `CODE title (operation)` per failure, schemathesis' own errors."""
    operations, found, errors = 0, [], []
    for xml in sorted(report_dir.glob("*.xml")):
        for case in ET.parse(xml).getroot().iter("testcase"):
            operations += 1
            errors += [f"{case.get('name')}: {(e.get('message') or e.text or '')[:300]}" for e in case.iter("error")]
            for failure in case.iter("failure"):
                text = f"{failure.get('message') or ''}\n{failure.text or ''}"
                found += [
                    f"{code} {title} ({case.get('name')})"
                    for code, title in re.findall(r"^- (ST\d{3}) (.+)$", text, re.M)
                ]
    return operations, sorted(set(found)), errors


@pytest.mark.parametrize("target", list(TARGETS))
async def test_schemathesis_finds_no_server_error_and_no_nonconformance(
    st: str, server: tuple[str, Path], target: str, tmp_path: Path
) -> None:
    base, log = server
    workdir = tmp_path / f"st-{target}"
    workdir.mkdir()
    code = await asyncio.to_thread(st_run, st, base + TARGETS[target], workdir)
    output = (workdir / "st.log").read_text(errors="replace")
    assert code is not None, f"schemathesis overran {ST_SECONDS + 300} s:\n{output[-3000:]}"
    operations, found, errors = findings(workdir / "report")
    assert operations > 0, f"schemathesis tested nothing (exit {code}):\n{output[-3000:]}"
    assert errors == [], "schemathesis could not test some operations"
    print(f"{target}: {operations} operations, exit {code}; input-handling findings: {found or 'none'}")
    assert [f for f in found if FAILING.match(f)] == [], "server errors or responses that do not match the schema"
    assert unhandled(log) == []
