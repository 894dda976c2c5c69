"""``python -m geosentry.training ...`` -> :func:`geosentry.training.cli.main`."""

from __future__ import annotations

import sys

from geosentry.training.cli import main

sys.exit(main(sys.argv[1:]))
