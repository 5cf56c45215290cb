"""Cursors made as they are read give the same text as encoding each row's keys at once."""

from __future__ import annotations

from sql import cursor


def test_cursors_are_encoded_when_read_and_equal_the_eager_ones():
    values = [["2024-03-11", 7], ["2024-03-10", 3], ["2024-03-09", 1]]
    lazy = cursor.Cursors("papers:recent", values)
    eager = [cursor.encode("papers:recent", v) for v in values]
    assert len(lazy) == 3
    assert list(lazy) == eager
    assert (lazy[0], lazy[-1], lazy[1:]) == (eager[0], eager[-1], eager[1:])
    assert cursor.decode(lazy[-1], "papers:recent") == ["2024-03-09", 1]
    assert not cursor.Cursors("papers:recent", [])
