#!/usr/bin/env bash
# Create (or reuse) the separate virtual environment for PyOcto, the offline association
# reference (issue 17). PyOcto 0.2.2 pins numpy < 2 on Python 3.11, so it cannot live in the
# project's venv; geosentry exchanges files with it (bench/pyocto_reference.py). Not part of the
# main install and not needed by CI: tests that need it skip when it is absent.
# Idempotent: re-installs only when the pins below change. Prints the venv's python path.
#   GEOSENTRY_PYOCTO_VENV  venv folder (default: <repo>/.venv-pyocto)
#   PYTHON                 interpreter to create it with (default: python3, >= 3.9)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GEOSENTRY_PYOCTO_VENV:-$root/.venv-pyocto}"
python="${PYTHON:-python3}"
# PyOcto pins numpy < 2 (Python <= 3.11) and needs pandas and pyproj (its coordinate transform)
pins="pyocto==0.2.2 numpy==1.26.4 pandas==3.0.6 pyproj==3.7.2"  # the versions measured in README

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "pyocto-env: PyOcto needs Python >= 3.9 (found $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "pyocto-env: creating virtual environment in $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.geosentry-pyocto"
if [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
  echo "pyocto-env: installing $pins and its pinned dependencies into $venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $pins >&2
  "$venv/bin/python" -c 'import pyocto, numpy, pandas' >&2
  echo "$pins" > "$stamp"
fi
echo "$venv/bin/python"
