"""The REST adapter under /v1: thin routes over the service layer, errors as RFC 9457 problems."""

from __future__ import annotations

from api.rest import listings, meta, papers, search
from api.rest.params import strict_booleans

ROUTES = [*papers.ROUTES, *search.ROUTES, *listings.ROUTES, *meta.ROUTES]
GUARDS = [strict_booleans]
