"""The one typed configuration: built once from the environment at an entry point, then passed down.

A bad value fails at start with one line naming the variable (`SettingsError`); nothing else in the
project reads or writes the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar, cast, get_args

import msgspec

from schema import limits
from schema.pull import PullSettings, parse_schedule

EmbedderKind = Literal["local", "openai", "none"]
LocalBackend = Literal["onnx", "torch"]
Pooler = Literal["none", "pgbouncer"]
DEFAULT_DATA_DIR = ".papers"
DEFAULT_MAX_BODY_BYTES = 2_000_000
DEFAULT_RATE_LIMIT = "50/second;1000/minute"  # per client address; the API key's holder gets ten times as much
_DEFAULT_LIMIT: str | None = DEFAULT_RATE_LIMIT
_OFF = {"none", "off", "0", "false", "no"}
_T = TypeVar("_T")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


class EmbedderSettings(msgspec.Struct, frozen=True):
    """Which embedder computes vectors, and how to reach a remote one."""

    kind: EmbedderKind = "local"
    # The local model's runtime: ONNX Runtime with int8 weights (default), or torch fp32.
    backend: LocalBackend = "onnx"
    # Where the ONNX model is exported to at first use and cached (`<data dir>/models`).
    model_dir: Path = Path(DEFAULT_DATA_DIR) / "models"
    url: str | None = None
    model: str | None = None
    dim: int | None = None
    api_key: str | None = None


class ReplicaSettings(msgspec.Struct, frozen=True):
    """Read replicas: where they are, how stale one may be, how often they are checked, how long a read waits."""

    urls: tuple[str, ...] = ()
    # A replica whose replay is further behind than this (seconds) is taken out of rotation.
    max_lag: float = 5.0
    # Seconds between two health checks of every database (and the most a failed replica stays in rotation).
    check_interval: float = 1.0
    # How long a read that must see a given write waits for a replica to replay it before asking the primary.
    wait: float = 0.1


class Settings(msgspec.Struct, frozen=True):
    """Everything an operator can configure."""

    database_url: str | None = None
    replicas: ReplicaSettings = ReplicaSettings()
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    debug: bool = False
    graphql_compiled: bool = True
    pool_min: int = 1
    pool_max: int = 10
    # Seconds one API statement may run before the database stops it (0: no limit); the worker and CLI have none.
    statement_timeout: float = 5.0
    # HNSW candidates per nearest-neighbour search (pgvector's hnsw.ef_search): recall against speed. None: the value
    # `papers hnsw tune` stored for the collection, else limits.EF_SEARCH.
    ef_search: int | None = None
    # What DATABASE_URL leads to: PostgreSQL itself, or PgBouncer in transaction mode (no session state kept).
    db_pooler: Pooler = "none"
    # A connection that keeps its session (PostgreSQL, or a session-mode pool): the worker's per-job locks need one.
    database_session_url: str | None = None
    rate_limit: str | None = DEFAULT_RATE_LIMIT  # None: no rate limits
    rate_limit_storage: str = "memory://"
    # Load balancers whose X-Forwarded-For names the client (addresses, networks or names; `*` trusts any).
    trusted_proxies: tuple[str, ...] = ()
    embedder: EmbedderSettings = EmbedderSettings()
    pull: PullSettings = PullSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read every `DATABASE_URL` / `PAPERS_*` variable of env; raise SettingsError naming a bad one."""
        read = _Reader(env)
        data_dir = Path(read.text("PAPERS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
        settings = cls(
            database_url=read.text("DATABASE_URL"),
            replicas=_replicas(read),
            data_dir=data_dir,
            api_key=read.text("PAPERS_API_KEY"),
            cors_origins=tuple(o.strip() for o in (read.text("PAPERS_CORS_ORIGINS") or "").split(",") if o.strip()),
            max_body_bytes=read.parsed("PAPERS_MAX_BODY_BYTES", _size, DEFAULT_MAX_BODY_BYTES),
            debug=read.parsed("PAPERS_DEBUG", _bool, False),
            graphql_compiled=read.parsed("PAPERS_GRAPHQL_COMPILED", _bool, True),
            pool_min=read.parsed("PAPERS_POOL_MIN", _positive, 1),
            pool_max=read.parsed("PAPERS_POOL_MAX", _positive, 10),
            statement_timeout=read.parsed("PAPERS_STATEMENT_TIMEOUT", _seconds, 5.0),
            ef_search=read.parsed("PAPERS_EF_SEARCH", _ef_search, None),
            db_pooler=read.parsed("PAPERS_DB_POOLER", _pooler, "none"),
            database_session_url=read.text("DATABASE_SESSION_URL"),
            rate_limit=read.parsed("PAPERS_RATE_LIMIT", _rate_limit, _DEFAULT_LIMIT),
            rate_limit_storage=read.text("PAPERS_RATE_LIMIT_STORAGE") or "memory://",
            trusted_proxies=tuple(
                p.strip() for p in (read.text("PAPERS_TRUSTED_PROXIES") or "").split(",") if p.strip()
            ),
            embedder=_embedder(read, data_dir),
            pull=_pull(read),
        )
        if settings.pool_min > settings.pool_max:
            raise SettingsError(f"PAPERS_POOL_MIN ({settings.pool_min}) exceeds PAPERS_POOL_MAX ({settings.pool_max})")
        return settings


_SHOWN_CHARS = 80  # of a bad value, in its error message


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def parsed(self, name: str, parse: Callable[[str], _T], default: _T) -> _T:
        raw = self.env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            shown = raw if len(raw) <= _SHOWN_CHARS else raw[:_SHOWN_CHARS] + "..."
            raise SettingsError(f"{name}: {exc}, got {shown!r}") from None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError("expected 1/true/yes/on or 0/false/no/off")
    return value in _TRUE


def _items(raw: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (raw or "").split(",") if item.strip())


def _pooler(raw: str) -> Pooler:
    value = raw.strip().lower()
    if value not in get_args(Pooler):
        raise ValueError(f"expected one of {', '.join(get_args(Pooler))}")
    return cast(Pooler, value)


def _positive(raw: str) -> int:
    value = _whole(raw)
    if value is None or value < 1:
        raise ValueError("expected a positive whole number")
    return value


def _rate_limit(raw: str) -> str | None:
    value = raw.strip()
    if value.lower() in _OFF:
        return None
    from limits import parse_many  # the library that will count them reads them here first

    try:
        parse_many(value)
    except ValueError:
        raise ValueError("expected limits such as 50/second;1000/minute, or none") from None
    return value


def _size(raw: str) -> int:
    match = _SIZE.match(raw)
    if not match:
        raise ValueError("expected a size in bytes such as 2000000, 2MB or 2MiB")
    unit = (match.group(2) or "").lower().removesuffix("b")
    size = int(match.group(1)) * _UNITS[unit]
    if size < 1:
        raise ValueError("expected a size of at least 1 byte")
    return size


def _embedder(read: _Reader, data_dir: Path) -> EmbedderSettings:
    kind = (read.text("PAPERS_EMBEDDER") or "local").lower()
    if kind not in get_args(EmbedderKind):
        raise SettingsError(f"PAPERS_EMBEDDER: expected one of {', '.join(get_args(EmbedderKind))}, got {kind!r}")
    backend = (read.text("PAPERS_EMBEDDER_BACKEND") or "onnx").lower()
    if backend not in get_args(LocalBackend):
        raise SettingsError(
            f"PAPERS_EMBEDDER_BACKEND: expected one of {', '.join(get_args(LocalBackend))}, got {backend!r}"
        )
    settings = EmbedderSettings(
        kind=cast(EmbedderKind, kind),
        backend=cast(LocalBackend, backend),
        model_dir=data_dir / "models",
        url=read.text("PAPERS_EMBEDDING_URL"),
        model=read.text("PAPERS_EMBEDDING_MODEL"),
        dim=read.parsed("PAPERS_EMBEDDING_DIM", _positive, None),
        api_key=read.text("PAPERS_EMBEDDING_API_KEY"),
    )
    if kind == "openai":
        missing = [
            name
            for name, value in (
                ("PAPERS_EMBEDDING_URL", settings.url),
                ("PAPERS_EMBEDDING_MODEL", settings.model),
                ("PAPERS_EMBEDDING_DIM", settings.dim),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"PAPERS_EMBEDDER=openai needs {', '.join(missing)}")
    return settings


def _ef_search(raw: str) -> int:
    low, high = limits.EF_SEARCH_RANGE
    value = _whole(raw)
    if value is None or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}")
    return value


def _whole(raw: str) -> int | None:
    """raw as a whole number in ASCII digits, None otherwise (int() also takes other scripts' digits and
    refuses past 4,300 of them with a message about Python, not about the setting)."""
    value = raw.strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 3600:
        raise ValueError("expected seconds between 0 and 3600")
    return value


def _postgres_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    if not urls or not all(u.startswith(("postgresql://", "postgres://")) for u in urls):
        raise ValueError("expected comma-separated postgresql:// URLs")
    return urls


def _lag(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 3600:
        raise ValueError("expected seconds above 0 and at most 3600")
    return value


def _replicas(read: _Reader) -> ReplicaSettings:
    default = ReplicaSettings()
    return ReplicaSettings(
        urls=read.parsed("DATABASE_REPLICA_URLS", _postgres_urls, ()),
        max_lag=read.parsed("PAPERS_REPLICA_MAX_LAG", _lag, default.max_lag),
        check_interval=read.parsed("PAPERS_REPLICA_CHECK_INTERVAL", _lag, default.check_interval),
        wait=read.parsed("PAPERS_REPLICA_WAIT", _seconds, default.wait),
    )


def _pull(read: _Reader) -> PullSettings:
    default = PullSettings()
    return PullSettings(
        hf_url=(read.text("PAPERS_HF_URL") or default.hf_url).rstrip("/"),
        arxiv_rss_url=(read.text("PAPERS_ARXIV_RSS_URL") or default.arxiv_rss_url).rstrip("/"),
        arxiv_api_url=(read.text("PAPERS_ARXIV_API_URL") or default.arxiv_api_url).rstrip("/"),
        user_agent=read.text("PAPERS_PULL_USER_AGENT") or default.user_agent,
        interval_seconds=read.parsed("PAPERS_PULL_INTERVAL", _seconds, default.interval_seconds),
        schedule=read.parsed("PAPERS_PULLS", parse_schedule, ()),
    )
