"""Replica settings, WAL positions and the lag rule (no database)."""

from __future__ import annotations

import pytest

from schema.settings import ReplicaSettings, Settings, SettingsError
from sql.replicas import Node, format_lsn, lag_seconds, parse_lsn


def test_replica_settings_are_read():
    settings = Settings.from_env(
        {
            "DATABASE_REPLICA_URLS": "postgresql://r1/db, postgres://r2:5433/db,",
            "PAPERS_REPLICA_MAX_LAG": "2.5",
            "PAPERS_REPLICA_CHECK_INTERVAL": "0.5",
            "PAPERS_REPLICA_WAIT": "0",
        }
    )
    assert settings.replicas == ReplicaSettings(("postgresql://r1/db", "postgres://r2:5433/db"), 2.5, 0.5, 0.0)
    assert Settings.from_env({}).replicas == ReplicaSettings((), 5.0, 1.0, 0.1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_REPLICA_URLS": "r1.internal"}, "DATABASE_REPLICA_URLS: expected comma-separated postgresql://"),
        ({"DATABASE_REPLICA_URLS": " , "}, "DATABASE_REPLICA_URLS: expected comma-separated postgresql://"),
        ({"PAPERS_REPLICA_MAX_LAG": "0"}, "PAPERS_REPLICA_MAX_LAG: expected seconds above 0"),
        ({"PAPERS_REPLICA_MAX_LAG": "soon"}, "PAPERS_REPLICA_MAX_LAG: could not convert"),
        ({"PAPERS_REPLICA_CHECK_INTERVAL": "-1"}, "PAPERS_REPLICA_CHECK_INTERVAL: expected seconds above 0"),
        ({"PAPERS_REPLICA_WAIT": "7200"}, "PAPERS_REPLICA_WAIT: expected seconds between 0 and 3600"),
    ],
)
def test_a_bad_replica_value_names_its_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("text", "value"), [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/B374D848", (0x16 << 32) | 0xB374D848)]
)
def test_wal_positions_read_and_print_as_postgresql_does(text, value):
    assert parse_lsn(text) == value
    assert format_lsn(value) == text


@pytest.mark.parametrize("text", ["", "16B3748", "0/", "/1", "x/1", "0/123456789", "1/2/3"])
def test_what_is_not_a_wal_position_is_refused(text):
    with pytest.raises(ValueError, match="not a WAL position"):
        parse_lsn(text)


def test_lag_is_the_age_of_the_newest_primary_position_the_replica_has_replayed():
    history = [(10.0, 100), (11.0, 200), (12.0, 300)]
    assert lag_seconds(history, 12.0, 300, 300, None) == 0.0  # caught up with the latest sample
    assert lag_seconds(history, 12.5, 250, 300, 99.0) == 1.5  # past the 11.0 sample, not the 12.0 one
    assert lag_seconds(history, 12.5, 100, 300, None) == 2.5
    # Behind every sample: at least as old as the oldest, or as its last replayed commit if that is older.
    assert lag_seconds(history, 12.5, 50, 300, 1.0) == 2.5
    assert lag_seconds(history, 12.5, 50, 300, 40.0) == 40.0


@pytest.mark.parametrize(("lag", "shown"), [(0.5001766, 0.501), (0.5, 0.5), (0.4999, 0.5), (0.57, 0.57), (0.0, 0.0)])
def test_a_shown_lag_is_never_below_the_lag_that_decided_the_state(lag, shown):
    # Rounded to the nearest, 0.5002 s showed as 0.5 on a replica taken out for passing a 0.5 s limit.
    node = Node("replica-1", "replica", "postgresql://replica")
    node.lag_s = lag
    assert node.status().lag_seconds == shown
