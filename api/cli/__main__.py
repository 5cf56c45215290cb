"""`python -m api.cli`: the `papers` command."""

import sys

from api.cli.main import main

sys.exit(main())
