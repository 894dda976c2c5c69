#!/usr/bin/env bash
# Makes the README's pictures with the project's own commands (run from the repository root,
# after scripts/setup.sh; needs ../shared/data for the geomagnetic and events examples):
#   console.png        the console during the Iceland 2014 swarm replay (tests/ops browser test)
#   plot-waveforms.png geosentry plot: BW.UH1-UH4 with the alerts of geosentry run
#   plot-geomag.png    geosentry plot: Boulder 2016-01-18/19 with the alerts of deploy/geomag.toml
# PNGs are reduced to a 256-colour palette (Pillow, a matplotlib dependency) to stay small.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${GEOSENTRY_VENV:-.venv}/bin/python"
out=docs/img
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

GEOSENTRY_SCREENSHOTS="$work" "$py" -m pytest -q tests/ops/test_console_browser.py -k events
cp "$work/console-events.png" "$out/console.png"

"$py" - "$work/uh" <<'PY'
import sys
from pathlib import Path
from geosentry.stream.testing import demo_stream
d = Path(sys.argv[1]); d.mkdir()
for tr in demo_stream():
    tr.write(str(d / f"{tr.id}.mseed"), format="MSEED", reclen=512, encoding="STEIM2")
PY
"$py" -m geosentry.stream.cli run --source "$work/uh" --sink "jsonl:$work/uh.jsonl" 2>/dev/null
"$py" -m geosentry.stream.cli plot "$work/uh" --alerts "$work/uh.jsonl" --out "$out/plot-waveforms.png" \
  --title "BW.UH1-UH4 (ObsPy's recordings) with the alerts of geosentry run (default detectors)"

"$py" - "${GEOSENTRY_SHARED_DATA:-../shared/data}" "$work/bou.min" <<'PY'
import sys
from pathlib import Path
src = Path(sys.argv[1]) / "geomag/usgs-geomag-algorithms/adjusted/BOU201601vmin.min"
lines = src.read_text(errors="replace").splitlines()
keep = [ln for ln in lines if not ln[:4].isdigit() or ln.startswith(("2016-01-18", "2016-01-19"))]
for k, ln in enumerate(keep):  # two +250 nT one-sample spikes in H: artefacts to flag
    if ln.startswith(("2016-01-18 06:00", "2016-01-18 14:30")):
        p = ln.split()
        p[3] = f"{float(p[3]) + 250:.2f}"
        keep[k] = " ".join(p[:3]) + "     " + "  ".join(f"{float(x):8.2f}" for x in p[3:7])
Path(sys.argv[2]).write_text("\n".join(keep) + "\n")
PY
"$py" -m geosentry.stream.cli run --config deploy/geomag.toml --source "$work/bou.min" \
  --sink "jsonl:$work/bou.jsonl" 2>/dev/null
"$py" -m geosentry.stream.cli plot "$work/bou.min" --alerts "$work/bou.jsonl" --out "$out/plot-geomag.png" \
  --title "NT.BOU 2016-01-18/19 (1-min data; two +250 nT spikes injected in H at 06:00 and 14:30) with the alerts of geosentry run --config deploy/geomag.toml"

"$py" - "$out"/console.png "$out"/plot-waveforms.png "$out"/plot-geomag.png <<'PY'
import sys
from PIL import Image
for path in sys.argv[1:]:
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(path)
PY
