#!/usr/bin/env bash
# Create (or reuse) the separate virtual environment for GaMMA (PyPI `gmma`, AI4EPS, MIT), the
# second offline association reference (issue 17). gmma 1.2.17 pins scikit-learn == 1.7 and needs
# numba, so it lives outside the project's venv; geosentry exchanges files with it
# (bench/gamma_reference.py) and never imports it. Not part of the main install and not needed
# by CI: tests that need it skip when it is absent.
# Idempotent: re-installs only when the pins below change. Prints the venv's python path.
#   GEOSENTRY_GAMMA_VENV  venv folder (default: <repo>/.venv-gamma)
#   PYTHON                interpreter to create it with (default: python3, >= 3.10)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GEOSENTRY_GAMMA_VENV:-$root/.venv-gamma}"
python="${PYTHON:-python3}"
# gmma's own requirements (scikit-learn pinned by it, scipy, numpy, pyproj, tqdm, numba) plus
# pandas, which its association() uses without declaring it: the versions measured in README
pins="gmma==1.2.17 scikit-learn==1.7.0 numpy==2.4.6 scipy==1.17.1 numba==0.68.1 llvmlite==0.50.0 pandas==3.1.1 pyproj==3.7.2 tqdm==4.70.1"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "gamma-env: GaMMA needs Python >= 3.10 (found $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "gamma-env: creating virtual environment in $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.geosentry-gamma"
if [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
  echo "gamma-env: installing $pins into $venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $pins >&2
  "$venv/bin/python" -c 'import gamma.utils, pandas, pyproj' >&2
  echo "$pins" > "$stamp"
fi
echo "$venv/bin/python"
