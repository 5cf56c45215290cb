# syntax=docker/dockerfile:1
#
# papers-api image: one image for the API (`papers serve`, the default command)
# and the ingest worker (`papers worker`). See compose.yaml for both.
#
#   docker build -t papers-api .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://... papers-api
#
# Without DATABASE_URL the CLI falls back to the embedded PostgreSQL under
# PAPERS_DATA_DIR (fine for a quick look, not for production: use compose.yaml).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# builder: install the project and its dependencies into /opt/venv
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Extra package index for the dependency install, empty by default.
# Embeddings will need `torch==2.13.0`; to get the CPU-only build (instead of
# the much larger CUDA build from PyPI) build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# It is added with --extra-index-url, so every other package still comes from
# PyPI. (Not exercised yet: that index cannot be reached where this file was
# written, and torch is not a dependency yet.)
ARG TORCH_INDEX_URL=""

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that this (slow, and with
# torch large) layer is rebuilt only when the dependency list changes.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt

# Then the project itself (.dockerignore keeps tests, caches and local state out).
COPY . .
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} . \
    && papers --help > /dev/null

# ---------------------------------------------------------------------------
# runtime: the venv only, run as an unprivileged user
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PAPERS_DATA_DIR=/var/lib/papers

RUN groupadd --system --gid "${APP_GID}" papers \
    && useradd --system --no-log-init --uid "${APP_UID}" --gid papers \
        --home-dir /home/papers --create-home --shell /usr/sbin/nologin papers \
    && install -d -o papers -g papers -m 0750 /var/lib/papers

# Owned by root and read-only for the app user.
COPY --from=builder /opt/venv /opt/venv

WORKDIR /home/papers
USER ${APP_UID}:${APP_GID}

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["papers", "serve", "--host", "0.0.0.0", "--port", "8000"]
