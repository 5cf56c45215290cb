"""arXiv feeds: the API's Atom answers and the daily RSS feeds (RSS 2.0 since 2024, RSS 1.0/RDF before).

Parsed with lxml with entity expansion, DTD loading and network access turned off, so a feed can
neither expand a billion laughs nor fetch anything. A feed is the listing of its day: the feed's
`updated` (Atom) or the channel's `pubDate` / `lastBuildDate` / `dc:date` (RSS), in UTC.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import re
from collections.abc import Iterator

from lxml import etree, html

from ingest.parsers.jsonish import BadItemError, field_text
from ingest.parsers.plausible import check_plausible
from schema.errors import NotAListingError
from schema.identity import normalize_arxiv_id, title_fingerprint
from schema.ingest import ListingKind, ParsedEntry, ParsedListing, Reject

ATOM = "{http://www.w3.org/2005/Atom}"
RSS1 = "{http://purl.org/rss/1.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# arXiv ids inside links, guids and texts: new style (2403.01234v2) and old style (cond-mat/0412498v1).
_ID_IN_TEXT = re.compile(r"(\d{4}\.\d{4,5}(?:v\d+)?|[a-z][a-z.-]*/\d{7}(?:v\d+)?)(?![\d.])", re.IGNORECASE)
# What the 2024 RSS feeds put before an abstract: "arXiv:2403.01234v1 Announce Type: new \nAbstract: ..."
_RSS_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*Abstract:\s*", re.IGNORECASE)
# What the RSS 1.0 feeds put after a title: "A Title. (arXiv:2403.01234v1 [cs.LG])"
_RSS1_TITLE_SUFFIX = re.compile(r"\.?\s*\(arXiv:[^)]*\)\s*$")


def read_xml(text: str) -> etree._Element:
    """The document's root element; NotAListingError with the parser's line when it is not well-formed XML."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(_DECLARATION.sub("", text, count=1).encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise NotAListingError(f"malformed XML: {exc.msg}", exc.lineno or None) from None


def _text(element: etree._Element | None) -> str:
    return "".join(element.itertext()) if element is not None else ""


def arxiv_in(*values: str) -> str | None:
    """The first arXiv id found in links, guids or texts, version stripped."""
    for value in values:
        for match in _ID_IN_TEXT.finditer(value or ""):
            found = normalize_arxiv_id(match.group(1))
            if found:
                return found
    return None


def span(element: etree._Element) -> tuple[int, int]:
    """The lines from an element's start tag to its end tag (lxml records only where each element starts)."""
    *_, last = element.iter()  # the last element in document order: a leaf
    start, end = element.sourceline or 1, (last.sourceline or 1) + (last.text or "").count("\n")
    node: etree._Element | None = last
    while node is not None and node is not element:  # the end tags after it, each after its own tail
        end += (node.tail or "").count("\n")
        node = node.getparent()
    return start, end


Item = tuple[etree._Element, tuple[str, str, str | None]]
ABSTRACT_ELEMENT = {"atom": "summary", "rss": "description"}


def _entry(rank: int, element: etree._Element, fields: tuple[str, str, str | None], kind: str) -> ParsedEntry:
    title, abstract, arxiv_id = fields
    title = field_text(title, "title")
    if not title_fingerprint(title):
        raise BadItemError("title has no letters or digits")
    return ParsedEntry(rank, title, field_text(abstract, ABSTRACT_ELEMENT[kind]), *span(element), arxiv_id)


def _listing(kind: ListingKind, items: Iterator[Item], text: str) -> ParsedListing:
    """Entries and rejects from (element, (title, abstract, arXiv id)) items, checked for plausibility."""
    lines = text.split("\n")
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    for element, fields in items:
        try:
            entries.append(_entry(len(entries) + 1, element, fields, kind))
        except BadItemError as exc:
            start, end = span(element)
            rejects.append(Reject(start, end, str(exc), "\n".join(lines[start - 1 : end])))
    if not entries and not rejects:
        raise NotAListingError(f"an {kind} feed with no entries", 1)
    if not entries:
        raise NotAListingError(f"no usable entries: {rejects[0].reason}", rejects[0].line_start)
    return check_plausible(ParsedListing(kind, entries, rejects), "entries")


def _feed_day(*values: str | None) -> dt.date | None:
    """The first readable date, as printed in the feed's own time zone (arXiv dates its feeds in US Eastern)."""
    for value in values:
        value = (value or "").strip()
        if not value:
            continue
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(value).date()
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    return None


def parse_atom(text: str) -> ParsedListing:
    """Parse an arXiv API answer (Atom): entry titles, summaries and ids (`http://arxiv.org/abs/ID`)."""
    root = read_xml(text)
    if root.tag != f"{ATOM}feed":
        raise NotAListingError(f"an XML document whose root is <{etree.QName(root).localname}>, not an Atom feed", 1)
    items = (
        (e, (_text(e.find(f"{ATOM}title")), _text(e.find(f"{ATOM}summary")), arxiv_in(_text(e.find(f"{ATOM}id")))))
        for e in root.iter(f"{ATOM}entry")
    )
    listing = _listing("atom", items, text)
    listed_on = _feed_day(root.findtext(f"{ATOM}updated"))
    return ParsedListing(
        "atom", listing.entries, listing.rejects, None, listed_on, _heading(root.findtext(f"{ATOM}title"))
    )


def _heading(value: str | None) -> str | None:
    heading = " ".join((value or "").split())
    return heading or None


def _plain(description: str) -> str:
    """An RSS description as text: RSS 1.0 feeds carry HTML paragraphs; 2024 feeds an 'Announce Type' prefix."""
    if "<" in description:
        description = html.fragment_fromstring(description, create_parent="div").text_content()
    return _RSS_PREFIX.sub("", description)


def _rss_item(item: etree._Element, ns: str) -> tuple[str, str, str | None]:
    title = _RSS1_TITLE_SUFFIX.sub("", _text(item.find(f"{ns}title")))
    link, guid = _text(item.find(f"{ns}link")), _text(item.find(f"{ns}guid"))
    return title, _plain(_text(item.find(f"{ns}description"))), arxiv_in(guid, link, item.get(f"{RDF}about") or "")


def parse_rss(text: str) -> ParsedListing:
    """Parse an arXiv RSS feed (RSS 2.0 `<rss>` or RSS 1.0 `<rdf:RDF>`): item titles, abstracts and ids."""
    root = read_xml(text)
    if root.tag == "rss":
        ns, channel = "", root.find("channel")
    elif root.tag == f"{RDF}RDF":
        ns, channel = RSS1, root.find(f"{RSS1}channel")
    else:
        raise NotAListingError(f"an XML document whose root is <{etree.QName(root).localname}>, not an RSS feed", 1)
    if channel is None:
        raise NotAListingError("an RSS feed with no channel", 1)
    items = ((i, _rss_item(i, ns)) for i in root.iter(f"{ns}item"))
    listing = _listing("rss", items, text)
    listed_on = _feed_day(
        channel.findtext(f"{ns}pubDate"), channel.findtext(f"{ns}lastBuildDate"), channel.findtext(f"{DC}date")
    )
    return ParsedListing(
        "rss", listing.entries, listing.rejects, None, listed_on, _heading(channel.findtext(f"{ns}title"))
    )
