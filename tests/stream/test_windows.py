"""Windowing policies on real miniSEED bytes: gaps, overlaps, duplicates, out-of-order,
sample-rate change, missing components, channel aliases and resampling."""

from __future__ import annotations

import numpy as np
import obspy

from geosentry.stream.buffer.channel import BufferEventKind
from geosentry.stream.buffer.windows import Windower, WindowSpec
from geosentry.stream.config import BufferConfig
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.records import NS_PER_S, Record
from geosentry.stream.testing import mseed_records, synthetic_trace


def _records(sid: str, seconds: float = 60.0, rate: float = 100.0, start: str = "2024-01-01",
             seed: int = 0) -> list[Record]:
    payloads = mseed_records(synthetic_trace(sid, seconds, rate, start=start, seed=seed))
    return [r for i, p in enumerate(payloads) for r in decode_payload(p, arrival_ns=i)]


def _windower(policy: BufferConfig | None = None, comps: tuple[str, ...] = ("Z",),
              window_s: float = 10.0, stride_s: float = 5.0, rate: float | None = None,
              missing: str = "skip") -> Windower:
    spec = WindowSpec("d", comps, window_s, stride_s, rate, missing)
    return Windower([spec], policy or BufferConfig(max_interpolate_gap_s=0.1,
                                                  reorder_tolerance_s=0.0))


def _run(w: Windower, records: list[Record]):  # type: ignore[no-untyped-def]
    windows, events = [], []
    for r in records:
        ws, es = w.push(r)
        windows += ws
        events += [e.event.kind for e in es]
    ws, es = w.flush()
    return windows + ws, events + [e.event.kind for e in es]


def test_contiguous_stream_tiles_windows_by_stride() -> None:
    recs = _records("XX.A..HHZ", 60)
    windows, events = _run(_windower(), recs)
    assert events == []
    starts = [w.start_ns for w in windows]
    assert np.all(np.diff(starts) == 5 * NS_PER_S)
    assert len(windows) == 11  # (60 - 10) / 5 + 1
    assert windows[0].first and not any(w.first for w in windows[1:])
    np.testing.assert_array_equal(windows[0].data[0], np.concatenate([r.data for r in recs])[:1000])


def test_a_streams_first_window_is_mirrored_before_its_first_sample() -> None:
    """A stream that starts between grid points: its first window starts on the grid point before
    and is filled up to the first sample with the data mirrored about it (not held flat: the step
    from a flat stretch into noise read as an onset, a false pick at every stream's start)."""
    recs = _records("XX.A..HHZ", 60, start="2024-01-01T00:00:02.5")
    windows, _ = _run(_windower(), recs)
    first = windows[0]
    assert first.first and first.start_ns == recs[0].start_ns - 2_500_000_000
    assert first.pad_samples == 250
    data = np.concatenate([r.data for r in recs])
    np.testing.assert_array_equal(first.data[0, 250:], data[:750])
    np.testing.assert_array_equal(first.data[0, :250], data[1:251][::-1])
    assert np.std(first.data[0, :250]) > 0.5 * np.std(data[:250])  # noise, not a flat stretch
    assert not any(w.pad_samples for w in windows[1:])


def test_a_stream_ends_with_a_last_window_that_owns_what_the_grid_left() -> None:
    """At the end of a stream a spec with ``tail`` gets one more window, ending on the last
    sample (off the grid), owning from where the next grid window would have owned to its end;
    without ``tail`` the stream's last ``window - stride`` and less stay unscored. A stream
    shorter than a window gets one window, first and last, mirrored before its first sample."""
    from dataclasses import replace

    from geosentry.stream.detectors.base import owned_range

    policy = BufferConfig(max_interpolate_gap_s=0.1, reorder_tolerance_s=0.0)
    recs = _records("XX.A..HHZ", 37.3)  # ends at 37.3 s; windows 10 s, stride 5 s, lag 2.5 s
    spec = WindowSpec("d", ("Z",), 10.0, 5.0, None, "skip", report_lag_s=2.5)
    plain, _ = _run(Windower([spec], policy), recs)
    tail, _ = _run(Windower([replace(spec, tail=True)], policy), recs)
    assert [w.start_ns for w in tail[:-1]] == [w.start_ns for w in plain]
    last = tail[-1]
    data = np.concatenate([r.data for r in recs])
    t0 = recs[0].start_ns
    assert last.start_ns - t0 == 27_300_000_000 and last.owned_from_samples is not None
    np.testing.assert_array_equal(last.data[0], data[-1000:])  # ends on the last sample
    owned = [owned_range(w, 5.0, 2.5) for w in tail]
    spans = [(w.time_of(lo), w.time_of(hi)) for w, (lo, hi) in zip(tail, owned)]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # they tile time
    assert spans[0][0] == t0 and spans[-1][1] == last.time_of(1000)  # to the stream's end
    grid_end = plain[-1].time_of(owned_range(plain[-1], 5.0, 2.5)[1])
    assert last.time_of(1000) - grid_end > 2 * NS_PER_S  # without it, the last 2.3 s unscored

    short, _ = _run(Windower([replace(spec, tail=True)], policy),
                    _records("XX.A..HHZ", 6.0, start="2024-01-01T00:00:02.5"))
    assert len(short) == 1 and short[0].first and short[0].pad_samples > 0
    assert owned_range(short[0], 5.0, 2.5)[1] == 1000
    assert not _run(_windower(), _records("XX.A..HHZ", 6.0))[0]


def test_a_long_gap_ends_the_stream_before_it_with_a_last_window_too() -> None:
    """A gap too long to bridge resets the channel: the stretch before it gets its last window
    (cut from what the channel held, ``ChannelBuffer.retired``) before the windows after the gap
    start afresh; without ``tail`` the last seconds before the gap stay unscored."""
    from dataclasses import replace

    from geosentry.stream.detectors.base import owned_range

    policy = BufferConfig(max_interpolate_gap_s=0.1, reorder_tolerance_s=0.0)
    recs = _records("XX.A..HHZ", 90)
    t0 = recs[0].start_ns
    gap = [r for r in recs if r.end_ns < t0 + 37 * NS_PER_S or r.start_ns > t0 + 60 * NS_PER_S]
    pre_end = max(r.end_ns for r in gap if r.start_ns < t0 + 37 * NS_PER_S) + 10_000_000
    spec = WindowSpec("d", ("Z",), 10.0, 5.0, None, "skip", report_lag_s=2.5)
    for tail in (False, True):
        windows, events = _run(Windower([replace(spec, tail=tail)], policy), gap)
        assert events.count(BufferEventKind.RESET_GAP) == 1
        before = [w for w in windows if w.start_ns < pre_end and not (w.first and w.start_ns > t0)]
        after = [w for w in windows if w not in before]
        assert after[0].first and after[0].start_ns > pre_end - 10 * NS_PER_S
        owned_end = max(w.time_of(owned_range(w, 5.0, 2.5)[1]) for w in before)
        if tail:
            assert before[-1].owned_from_samples is not None and owned_end == pre_end
        else:
            assert pre_end - owned_end > 2 * NS_PER_S


def test_no_last_window_mixes_a_reset_component_with_the_others_old_data() -> None:
    """Z resets after a gap and the input ends before N's records after the gap arrive: the
    stretch before the gap gets its last window (Z's retired data with N's); no window pairs Z's
    new data with N's old."""
    from dataclasses import replace

    policy = BufferConfig(max_interpolate_gap_s=0.1, reorder_tolerance_s=0.0)
    z, n = _records("XX.A..HHZ", 90, seed=1), _records("XX.A..HHN", 90, seed=2)
    t0 = z[0].start_ns
    pre = [r for pair in zip(z, n) for r in pair if r.end_ns < t0 + 37 * NS_PER_S]
    post_z = [r for r in z if r.start_ns > t0 + 60 * NS_PER_S]
    spec = WindowSpec("d", ("Z", "N"), 10.0, 5.0, None, "skip", report_lag_s=2.5, tail=True)
    windows, _ = _run(Windower([replace(spec, tail=True)], policy), pre + post_z)
    last = [w for w in windows if w.owned_from_samples is not None]
    assert len(last) == 1 and not last[0].first  # the one before the gap, and no other
    assert last[0].start_ns + 10 * NS_PER_S <= t0 + 37 * NS_PER_S


def _drop_samples(rec: Record, k: int) -> Record:
    """Same record with its first ``k`` samples removed (a gap of k samples before it)."""
    return Record(rec.network, rec.station, rec.location, rec.channel,
                  rec.start_ns + k * NS_PER_S // 100, rec.sampling_rate_hz, rec.data[k:],
                  rec.arrival_ns)


def test_short_gap_is_interpolated_not_zero_filled() -> None:
    recs = _records("XX.A..HHZ", 60)
    recs[3] = _drop_samples(recs[3], 5)  # 50 ms gap, under the 100 ms limit
    windows, events = _run(_windower(), recs)
    assert events == ["interpolated"]
    assert len(windows) == 11
    # the 5 missing samples are a straight line between their neighbours, not zeros
    full = _records("XX.A..HHZ", 60)
    i0 = sum(len(r.data) for r in full[:3])  # index of the first missing sample
    w0 = np.concatenate([windows[0].data[0]] + [w.data[0][500:] for w in windows[1:]]
                        ).astype(np.float64)
    expected = np.linspace(full[2].data[-1], recs[3].data[0], 7)[1:-1]
    np.testing.assert_allclose(w0[i0:i0 + 5], expected, rtol=1e-6)
    np.testing.assert_array_equal(w0[i0 + 5:i0 + 50], recs[3].data[:45])


def test_long_gap_resets_the_station() -> None:
    recs = _records("XX.A..HHZ", 60)
    del recs[5]  # several seconds missing
    windows, events = _run(_windower(), recs)
    assert events == ["reset_gap"]
    gap_start = recs[4].end_ns
    # no window spans the gap, and windows restart (first=True) after it
    assert not any(w.start_ns < gap_start < w.start_ns + 10 * NS_PER_S for w in windows)
    assert sum(w.first for w in windows) == 2


def test_duplicates_and_overlaps_are_dropped_and_counted() -> None:
    recs = _records("XX.A..HHZ", 60)
    overlapping = Record("XX", "A", "", "HHZ", recs[2].start_ns, 100.0,
                         np.concatenate([recs[2].data, recs[3].data[:10]]), 0)
    stream = recs[:4] + [recs[2], overlapping] + recs[4:]
    windows, events = _run(_windower(), stream)
    assert events == ["duplicate", "duplicate"]
    clean, _ = _run(_windower(), recs)
    assert [w.start_ns for w in windows] == [w.start_ns for w in clean]
    for a, b in zip(windows, clean):
        np.testing.assert_array_equal(a.data, b.data)


def test_partial_overlap_keeps_only_new_samples() -> None:
    recs = _records("XX.A..HHZ", 60)
    extended = Record("XX", "A", "", "HHZ", recs[2].start_ns, 100.0,
                      np.concatenate([recs[2].data, recs[3].data]), 0)
    stream = recs[:3] + [extended] + recs[3:]
    windows, events = _run(_windower(), stream)
    assert events[0] == "overlap" and events.count("duplicate") == 1
    clean, _ = _run(_windower(), recs)
    for a, b in zip(windows, clean):
        np.testing.assert_array_equal(a.data, b.data)


def test_out_of_order_within_tolerance_is_reordered() -> None:
    recs = _records("XX.A..HHZ", 60)
    swapped = recs[:3] + [recs[4], recs[3]] + recs[5:]
    policy = BufferConfig(max_interpolate_gap_s=0.1, reorder_tolerance_s=30.0)
    windows, events = _run(_windower(policy), swapped)
    assert events == ["reordered"]
    clean, _ = _run(_windower(), recs)
    assert len(windows) == len(clean)
    for a, b in zip(windows, clean):
        np.testing.assert_array_equal(a.data, b.data)


def test_out_of_order_beyond_tolerance_is_a_gap_then_a_late_duplicate() -> None:
    recs = _records("XX.A..HHZ", 60)
    late = recs[:3] + recs[4:] + [recs[3]]
    windows, events = _run(_windower(), late)  # tolerance 0
    assert events == ["reset_gap", "duplicate"]


def test_sample_rate_change_resets() -> None:
    first = _records("XX.A..HHZ", 30, rate=100.0)
    t_next = obspy.UTCDateTime(first[-1].end_ns / NS_PER_S + 0.01)
    second = _records("XX.A..HHZ", 30, rate=50.0, start=str(t_next))
    windows, events = _run(_windower(), first + second)
    assert events == ["reset_rate"]
    assert {w.sampling_rate_hz for w in windows} == {100.0, 50.0}


def test_components_aligned_by_channel_code_z12() -> None:
    recs = [r for cha, seed in (("HHZ", 0), ("HH1", 1), ("HH2", 2))
            for r in _records(f"XX.A..{cha}", 30, seed=seed)]
    recs.sort(key=lambda r: r.end_ns)
    windows, _ = _run(_windower(comps=("Z", "N", "E")), recs)
    assert windows and all(w.channels == ("HHZ", "HH1", "HH2") for w in windows)
    z = np.concatenate([r.data for r in recs if r.channel == "HHZ"])
    n = np.concatenate([r.data for r in recs if r.channel == "HH1"])
    np.testing.assert_array_equal(windows[0].data[0], z[:1000])
    np.testing.assert_array_equal(windows[0].data[1], n[:1000])


def test_missing_component_skip_reports_once_and_emits_nothing() -> None:
    recs = _records("XX.A..HHZ", 60)
    windows, events = _run(_windower(comps=("Z", "N", "E")), recs)
    assert windows == [] and events == ["missing_component"]


def test_missing_component_zeros_policy_marks_rows() -> None:
    recs = _records("XX.A..HHZ", 60)
    windows, events = _run(_windower(comps=("Z", "N", "E"), missing="zeros"), recs)
    assert events == ["missing_component"]
    assert windows and all(w.channels == ("HHZ", "", "") for w in windows)
    assert all(not w.data[1:].any() and w.data[0].any() for w in windows)


def test_resampled_to_model_rate() -> None:
    recs = _records("XX.A..HHZ", 60, rate=200.0)
    windows, _ = _run(_windower(rate=100.0), recs)
    assert windows and all(w.data.shape == (1, 1000) and w.sampling_rate_hz == 100.0
                           for w in windows)


def test_fast_paths_cut_the_same_windows_as_the_full_check(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Skipping the cut while a channel still ends before the next window is an optimisation
    only: on a messy feed (two detectors with different components and strides, a late third
    component, a reordered pair, a gap that resets, a duplicate) the windows and events are
    exactly those of the full check on every record."""
    import random

    from geosentry.stream.buffer import windows as wmod

    recs = [r for sid, seed in (("XX.A..HHZ", 1), ("XX.A..HHN", 2), ("XX.A..HHE", 3))
            for r in _records(sid, 300.0, seed=seed)]  # 70 records each
    recs.sort(key=lambda r: (r.start_ns, r.channel))
    late_e = [r for r in recs if r.channel == "HHE"][:3]
    feed = [r for r in recs if r not in late_e]
    feed[10:10] = late_e  # E turns up late
    zs = [i for i, r in enumerate(feed) if r.channel == "HHZ"]
    feed[zs[12]], feed[zs[13]] = feed[zs[13]], feed[zs[12]]  # out of order within tolerance
    del feed[90:96]  # a gap long enough to reset
    feed.insert(120, feed[119])  # a duplicate
    tail = feed[150:156]
    random.Random(0).shuffle(tail)
    feed[150:156] = tail
    specs = [WindowSpec("zne", ("Z", "N", "E"), 10.0, 5.0, None, "zeros"),
             WindowSpec("z", ("Z",), 4.0, 1.0)]
    policy = BufferConfig(max_interpolate_gap_s=0.1, reorder_tolerance_s=10.0)

    def cut(full: bool):  # type: ignore[no-untyped-def]
        with monkeypatch.context() as m:
            if full:
                m.setattr(wmod.Windower, "_waiting", staticmethod(lambda inst, spec: False))
            ws, ev = _run(Windower(specs, policy), feed)
        return [(w.detector, w.start_ns, w.channels, w.first, w.data.tobytes()) for w in ws], ev

    fast, full = cut(False), cut(True)
    assert len(fast[0]) > 100 and {"reset_gap", "duplicate", "reordered"} <= set(fast[1]), fast[1]
    assert fast == full


def test_far_slower_channel_is_refused_not_upsampled() -> None:
    """One-minute samples into a 1 Hz model would be 60x interpolation: no windows, one
    ``rate_too_low`` event naming both rates. 20 Hz into 100 Hz (5x) is still resampled."""
    recs = _records("NT.BOU.R0.UFH", 6 * 3600.0, rate=1 / 60)
    windows, events = _run(_windower(comps=("H",), window_s=600.0, stride_s=300.0, rate=1.0), recs)
    assert windows == [] and events.count("rate_too_low") == 1
    w = _windower(comps=("H",), window_s=600.0, stride_s=300.0, rate=1.0)
    _, evs = w.push(recs[0])
    for r in recs[1:]:
        evs += w.push(r)[1]
    assert "needs 1 Hz, channel has 0.0166667 Hz" in evs[0].event.detail
    ok, events = _run(_windower(rate=100.0), _records("XX.A..BHZ", 60, rate=20.0))
    assert ok and "rate_too_low" not in events and ok[0].data.shape == (1, 1000)


def test_resampling_keeps_the_level_at_the_window_edges() -> None:
    """A channel far from zero (a magnetometer at 47 000 nT) resampled to the model's rate stays
    at its level to the last sample: no zero-padding step at the window's edges."""
    recs = [Record(r.network, r.station, r.location, r.channel, r.start_ns, r.sampling_rate_hz,
                   r.data + 47_000.0, r.arrival_ns) for r in _records("XX.A..HHZ", 60, rate=200.0)]
    windows, _ = _run(_windower(rate=100.0), recs)
    assert windows and all(abs(w.data[0, [0, -1]] - 47_000.0).max() < 2_000 for w in windows)
