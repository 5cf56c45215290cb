"""The REST adapter under /v1: thin routes over the service layer, errors as RFC 9457 problems."""

from __future__ import annotations

from api.rest import browse, listings, meta, papers, search

ROUTES = [*papers.ROUTES, *browse.ROUTES, *search.ROUTES, *listings.ROUTES, *meta.ROUTES]
