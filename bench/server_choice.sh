#!/usr/bin/env bash
# Benchmark granian vs uvicorn (uvloop + httptools) serving api.asgi:app; see docs/server-choice.md.
#
#   bench/server_choice.sh [--rounds 3] [--duration 10] [--warmup 3] [--json-out FILE] ...
#
# Needs wrk (apt-get install -y wrk) and a separate virtualenv with both servers, so the project's
# .venv is left untouched (override its location with UVB=...):
#   python3 -m venv /tmp/uvb && /tmp/uvb/bin/pip install -e . 'uvicorn[standard]' uvloop httptools granian
# DATABASE_URL is taken from `papers db url` (the embedded PostgreSQL) unless already set.
# Servers listen on 127.0.0.1:8201 (granian) and 127.0.0.1:8202 (uvicorn); the default run takes ~6 min.
set -euo pipefail
cd "$(dirname "$0")/.."
UVB=${UVB:-/tmp/uvb}

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
for exe in python granian uvicorn; do
  [[ -x $UVB/bin/$exe ]] || { echo "$UVB/bin/$exe missing; see the header of $0" >&2; exit 1; }
done
if [[ -z ${DATABASE_URL:-} ]]; then
  DATABASE_URL=$(.venv/bin/papers db url)
fi
export DATABASE_URL
# A hard bound on the whole run (the default parameters need ~6 minutes).
exec timeout --signal=INT --kill-after=30 "${BENCH_TIMEOUT:-570}" "$UVB/bin/python" bench/server_choice.py "$@"
