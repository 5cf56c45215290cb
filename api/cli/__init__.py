"""The `papers` command (`main`), run as the console script or `python -m api.cli`."""

from api.cli.main import main

__all__ = ["main"]
