"""Whether a connection keeps its session: PgBouncer in transaction mode gives a new server session per transaction."""

from __future__ import annotations

import asyncpg


class TransactionPooledConnection(asyncpg.Connection):
    """A connection through PgBouncer in transaction mode: nothing may outlive a transaction on it."""

    keeps_session = False


def keeps_session(conn: asyncpg.Connection) -> bool:
    """Whether session state (SET, prepared statements, advisory locks) set on conn stays with it."""
    # A pool's proxy forwards attribute reads to the connection it wraps.
    return bool(getattr(conn, "keeps_session", True))
