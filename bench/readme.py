"""The README's "## Benchmarks" section: how to run the benchmark, how to read its table, then
the table itself (``python -m bench --readme``)."""

from __future__ import annotations

from pathlib import Path

from bench.common import RESULTS, ROOT

README_INTRO = """## Benchmarks

Issue 6's benchmark, one command from a fresh clone (SeisBench is a benchmark-only optional
dependency, GPL, never vendored: `pip install -e '.[bench]'`; without it that column is skipped):

```bash
python -m bench                    # full: about 10 minutes on 2 cores
python -m bench --quick            # small N, under 2 minutes (tests/bench runs its smallest case)
python -m bench --kafka auto       # also latency to alerts acknowledged by a private Kafka broker
```

It writes `bench/results/latest.json` (every repeat), `latest.md` (the table below),
`latest_throughput.png` and `latest_latency.png`. Load: N three-component 100 Hz stations built
from ObsPy's BW.UH* recordings (tiled and shifted, N/E with added noise, each station's start
offset by 0-4 s so record boundaries are spread as in a real network) as real 512-byte Steim2
records, through `Pipeline` (pymseed decode → windows → micro-batched inference → alerts →
sink) with the service's default settings (one inference worker per core), and **scaled out**:
one service process per core, each owning a share of the stations as Kafka consumer-group
members own partitions (`bench/scaleout.py`, `deploy/systemd/geosentry@.service`), started
together. Throughput is fed as fast as possible; latency, capacity and overload runs are paced
at the data's own rate once the first 29 s (before the first window) are handed over at once,
and a paced record *arrives* when it is due (as on a socket), so a backlog in front of the
service counts as latency and can be shed; latency runs use the latency-mode settings
(`max_batch = 16`, `max_wait_s = 0.005`, `max_lag_s = 2`, picker stride 1 s).

References, same machine and run: SeisBench `annotate` runs our exported network, frozen as
the service runs it, inside its PhaseNet wrapper (same network and data), on a Stream it did not
have to decode, two ways: **whole traces** (the 230 s of every station in memory at once, cut
into half-overlapping windows: an offline job, it cannot serve a live stream) and as a
**streaming wrapper** (what a live service built on `annotate` does: every 15 s of data, each
station's newest 30 s window, all stations in one call, so exactly the service's number of
forward passes; the slices are cut before the clock starts). Both get as many torch threads as
the machine has cores (plus a one-core row for whole traces), and SeisBench's own PhaseNet
(random weights) is shown for reference. ObsPy runs `recursive_sta_lta` + `trigger_onset` once
over each whole trace. The batch-size sweep runs on CUDA when a GPU is present (the service's
`inference.device = "auto"` uses it too). The machine is shared: compare ratios within one run.

Reading the table (every figure is in the rows below):
* The throughput floors come from back-to-back pairs: the service (defaults; one process, and
  one process per core as a consumer group deploys it) and SeisBench on the same network, so
  that the shared machine's drift hits both sides of each ratio (rows "run back to back";
  separate runs minutes apart drift by up to ~30 %). The floors use the faster deployment and
  the issue-floors row names it. The pairs compare the service with SeisBench's streaming
  wrapper (what a live service built on `annotate` runs) and with whole-trace
  `annotate`, an offline job that is given finished, decoded traces and stacks big batches for
  torch's intra-op threads, where the service decodes every 512-byte record as it arrives.
* A stream reads each window's outputs only over the stretch that window owns, so the service
  decodes only that stretch (the picker's `forward_range`, rows "scored stretch only"), where
  SeisBench decodes whole windows and averages their overlaps. Decoding calls libmseed
  directly, one reused record struct per thread.
* Precision: the service's default (`inference.precision = "auto"`) runs the picker and the
  seismic autoencoder at bfloat16 on a CPU with native bf16 (validated on held-out data, see
  Models). The pairs compare like for like (SeisBench's wrapper under the same autocast), and
  also the service pinned to fp32 against SeisBench at fp32, and each tool's defaults. On a CPU
  without native bf16 everything runs at fp32; the line above the table says what this run's
  CPU chose. The run makes that choice once, at its start, and pins it for every service it
  builds (`auto` times bf16 against fp32 at each load, which a busy machine can tip).
* Capacity is estimated from fast-fed throughput and checked with paced input; a network-wide
  burst of picks (all stations carry the same tiled events) once made network coincidence
  quadratic in the station count, which was what limited the paced checks before this run.
* One process decodes and cuts windows on its event loop under the GIL ("where the time goes":
  decode + windows against the inference batches) while its inference workers run beside it.
  Scaled out to one process per core, ingestion runs in parallel too, but each process holds
  its own models and fills smaller batches: which deployment is faster depends on the detectors
  (the "scaled out" rows). Capacity and the floors use the faster one, and say which.
* The picker's forward pass is most of the CPU. Inside the pipeline an inference batch takes
  longer than the bare forward pass of the same windows; outside it, the service's `infer` on
  the benchmark's own windows costs what the bare pass does, so the difference is sharing: the
  worker waits for a core or the GIL held by the event loop, which with two workers is busy
  nearly all the time (py-spy) and is then the ceiling of one process. Whole-trace `annotate`
  has no ingestion and its two torch threads scale well on one batch (row "picker forward
  alone"); scaling out runs one event loop per core.
* Latency mode (stride 1 s) needs one forward pass per station per second: its capacity is the
  forward rate at small batches. Past it, windows whose newest record arrived more than
  `max_lag_s` earlier are shed (counted, one health-alert episode), whether they waited in the
  inference queue or in front of the service (the overload row: twice the capacity, then
  three quarters of the stations fall silent, and the row says when shedding stopped and the
  latency of the alerts after that).
* STA/LTA streams its filter and STA/LTA state (only new samples are computed), but at a 1 s
  stride its cost is per-window Python overhead, not arithmetic; ObsPy's row is one C call over
  a whole trace, which a live stream cannot do.

"""


def update_readme(md: str, readme: Path = ROOT / "README.md") -> None:
    """Put the table into README's "## Benchmarks" section (inserted before "## Development")."""
    text = readme.read_text()
    figs = "".join(f"![{f}](bench/results/{f})\n" for f in ("latest_throughput.png",
                                                              "latest_latency.png")
                   if (RESULTS / f).exists())
    section = README_INTRO + md.rstrip() + "\n\n" + (figs + "\n" if figs else "")
    if "\n## Benchmarks\n" in text:
        head, rest = text.split("\n## Benchmarks\n", 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = head + "\n" + section + tail.lstrip("\n")
    else:
        head, tail = text.split("\n## Development\n", 1)
        text = head + "\n" + section + "## Development\n" + tail
    readme.write_text(text)
