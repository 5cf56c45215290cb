"""The `slow` marker: checks that take minutes run only with `pytest tests/system --slow`.

    .venv/bin/pytest tests/system --slow            # every system test, the slow ones too (about 6 minutes)
    PAPERS_SOAK_SECONDS=300 .venv/bin/pytest tests/system/test_soak.py --slow -rP    # the long soak, with figures

The slow checks: test_kill_under_load (workers SIGKILLed while draining a queue), test_database_restart
(PostgreSQL stopped and started under load), test_soak (mixed reads, memory) and test_schemathesis, which needs
schemathesis in a virtualenv of its own (`python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis`, or
PAPERS_SCHEMATHESIS pointing at an `st`) and skips, saying so, without it. `-rP` prints each check's figures.
"""

from __future__ import annotations

import pytest

SKIP_REASON = "slow system check: run with `pytest tests/system --slow`"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="also run the slow system checks")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a system check that takes minutes (run with --slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # getoption's default: this conftest is not an initial one when pytest runs from the root, and then
    # its option is registered after the command line was parsed.
    if config.getoption("--slow", default=False):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
