"""Settings come from the environment once, with one clear line per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.embedder import LocalEmbedder, OnnxEmbedder, OpenAIEmbedder, from_settings
from schema.settings import DEFAULT_MAX_BODY_BYTES, Settings, SettingsError


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.api_key is None
    assert settings.cors_origins == ()
    assert settings.data_dir == Path(".papers").resolve()
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert settings.graphql_compiled
    assert not settings.debug
    assert settings.embedder.kind == "local"
    assert (settings.pool_min, settings.pool_max) == (1, 10)
    assert settings.ef_search is None  # the tuned value, else limits.EF_SEARCH (sql/hnsw.py)


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "PAPERS_DATA_DIR": "/srv/papers",
            "PAPERS_API_KEY": "k",
            "PAPERS_CORS_ORIGINS": "https://a.example, https://b.example,",
            "PAPERS_MAX_BODY_BYTES": "2MiB",
            "PAPERS_DEBUG": "yes",
            "PAPERS_GRAPHQL_COMPILED": "0",
            "PAPERS_POOL_MIN": "2",
            "PAPERS_POOL_MAX": "20",
            "PAPERS_STATEMENT_TIMEOUT": "2.5",
            "PAPERS_EF_SEARCH": "200",
            "PAPERS_DB_POOLER": "PgBouncer",
            "DATABASE_SESSION_URL": "postgresql://u@h:5432/db",
            "PAPERS_TRUSTED_PROXIES": "10.0.0.0/8, lb,",
        }
    )
    assert settings.trusted_proxies == ("10.0.0.0/8", "lb")
    assert settings.db_pooler == "pgbouncer"
    assert settings.database_session_url == "postgresql://u@h:5432/db"
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.data_dir == Path("/srv/papers")
    assert settings.api_key == "k"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.max_body_bytes == 2 * 1024 * 1024
    assert settings.debug
    assert not settings.graphql_compiled
    assert (settings.pool_min, settings.pool_max) == (2, 20)
    assert settings.statement_timeout == 2.5
    assert settings.ef_search == 200


@pytest.mark.parametrize(
    ("value", "size"), [("2000000", 2_000_000), ("2MB", 2_000_000), ("64 kb", 64_000), ("1KiB", 1024), ("5b", 5)]
)
def test_body_sizes_take_units(value, size):
    assert Settings.from_env({"PAPERS_MAX_BODY_BYTES": value}).max_body_bytes == size


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PAPERS_MAX_BODY_BYTES": "lots"}, "PAPERS_MAX_BODY_BYTES: expected a size in bytes"),
        ({"PAPERS_MAX_BODY_BYTES": "0"}, "PAPERS_MAX_BODY_BYTES: expected a size of at least 1 byte"),
        ({"PAPERS_DEBUG": "maybe"}, "PAPERS_DEBUG: expected 1/true/yes/on or 0/false/no/off, got 'maybe'"),
        ({"PAPERS_POOL_MAX": "-3"}, "PAPERS_POOL_MAX: expected a positive whole number"),
        ({"PAPERS_POOL_MIN": "5", "PAPERS_POOL_MAX": "2"}, "PAPERS_POOL_MIN (5) exceeds PAPERS_POOL_MAX (2)"),
        ({"PAPERS_STATEMENT_TIMEOUT": "-1"}, "PAPERS_STATEMENT_TIMEOUT: expected seconds between 0 and 3600"),
        ({"PAPERS_EF_SEARCH": "0"}, "PAPERS_EF_SEARCH: expected a whole number from 1 to 1000, got '0'"),
        ({"PAPERS_EF_SEARCH": "1001"}, "PAPERS_EF_SEARCH: expected a whole number from 1 to 1000"),
        ({"PAPERS_EF_SEARCH": "lots"}, "PAPERS_EF_SEARCH: expected a whole number from 1 to 1000"),
        ({"PAPERS_EF_SEARCH": "²"}, "PAPERS_EF_SEARCH: expected a whole number from 1 to 1000, got '²'"),
        (
            {"PAPERS_POOL_MAX": "9" * 5000},
            "PAPERS_POOL_MAX: expected a positive whole number, got '" + "9" * 80 + "...'",
        ),
        ({"PAPERS_DB_POOLER": "pgpool"}, "PAPERS_DB_POOLER: expected one of none, pgbouncer, got 'pgpool'"),
        ({"PAPERS_EMBEDDER": "magic"}, "PAPERS_EMBEDDER: expected one of local, openai, none, got 'magic'"),
        ({"PAPERS_EMBEDDER_BACKEND": "tensorflow"}, "PAPERS_EMBEDDER_BACKEND: expected one of onnx, torch"),
        ({"PAPERS_EMBEDDER": "openai"}, "needs PAPERS_EMBEDDING_URL, PAPERS_EMBEDDING_MODEL, PAPERS_EMBEDDING_DIM"),
        (
            {
                "PAPERS_EMBEDDER": "openai",
                "PAPERS_EMBEDDING_URL": "http://gpu",
                "PAPERS_EMBEDDING_MODEL": "m",
                "PAPERS_EMBEDDING_DIM": "wide",
            },
            "PAPERS_EMBEDDING_DIM: expected a positive whole number",
        ),
    ],
)
def test_a_bad_value_names_its_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_embedders_come_from_the_settings():
    remote = Settings.from_env(
        {
            "PAPERS_EMBEDDER": "openai",
            "PAPERS_EMBEDDING_URL": "http://gpu:8080",
            "PAPERS_EMBEDDING_MODEL": "bge-small",
            "PAPERS_EMBEDDING_DIM": "384",
        }
    )
    embedder = from_settings(remote.embedder)
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.model, embedder.dim) == ("bge-small", 384)
    assert from_settings(Settings.from_env({"PAPERS_EMBEDDER": "none"}).embedder) is None


def test_pull_settings():
    default = Settings.from_env({}).pull
    assert (default.hf_url, default.interval_seconds, default.schedule) == ("https://huggingface.co", 3.0, ())
    pull = Settings.from_env(
        {
            "PAPERS_PULLS": "arxiv:cs.LG@12h, hf@1d, arxiv-query:cat:cs.CL AND ti:speech@90m, hf:2024-03-11@30s",
            "PAPERS_PULL_INTERVAL": "0.5",
            "PAPERS_PULL_USER_AGENT": "me (me@example.org)",
            "PAPERS_HF_URL": "http://127.0.0.1:9000/",
        }
    ).pull
    assert [(s.target.name, s.every_seconds) for s in pull.schedule] == [
        ("arxiv:cs.LG", 43200),
        ("hf:today", 86400),
        ("arxiv-query:cat:cs.CL AND ti:speech", 5400),
        ("hf:2024-03-11", 30),
    ]
    assert (pull.interval_seconds, pull.user_agent, pull.hf_url) == (
        0.5,
        "me (me@example.org)",
        "http://127.0.0.1:9000",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("arxiv:cs.LG", "PAPERS_PULLS: expected TARGET@INTERVAL"),
        ("arxiv:cs.LG@0h", "PAPERS_PULLS: expected TARGET@INTERVAL"),
        ("github:x@1d", "PAPERS_PULLS: expected hf"),
        ("hf:yesterday@1d", "PAPERS_PULLS: expected hf:YYYY-MM-DD, got 'hf:yesterday'"),
    ],
)
def test_a_bad_schedule_names_its_variable(value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"PAPERS_PULLS": value})


def test_the_local_embedder_defaults_to_onnx_cached_under_the_data_directory(tmp_path):
    local = from_settings(Settings.from_env({"PAPERS_DATA_DIR": str(tmp_path)}).embedder)
    assert isinstance(local, OnnxEmbedder)
    assert (local.backend, local.cache_dir) == ("onnxruntime", tmp_path / "models")
    assert not local.ready  # nothing is loaded, let alone exported, until the model is first needed
    assert not (tmp_path / "models").exists()
    torch = from_settings(Settings.from_env({"PAPERS_EMBEDDER_BACKEND": "torch"}).embedder)
    assert isinstance(torch, LocalEmbedder)
    assert (torch.backend, torch.quantization) == ("torch", "fp32")
