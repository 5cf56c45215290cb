"""The ASGI entry point for servers: `api.asgi:app`, configured from the environment."""

from __future__ import annotations

import os

from api.app import create_app
from api.process import configure
from schema.settings import Settings

configure()
app = create_app(Settings.from_env(os.environ))
