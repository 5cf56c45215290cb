"""Text that is not a listing is refused as a whole (nothing stored); damaged listings still ingest."""

from __future__ import annotations

import json

import pytest

from ingest.parsers import jsonish, parse
from schema.errors import NotAListingError
from tests import factories

README = """# tool

A small tool that turns listing pages into rows of a database, with a command line and a server that answers
questions about what it stored, written for people who keep many such pages around and want one place.

## Install

```sh
pip install tool
tool --help
```

## Use

- `tool ingest DIR` reads every file in a directory and stores the papers it finds, one row per paper.
- `tool serve` answers over HTTP.

| option | default | meaning |
|---|---|---|
| --port | 8000 | where to listen |

## License

MIT. Contributions are welcome: open an issue first, describe what you would change and why it helps.
"""

PROC_STATUS = "\n".join(f"{key}:\t{value}" for key, value in [
    ("Name", "python3"), ("State", "R (running)"), ("Tgid", "4242"), ("Cpus_allowed_list", "0-1"),
    ("VmPeak", "  123456 kB"), ("voluntary_ctxt_switches", "12"),
] * 8)  # fmt: skip

COMPOSE = """# a local stack with a database and two services that share one image and differ only in their command

services:
  db:
    image: postgres:18
    restart: unless-stopped
  api:
    image: tool:local
    command: tool serve --host 0.0.0.0
    depends_on:
      - db
"""

PYTHON = '''"""A module that reads listing pages and stores them, with helpers for each step of the way in."""

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Read every path given and print how many lines each has, then return zero to the shell."""
    for name in argv:
        print(name, len(Path(name).read_text().splitlines()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.parametrize("text", [README, PROC_STATUS, COMPOSE, PYTHON], ids=["readme", "proc", "yaml", "python"])
def test_other_text_is_not_a_listing(text):
    with pytest.raises(NotAListingError) as info:
        parse(text)
    assert info.value.line is not None


def test_a_damaged_listing_keeps_its_entries_and_rejects():
    pairs = [factories.paper(i) for i in range(6)]
    fields = [field for pair in pairs for field in pair]
    damaged = [*fields[:3], "Lone Title Without Its Abstract", "- a stray list item", *fields[3:], "# a heading"]
    listing = parse(factories.page([(damaged[i], damaged[i + 1]) for i in range(0, len(damaged) - 1, 2)]))
    assert len(listing.entries) >= 4
    assert len(listing.rejects) <= 2 * len(listing.entries)


def test_json_items_with_an_unpaired_surrogate_or_a_day_out_of_range_become_rejects():
    paper = {"id": "2403.00003", "title": "A Good Title", "summary": "An abstract. " * 30}
    good: dict[str, object] = {"paper": paper, "publishedAt": "2024-03-11T00:00:00Z"}
    surrogate = {**good, "paper": {**paper, "id": "2403.00001", "title": "Broken \ud800 Title"}}
    overflow = {"paper": {**paper, "id": "2403.00002", "title": "Another"}, "publishedAt": "9999-12-31T23:00:00-05:00"}
    listing = parse(json.dumps([surrogate, overflow, good]))
    assert [e.title for e in listing.entries] == ["A Good Title"]
    assert [r.reason for r in listing.rejects] == [
        "'title' contains an unpaired surrogate (\\ud800-\\udfff), which is not text",
        "'publishedAt' is out of range in UTC: '9999-12-31T23:00:00-05:00'",
    ]


def test_daily_papers_items_are_located_without_recounting_lines(monkeypatch):
    # Counting newlines from the start for every item made parsing quadratic (20k items: 112 s); items are
    # now located by bisection over the newlines, counted once. Parse time by size is in the benchmarks.
    def recount(*args):
        raise AssertionError("line numbers recounted from the start of the input")

    monkeypatch.setattr(jsonish, "_line_of", recount)
    listing = parse(factories.hf_daily([(*factories.paper(i), None) for i in range(50)]))
    assert [e.line_start for e in listing.entries][:3] == [2, 18, 34]  # each item is 16 lines
