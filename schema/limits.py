"""Every bound the API enforces, in one place: REST, GraphQL and the services read them from here."""

from __future__ import annotations

DEFAULT_PAGE = 20
MAX_PAGE = 100  # items per page of any collection
DEFAULT_ENTRIES_PAGE = 50  # a listing's entries per page on REST
MAX_BATCH = 500  # ids per batch lookup
MAX_QUERY_CHARS = 2000  # a search or filter text
MAX_TEXT_CHARS = 10_000  # free text given as an example (recommendations)
MAX_WINDOW = 1000  # deepest search result reachable by paging
# Rows a total counts at most: past them it says "at least" (a common word matches most of a million papers, and
# counting them all would take seconds of a core per request).
MAX_COUNTED = 10_000
MAX_QUERY_STEMS = 32  # word stems of a keyword query that are ranked (the rarest); each reads one postings list
MAX_EXAMPLES = 50  # example ids of one recommendation request
# Nearest-neighbour searches one request may make (`similar` per paper, `recommend` per alias): nothing
# batches them, so aliases and nesting must not multiply the work.
MAX_NEIGHBOUR_SEARCHES = 100
# Texts the model embeds for one request (queries, examples not embedded yet): about a second of the local model.
MAX_EMBEDDED_TEXTS = 16
TITLE_MATCH_CHARS = (3, 500)
YEARS = (1990, 2100)  # a listing's year
MAX_SOURCE_CHARS = 200  # the name an input is reported under

# GraphQL documents
MAX_DEPTH = 8
MAX_TOKENS = 2000
MAX_ALIASES = 15

# Facets, export, autocomplete
MAX_FACET_GROUPS = 200  # groups one facet answer holds, largest counts first
EXPORT_BATCH = 1000  # papers read per statement while exporting: the memory an export holds at once
AUTOCOMPLETE_CHARS = (1, 200)  # what was typed
MAX_SUGGESTIONS = 10

# HNSW candidates kept per nearest-neighbour search (pgvector's hnsw.ef_search, 1 to 1000): the default, chosen by
# measurement (docs/similarity.md), what PAPERS_EF_SEARCH may set, and where `papers hnsw tune` starts (docs/design.md,
# "HNSW tuned to the collection").
EF_SEARCH = 100
EF_SEARCH_RANGE = (1, 1000)
# The recall@10 `papers hnsw tune` raises ef_search to reach on the collection itself (sql/hnsw.py).
HNSW_RECALL = 0.95
