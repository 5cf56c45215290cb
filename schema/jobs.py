"""Contracts for queued ingest jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

JobStatus = Literal["queued", "running", "done", "failed"]


class Job(msgspec.Struct, frozen=True):
    """One queued ingest: the raw payload and how to parse it, with its progress."""

    key: int
    public_id: str
    source: str
    format: str | None
    year: int | None
    payload: bytes
    status: JobStatus
    attempts: int
    max_attempts: int
    last_error: str | None = None
    result: dict[str, Any] | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
