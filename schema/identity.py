"""Paper identity: the title fingerprint and the public ids derived from it."""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata

_NOT_ALNUM = re.compile(r"[\W_]+")
# Modern (2403.01234, optional version) and legacy (cs/0601001) arXiv identifiers.
_ARXIV = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?$", re.IGNORECASE)


def title_fingerprint(title: str) -> str:
    """Return the identity key of a title: case, punctuation, accents and spacing are ignored."""
    if title.isascii():  # nothing to decompose
        return _NOT_ALNUM.sub("", title.lower())
    decomposed = unicodedata.normalize("NFKD", title)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_ALNUM.sub("", stripped.casefold())


def _short_hash(prefix: str, data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return prefix + base64.b32encode(digest[:10]).decode("ascii").lower()


def paper_public_id(fingerprint: str) -> str:
    """Derive a paper's public id from its fingerprint: the same in every database and on every re-ingest."""
    return _short_hash("pap_", fingerprint.encode("utf-8"))


def listing_public_id(content_sha256: str) -> str:
    """Derive a listing's public id from the sha256 of its raw content."""
    return _short_hash("lst_", bytes.fromhex(content_sha256))


def normalize_arxiv_id(value: str | None) -> str | None:
    """Return the canonical arXiv id (no version, no prefix), or None when value is not one."""
    if value is None:
        return None
    match = _ARXIV.match(value.strip())
    return match.group(1).lower() if match else None


def is_arxiv_id(value: str) -> bool:
    """Tell whether a lookup key is an arXiv id rather than a public id."""
    return normalize_arxiv_id(value) is not None
