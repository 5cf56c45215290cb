"""The ASGI entry point for servers: `api.asgi:app`, configured from the environment."""

from __future__ import annotations

import os

from api.app import create_app
from api.http.observe import RequestIdFilter
from api.process import configure
from schema.settings import Settings

configure(request_ids=RequestIdFilter())
app = create_app(Settings.from_env(os.environ), freeze_heap=True)
