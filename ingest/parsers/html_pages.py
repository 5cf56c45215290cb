"""Saved HTML listing pages: a Hugging Face daily papers page and an arXiv `/list/<category>/new` page.

Parsed with lxml's HTML parser (lenient as browsers are). The Hugging Face page carries its
papers as the daily-papers JSON in the `data-props` attribute of the element marked
`data-target="DailyPapers"`; the arXiv page lists `<dt>` (identifier) and `<dd>` (title in
`div.list-title`, abstract in `p.mathjax`) pairs in `<dl>` lists. A page with neither is not a
listing, and the message says what was looked for.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re

from lxml import etree, html

from ingest.parsers.feeds import arxiv_in, span
from ingest.parsers.jsonish import BadItemError, common_day, field_text, hf_entry
from ingest.parsers.plausible import check_plausible
from schema.errors import NotAListingError
from schema.identity import title_fingerprint
from schema.ingest import ParsedEntry, ParsedListing, Reject

NO_ENTRIES = (
    "an HTML page with no entries: neither a Hugging Face daily papers list (an element with "
    "data-target=DailyPapers) nor an arXiv listing (<dl> of <dt> and <dd> with div.list-title)"
)
# "Showing new listings for Monday, 11 March 2024" (2024 on); "New submissions for Mon, 11 Mar 24" (before).
_DATELINES = (
    (re.compile(r"listings for \w+, (\d{1,2} \w+ \d{4})"), "%d %B %Y"),
    (re.compile(r"submissions for (\w{3}, \d{1,2} \w{3} \d{2})\b"), "%a, %d %b %y"),
)
_DESCRIPTOR = re.compile(r"^\s*Title:\s*")


def _document(text: str) -> html.HtmlElement:
    try:
        return html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:  # an empty document, or one lxml cannot read at all
        raise NotAListingError(f"unreadable HTML: {exc}", 1) from None


def _hf_page(holder: html.HtmlElement) -> ParsedListing:
    """The daily-papers items in a Hugging Face page's `data-props`: one listing of the page's day."""
    line = holder.sourceline or 1
    try:
        props = json.loads(holder.get("data-props") or "")
    except ValueError as exc:
        raise NotAListingError(f"the DailyPapers element's data-props is not JSON ({exc})", line) from None
    items = props.get("dailyPapers") if isinstance(props, dict) else None
    if not isinstance(items, list) or not items:
        raise NotAListingError("a Hugging Face papers page whose DailyPapers list is empty", line)
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    for item in items:
        try:  # raw None: a saved page is one listing, whatever days its items carry
            entries.append(hf_entry(item, len(entries) + 1, (line, line), None))
        except BadItemError as exc:
            rejects.append(Reject(line, line, str(exc), json.dumps(item, ensure_ascii=False)))
    if not entries:
        raise NotAListingError(f"no usable entries: {rejects[0].reason}", line)
    listing = ParsedListing("html", entries, rejects, None, common_day(entries), "Daily Papers")
    return check_plausible(listing, "items")


def _dateline(doc: html.HtmlElement) -> dt.date | None:
    for heading in doc.iter("h3"):
        text = " ".join(heading.text_content().split())
        for pattern, layout in _DATELINES:
            match = pattern.search(text)
            if match:
                try:
                    return dt.datetime.strptime(match.group(1), layout).date()
                except ValueError:
                    continue
    return None


def _arxiv_entry(rank: int, dt_: html.HtmlElement, dd: html.HtmlElement) -> ParsedEntry:
    titles = dd.find_class("list-title")
    title = field_text(_DESCRIPTOR.sub("", titles[0].text_content()) if titles else None, "div.list-title")
    if not title_fingerprint(title):
        raise BadItemError("title has no letters or digits")
    paragraphs = [p for p in dd.iter("p") if "mathjax" in (p.get("class") or "").split()]
    if not paragraphs:
        raise BadItemError("no abstract (p.mathjax): was the page saved without abstracts?")
    abstract = field_text(paragraphs[0].text_content(), "p.mathjax")
    links = [a.get("href") or "" for a in dt_.iter("a")]
    return ParsedEntry(rank, title, abstract, span(dt_)[0], span(dd)[1], arxiv_in(*links, dt_.text_content()))


def _arxiv_page(
    pairs: list[tuple[html.HtmlElement, html.HtmlElement]], doc: html.HtmlElement, text: str
) -> ParsedListing:
    lines = text.split("\n")
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    for dt_, dd in pairs:
        try:
            entries.append(_arxiv_entry(len(entries) + 1, dt_, dd))
        except BadItemError as exc:
            start, end = span(dt_)[0], span(dd)[1]
            rejects.append(Reject(start, end, str(exc), "\n".join(lines[start - 1 : end])))
    if not entries:
        raise NotAListingError(f"no usable entries: {rejects[0].reason}", rejects[0].line_start)
    # The list's own heading ("Machine Learning"), not the site banner's.
    heading = next((" ".join(h.text_content().split()) for h in doc.xpath('//*[@id="dlpage"]//h1')), None)
    return check_plausible(ParsedListing("html", entries, rejects, None, _dateline(doc), heading or None), "entries")


def _pairs(doc: html.HtmlElement) -> list[tuple[html.HtmlElement, html.HtmlElement]]:
    """Each `<dt>` with the `<dd>` after it, in lists whose `<dd>`s carry a div.list-title."""
    pairs = []
    for listing in doc.iter("dl"):
        children = [c for c in listing if c.tag in ("dt", "dd")]
        for first, second in itertools.pairwise(children):
            if first.tag == "dt" and second.tag == "dd" and second.find_class("list-title"):
                pairs.append((first, second))
    return pairs


def parse_html(text: str) -> ParsedListing:
    """Parse a saved Hugging Face daily papers page or arXiv listing page; a page with neither is not a listing."""
    doc = _document(text)
    holder = next(iter(doc.xpath('//*[@data-target="DailyPapers"][@data-props]')), None)
    if holder is not None:
        return _hf_page(holder)
    pairs = _pairs(doc)
    if pairs:
        return _arxiv_page(pairs, doc, text)
    raise NotAListingError(NO_ENTRIES, 1)
