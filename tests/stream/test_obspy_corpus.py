"""Every file of ObsPy's own miniSEED test corpus (``obspy/io/mseed/tests/data``: odd encodings,
broken last records, noise records, full SEED volumes, files that are not miniSEED at all)
goes through ``geosentry run --source FILE --sink jsonl:...``, one run per file: exit code 0,
no traceback logged, bounded memory, no hang.

Files that cannot be miniSEED (``not*.mseed``, the empty file, text) also exit 0: their bytes
are counted as decode errors like any corrupt record, which is what a replay of a directory
holding a stray file should do.

One subprocess imports the service once and calls ``geosentry.stream.cli.main(["run", ...])`` for each
file (a fresh interpreter per file would cost ~3 s of imports each); it prints one JSON line
per file: exit code, whether a traceback was logged, peak-RSS growth, seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import obspy
import pytest

CORPUS = Path(obspy.__file__).resolve().parent / "io" / "mseed" / "tests" / "data"
MAX_RSS_GROWTH_MB = 300  # per file, after a warm-up run has loaded the models
PER_FILE_TIMEOUT_S = 30
#: files known to hang elsewhere than the decoder (none at present): name -> reason
XFAIL: dict[str, str] = {}

_RUNNER = r"""
import io, json, logging, resource, signal, sys, time, contextlib
from geosentry.stream.cli import main

class Hang(Exception):
    pass

def on_alarm(*_):
    raise Hang()

signal.signal(signal.SIGALRM, on_alarm)
out_dir, timeout_s, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
with contextlib.redirect_stderr(io.StringIO()):  # warm-up: loads the detectors' models once
    main(["--log-level", "ERROR", "run", "--source", files[0], "--sink", f"jsonl:{out_dir}/w"])
for i, path in enumerate(files):
    err = io.StringIO()
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)  # main() configures logging afresh onto this run's stderr
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    signal.alarm(timeout_s)
    try:
        with contextlib.redirect_stderr(err):
            rc = main(["--log-level", "WARNING", "run", "--source", path,
                       "--sink", f"jsonl:{out_dir}/{i}.jsonl"])
    except Hang:
        rc = "hang"
    except BaseException as exc:
        rc = f"raised {exc!r}"
    finally:
        signal.alarm(0)
    text = err.getvalue()
    print(json.dumps({"file": path, "rc": rc, "traceback": "Traceback" in text,
                      "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        - rss0) / 1024,
                      "seconds": round(time.monotonic() - t0, 2), "stderr": text[-2000:]}),
          flush=True)
"""


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    files = _corpus_files()
    if not files:
        pytest.skip(f"ObsPy is installed without its test data ({CORPUS})")
    out = tmp_path_factory.mktemp("corpus")
    done = subprocess.run([sys.executable, "-c", _RUNNER, str(out), str(PER_FILE_TIMEOUT_S)]
                          + [str(f) for f in files], capture_output=True, text=True,
                          timeout=PER_FILE_TIMEOUT_S * 4 + 240)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[str(Path(row["file"]).relative_to(CORPUS))] = row
    assert len(results) == len(files), done.stderr[-3000:]
    return results


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", [str(p.relative_to(CORPUS)) for p in _corpus_files()]
                         or ["(no corpus)"])
def test_obspy_corpus_file_runs_cleanly(corpus_results: dict[str, dict[str, object]],
                                        name: str) -> None:
    if name in XFAIL:
        pytest.xfail(XFAIL[name])
    row = corpus_results[name]
    assert row["rc"] == 0, row
    assert not row["traceback"], row["stderr"]
    assert float(row["rss_growth_mb"]) < MAX_RSS_GROWTH_MB, row  # type: ignore[arg-type]


def test_a_file_that_is_not_miniseed_is_counted_with_its_place(
        corpus_results: dict[str, dict[str, object]]) -> None:
    """``not.mseed`` (text): exit 0, one decode error naming the file and byte 0."""
    row = corpus_results.get("not.mseed")
    if row is None:
        pytest.skip("not.mseed is not in this ObsPy's corpus")
    assert row["rc"] == 0
    assert "decode error (not_mseed)" in str(row["stderr"])
    assert f"at byte 0 of {CORPUS / 'not.mseed'}" in str(row["stderr"])
