#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install geosentry into it.
# Idempotent: re-installs only when pyproject.toml changed. Prints the venv path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GEOSENTRY_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "geosentry needs Python >= 3.11 (found $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "creating virtual environment in $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.geosentry-install"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1) $root"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing geosentry and its dependencies (first time: a few minutes, torch is large)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$root[test]" >&2
  echo "$want" > "$stamp"
fi
# chromium, prometheus, docker-compose for tests/ops (only what is missing; skips say why)
"$root/scripts/system-deps.sh" >&2 || echo "scripts/system-deps.sh failed: tests/ops may skip" >&2
echo "$venv"
