"""The REST adapter under /v1: thin routes over the service layer, errors as RFC 9457 problems."""

from __future__ import annotations

from api.rest import listings, meta, papers, search

ROUTES = [*papers.ROUTES, *search.ROUTES, *listings.ROUTES, *meta.ROUTES]
