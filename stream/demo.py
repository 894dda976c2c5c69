"""``geosentry demo``: ObsPy's bundled BW.UH1-UH4 recordings through the default detectors
(STA/LTA, the shipped CNN picker and RNN detector) plus the shipped seismic anomaly autoencoder.

The recordings (2010-05-27 16:24-16:28 UTC) hold three local events that ObsPy's own
coincidence-trigger tutorial finds; the demo streams them as real 512-byte miniSEED records,
prints alerts as JSON lines and, on stderr, a summary checked against ObsPy's offline
``coincidence_trigger`` on the same data (the exit status is that STA/LTA check) and the windows
the autoencoder flags, each marked with whether it holds a reference event.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from obspy import UTCDateTime
from obspy.signal.trigger import coincidence_trigger

from typing import Any

from geosentry.stream.config import default_config_dict, load_config_dict
from geosentry.stream.decode.mseed import encode_traces as mseed_records
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.records import ns_to_iso
from geosentry.stream.sinks import open_sink
from geosentry.stream.sources.files import FileSource
from geosentry.stream.testing import demo_stream


#: As in ObsPy's coincidence-trigger tutorial for these short-period stations.
DEMO_BAND_HZ = (10.0, 20.0)


#: Shipped models the demo runs even when they are not default detectors (the seismic
#: autoencoder is an anomaly scorer at a controlled false-alarm rate: it does not beat STA/LTA
#: at event detection, so ``geosentry.stream.models.default_detector_tables`` leaves it out).
DEMO_EXTRA_MODELS = ("anomaly",)


def demo_config_dict() -> dict[str, Any]:
    """The embedded default detectors (STA/LTA with the band of ObsPy's tutorial, the shipped
    picker and RNN detector) plus the shipped seismic anomaly autoencoder."""
    from geosentry.stream.models import MODELS_DIR

    raw = default_config_dict()
    for table in raw["detectors"]:
        if table["type"] == "stalta":
            table["bandpass_hz"] = list(DEMO_BAND_HZ)
    names = {t["name"] for t in raw["detectors"]}
    for name in DEMO_EXTRA_MODELS:
        if name not in names and (MODELS_DIR / f"{name}.pt").exists():
            raw["detectors"].append({"name": name, "type": "model", "path": f"builtin:{name}",
                                     "missing_components": "zeros"})
    return raw


def reference_events(min_stations: int = 3) -> list[str]:
    """ObsPy's offline answer: coincidence of recursive STA/LTA over the whole traces."""
    st = demo_stream()
    st = st.copy()
    for tr in st:
        tr.data = tr.data.astype("float64")
    st.filter("bandpass", freqmin=DEMO_BAND_HZ[0], freqmax=DEMO_BAND_HZ[1])
    trig = coincidence_trigger("recstalta", 3.5, 1.0, st, min_stations, sta=0.5, lta=10.0)
    return [str(t["time"]) for t in trig]


async def run_demo(sinks: list[str], speed: float = 0.0) -> int:
    cfg = load_config_dict(demo_config_dict(), sinks=sinks, speed=speed)
    with tempfile.TemporaryDirectory(prefix="geosentry-demo-") as tmp:
        for tr in demo_stream():
            Path(tmp, f"{tr.id}.mseed").write_bytes(b"".join(mseed_records(tr)))
        pipeline = Pipeline(cfg, [FileSource(tmp, speed)], [open_sink(s) for s in cfg.sinks],
                            build_detectors(cfg), keep_alerts=True)
        summary = await pipeline.run()
    network = sorted((a for a in summary.delivered if a.station == "*"), key=lambda a: a.time_ns)
    baseline = [a for a in network if a.details.get("detector") == "stalta"]
    expected = reference_events(cfg.coincidence.min_stations)
    out = sys.stderr
    print(f"\ngeosentry demo: {summary.records} miniSEED records from 4 BW.UH* stations, "
          f"{summary.windows} windows, detectors: {', '.join(d.name for d in cfg.detectors)}",
          file=out)
    print(f"alerts: {dict(summary.alerts)}", file=out)
    print(f"network detections ({len(baseline)} by STA/LTA; ObsPy offline coincidence_trigger "
          f"finds {len(expected)}):", file=out)
    for a in network:
        print(f"  {ns_to_iso(a.time_ns)}  {a.details['detector']:<8} stations "
              f"{','.join(a.details['stations'])}", file=out)
    for t in expected:
        print(f"  {t}  reference", file=out)
    anomalies = sorted((a for a in summary.delivered if a.kind == "anomaly"),
                       key=lambda a: (a.time_ns, a.station))
    if any(d.name in DEMO_EXTRA_MODELS for d in cfg.detectors):
        print(f"anomaly windows ({len(anomalies)}; the autoencoder flags 10 s windows unlike "
              f"quiet noise, at ~1 % false alarms on held-out PhaseNet stations):", file=out)
        ref_ns = [UTCDateTime(t).ns for t in expected]
        for a in anomalies:
            end_ns = a.time_ns + int(float(a.details.get("window_s", 0.0)) * 1e9)
            hit = [ns_to_iso(r) for r in ref_ns if a.time_ns <= r < end_ns]
            print(f"  {ns_to_iso(a.time_ns)}  {a.station:<4} score {a.score:8.2f} "
                  f"(threshold {a.threshold:.2f})  "
                  + (f"window holds reference event {hit[0]}" if hit else "no reference event"),
                  file=out)
    return 0 if len(baseline) == len(expected) else 1
