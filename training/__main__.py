"""``python -m training ...`` -> :func:`training.cli.main`."""

from __future__ import annotations

import sys

from training.cli import main

sys.exit(main(sys.argv[1:]))
