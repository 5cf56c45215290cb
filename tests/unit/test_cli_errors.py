"""What the `papers` command prints when a command fails in the database: one line, no traceback."""

from __future__ import annotations

import importlib

import asyncpg
import pytest

from schema.errors import CONFLICTED

cli = importlib.import_module("api.cli.main")  # the module; `api.cli.main` as an attribute is its function


def test_a_database_failure_is_one_line_naming_what_to_do(monkeypatch, capsys):
    def deadlocked(args, settings):
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(cli, "cmd_migrate", deadlocked)
    assert cli.main(["migrate"]) == 1
    assert capsys.readouterr().err == f"papers: {CONFLICTED}\n"


def test_a_bug_still_shows_its_traceback(monkeypatch):
    def broken(args, settings):
        raise ZeroDivisionError

    monkeypatch.setattr(cli, "cmd_migrate", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["migrate"])
