"""The streamed STA/LTA equals ObsPy's offline one: filter and STA/LTA state carried across
windows gives, sample for sample, the triggers of ``recursive_sta_lta`` + ``trigger_onset`` on
the whole trace; a reset (long gap) restarts the state with its warm-up."""

from __future__ import annotations

import numpy as np
import obspy
from obspy.signal.trigger import recursive_sta_lta, trigger_onset

from geosentry.stream.testing import mseed_records, run_pipeline, synthetic_trace

DET = {"name": "sta", "type": "stalta", "window_s": 10.0, "stride_s": 1.0, "sta_s": 0.5,
       "lta_s": 5.0, "trigger_on": 3.0, "trigger_off": 1.5, "bandpass_hz": [1.0, 20.0]}


async def _detections(payloads: list[bytes]) -> list[int]:
    sink, _, _ = await run_pipeline(payloads, {"detectors": [DET],
                                               "coincidence": {"enabled": False}})
    return sorted(a.time_ns for a in sink.alerts if a.kind == "detection")


def _obspy_onsets(tr: obspy.Trace) -> list[int]:
    f = tr.copy()
    f.data = f.data.astype(np.float64)
    f.filter("bandpass", freqmin=1.0, freqmax=20.0, corners=4, zerophase=False)
    cft = recursive_sta_lta(f.data, 50, 500)
    return [tr.stats.starttime.ns + int(round(on * 1e7)) for on, _ in
            trigger_onset(cft, 3.0, 1.5)]


async def test_streamed_triggers_equal_obspy_on_the_whole_trace() -> None:
    tr = synthetic_trace("XX.STA..HHZ", 120, seed=7, events_s=[20.0, 47.5, 90.25])
    expected = _obspy_onsets(tr)
    assert len(expected) >= 3
    assert await _detections(mseed_records(tr)) == expected


async def test_a_long_gap_restarts_the_state_with_its_warm_up() -> None:
    tr = synthetic_trace("XX.STA..HHZ", 120, seed=8, events_s=[20.0, 90.0])
    first, second = tr.slice(endtime=tr.stats.starttime + 60), tr.slice(tr.stats.starttime + 70)
    got = await _detections(mseed_records(first) + mseed_records(second))
    # each piece is a new stream to ObsPy too: filtered and warmed up from its own first sample
    assert got == _obspy_onsets(first) + _obspy_onsets(second)
