"""Typed identities and vocabularies: one ``InstrumentId`` for an instrument, ``StrEnum``s for
alert kinds, buffer/health events and rejection reasons (metric labels never parsed from text)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np

from geosentry.stream.alerts import HEALTH_EVENTS, HealthEvent, health_alert
from geosentry.stream.buffer.channel import GAP_ACTIONS, REJECTIONS, BufferEventKind
from geosentry.stream.buffer.spec import WindowSpec
from geosentry.stream.buffer.windows import Windower
from geosentry.stream.config import BufferConfig
from geosentry.stream.delivery import DeliveryTracker
from geosentry.stream.errors import RejectReason
from geosentry.stream.records import (ALERT_KINDS, Alert, AlertKind, InstrumentId, ModelRef,
                                      Record, SourceRef, Window)

M = ModelRef("m", "1", "0" * 64)


def _rec(cha: str, t0: int = 0, n: int = 1000, loc: str = "") -> Record:
    return Record("BW", "UH1", loc, cha, t0, 100.0, np.ones(n), 0, SourceRef("k", 0, t0))


def test_instrument_id_text_hash_and_sources() -> None:
    i = InstrumentId("BW", "UH1", "", "EH")
    assert str(i) == "BW.UH1..EH" and i.site_key == "BW.UH1." and i.station_key == "BW.UH1"
    assert InstrumentId.of(_rec("EHZ")) == i == _rec("EHN").instrument
    assert {i: 1}[InstrumentId("BW", "UH1", "", "EH")] == 1  # frozen, hashable, by value
    w = Window("BW", "UH1", "", ("", "EHN", "EHE"), 0, 100.0, np.zeros((3, 10)), 0, "d")
    assert w.instrument == i and w.site_key == "BW.UH1."
    assert InstrumentId.of(_rec("HHZ", loc="00")) != InstrumentId.of(_rec("HHZ"))


def test_windower_and_tracker_agree_on_the_instrument() -> None:
    """The windower keys its buffers, and the tracker its records and in-flight windows, by the
    same identity, so offsets move once the window is delivered and nothing else is needed."""
    spec = WindowSpec("d", ("Z",), 5.0, 5.0)
    wd = Windower([spec], BufferConfig())
    tracker = DeliveryTracker()
    rec = _rec("EHZ", n=1000)
    windows, _ = wd.push(rec)
    tracker.record(rec.ref, Windower.instrument_key(rec), rec.end_ns)
    assert list(wd.instruments) == [InstrumentId("BW", "UH1", "", "EH")]
    assert windows and all(w.instrument == rec.instrument for w in windows)
    tokens = [tracker.begin(w.instrument, w.start_ns) for w in windows]
    assert tracker.committable(lambda _: None) == {}  # windows in flight
    for w, tok in zip(windows, tokens):
        tracker.end(w.instrument, tok)
    assert tracker.committable(lambda _: None) == {"k": {0: 1}}


def test_every_buffer_event_kind_is_counted_by_kind() -> None:
    """Each kind increments exactly one counter, chosen by the kind (no text parsing)."""
    own = {BufferEventKind.REORDERED, BufferEventKind.MISSING_COMPONENT}
    for kind in BufferEventKind:
        assert [kind in GAP_ACTIONS, kind in REJECTIONS, kind in own].count(True) == 1, kind
    assert {r.value for r in REJECTIONS.values()} | {"unknown_channel"} == {
        r.value for r in RejectReason}
    assert REJECTIONS[BufferEventKind.RESET_RATE] == "rate"  # the label it always had
    assert {a.value for a in GAP_ACTIONS.values()} == {"interpolated", "reset", "released"}


def test_health_events_and_alert_kinds_are_the_schema_vocabulary() -> None:
    assert {k.value for k in HEALTH_EVENTS} == {
        "reset_gap", "reset_rate", "missing_component", "rate_too_low", "rate_unsupported",
        "future", "released"}
    assert all(HealthEvent(k.value) for k in HEALTH_EVENTS)
    schema = json.loads(resources.files("geosentry.stream").joinpath(
        "schemas/alert.v1.json").read_text())
    assert set(schema["properties"]["kind"]["enum"]) == set(ALERT_KINDS) == {
        k.value for k in AlertKind}


def test_missing_component_names_its_detector_in_a_field() -> None:
    """A detector name with a colon: the metric label is the field, not the detail's text."""
    spec = WindowSpec("pick:v2", ("Z", "N", "E"), 2.0, 2.0, missing="zeros")
    wd = Windower([spec], BufferConfig(reorder_tolerance_s=0.0))
    events = [ev for t0 in range(0, 20 * 10**9, 10**9)
              for ev in wd.push(_rec("HHZ", t0=t0, n=100))[1]]
    missing = [ev for ev in events if ev.event.kind is BufferEventKind.MISSING_COMPONENT]
    assert len(missing) == 1 and missing[0].event.detector == "pick:v2"
    assert missing[0].instrument == InstrumentId("BW", "UH1", "", "HH")
    alert = health_alert(missing[0], 0)
    assert alert.details["event"] == "missing_component" and alert.kind is AlertKind.HEALTH
    assert alert.details["detail"].startswith("pick:v2: no NE")


def test_alert_kind_text_id_and_json_unchanged() -> None:
    a = Alert("pick", "BW", "UH1", "", "EHZ", 10**18, 0.9, 0.5, M, 0, phase="P", emitted_ns=1)
    assert a.kind is AlertKind.PICK and a.station_key == "BW.UH1"
    basis = "|".join(("BW", "UH1", "", "pick", "P", str(10**18 // 10_000_000), "m", "1"))
    assert a.id == hashlib.sha256(basis.encode()).hexdigest()[:32]
    assert b'"kind":"pick"' in a.to_json() and json.loads(a.to_json())["kind"] == "pick"
    assert repr(dict.fromkeys([a.kind.value])) == "{'pick': None}"
