"""The plausibility rule for structured formats: input whose items are mostly not papers is not a listing.

Pages apply the same two tests to their blocks (ingest/parsers/page.py): at least one abstract that
reads like one, and no more than MOSTLY_NOT_PAIRS unreadable items per entry.
"""

from __future__ import annotations

from ingest.parsers.page import MOSTLY_NOT_PAIRS, looks_like_abstract, reads_as_prose
from schema.errors import NotAListingError
from schema.ingest import ParsedListing


def check_plausible(listing: ParsedListing, what: str) -> ParsedListing:
    """Return the listing when it reads as one; NotAListingError saying why not (`what` names its parts)."""
    entries, rejects = listing.entries, listing.rejects
    if not any(looks_like_abstract(e.abstract) and reads_as_prose(e.abstract) for e in entries):
        longest = max((len(e.abstract.split()) for e in entries), default=0)
        raise NotAListingError(
            f"not a listing: no abstract reads as one (the longest has {longest} words; an abstract has "
            "30 words or 250 characters of prose)",
            entries[0].line_start if entries else None,
        )
    if len(rejects) > MOSTLY_NOT_PAIRS * len(entries):
        raise NotAListingError(
            f"not a listing: {len(rejects)} {what} are not title and abstract pairs against {len(entries)} that are",
            rejects[0].line_start,
        )
    return listing
