"""What the console shows, kept in bounded buffers: per-station state, the latest alerts of each
kind, a min/max waveform history per channel, and the subscribers of the live stream.

The pipeline calls ``record``/``events``/``alerts`` on its event loop (``Observer``); the HTTP
threads read snapshots under one lock. Per-station gauges are exported beside the service's
metrics (``geosentry_station_*``), so Prometheus can tell a silent station.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from geosentry.stream.buffer.channel import GAP_ACTIONS, BufferEventKind
from geosentry.stream.buffer.spec import WindowSpec
from geosentry.stream.buffer.windows import ChannelEvent
from geosentry.stream.console.config import ConsoleConfig
from geosentry.stream.events.stations import Inventory
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, Record, ns_to_iso

log = logging.getLogger(__name__)
BIN_COUNT = 600  # waveform bins per channel (min and max each): waveform_s / 600 per bin
SUBSCRIBER_QUEUE = 2000  # alerts waiting for one live-stream client before it is dropped
GAP_EVENTS = frozenset(GAP_ACTIONS)


class Health(StrEnum):
    """The state column of the station table (and the map's colour)."""

    OK = "ok"
    GAP = "gap"  # a gap, reset or release within the last silent_after_s
    SILENT = "silent"  # no record for silent_after_s
    NO_DATA = "no data"  # in the inventory, never heard from


class Waveform:
    """Min/max of one channel's samples in fixed time bins: the newest ``BIN_COUNT`` bins in a
    ring (slot = bin number mod ``BIN_COUNT``). A record costs two ``reduceat`` calls and a
    short loop over the bins it touches (about 10 µs for a 512-byte record)."""

    def __init__(self, bin_ns: int) -> None:
        self.bin_ns = bin_ns
        self.bin_id = [-1] * BIN_COUNT
        self.lo = [0.0] * BIN_COUNT
        self.hi = [0.0] * BIN_COUNT
        self.newest = -1

    def add(self, start_ns: int, rate_hz: float, data: np.ndarray) -> None:
        n = len(data)
        if n == 0:
            return
        period_ns = NS_PER_S / rate_hz
        first = start_ns // self.bin_ns
        per_bin = self.bin_ns / period_ns  # samples per bin (a fraction is fine: display only)
        cut = math.ceil(((first + 1) * self.bin_ns - start_ns) / period_ns)
        skip = max(0, math.ceil((n - cut) / per_bin) - BIN_COUNT + 1) if cut < n else 0
        starts = [0] if skip == 0 else []
        k = cut + skip * per_bin if skip else cut
        while k < n:
            starts.append(int(k))
            k += per_bin
        if not starts:
            return
        lows = np.minimum.reduceat(data, starts).tolist()
        highs = np.maximum.reduceat(data, starts).tolist()
        b = first + skip + (0 if skip == 0 else 1)
        bid, lo, hi = self.bin_id, self.lo, self.hi
        for low, high in zip(lows, highs):
            slot = b % BIN_COUNT
            if bid[slot] != b:
                bid[slot], lo[slot], hi[slot] = b, float(low), float(high)
            else:
                lo[slot], hi[slot] = min(lo[slot], low), max(hi[slot], high)
            b += 1
        self.newest = max(self.newest, b - 1)

    def series(self) -> dict[str, Any]:
        floor = self.newest - BIN_COUNT
        keys = sorted((b, s) for s, b in enumerate(self.bin_id) if b > floor and b >= 0)
        return {"t": [ns_to_iso(b * self.bin_ns) for b, _ in keys],
                "t_s": [b * self.bin_ns / NS_PER_S for b, _ in keys],
                "min": [self.lo[s] for _, s in keys], "max": [self.hi[s] for _, s in keys]}


@dataclass
class ChannelState:
    rate_hz: float
    last_end_ns: int = 0
    last_arrival_ns: int = 0
    records: int = 0
    waveform: Waveform | None = None


@dataclass
class Station:
    network: str
    station: str
    channels: dict[str, ChannelState] = field(default_factory=dict)
    detectors: set[str] = field(default_factory=set)
    gaps: int = 0
    rejected: int = 0
    last_gap_ns: int = 0
    alerts: int = 0
    version: int = 0

    @property
    def key(self) -> str:
        return f"{self.network}.{self.station}"

    def last(self) -> ChannelState | None:
        return max(self.channels.values(), key=lambda c: c.last_arrival_ns, default=None)


class OpsState:
    """The console's model; an ``Observer`` of the pipeline (``geosentry.stream.console.observer``)."""

    def __init__(self, cfg: ConsoleConfig, specs: Sequence[WindowSpec] = (),
                 inventory: Inventory | None = None, inventory_source: str = "") -> None:
        self.cfg = cfg
        self.specs = tuple(specs)
        self.inventory = inventory
        #: where the map's positions come from (a file, or the events stage's inventory)
        self.inventory_source = inventory_source or cfg.inventory
        self.stations: dict[str, Station] = {}
        self.kinds = tuple(AlertKind)
        self.latest: dict[AlertKind, deque[dict[str, Any]]] = {
            k: deque(maxlen=cfg.max_alerts) for k in self.kinds}
        self.by_id: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {k.value: 0 for k in self.kinds}
        self.records = 0
        self.version = 0
        self.started_ns = time.time_ns()
        self.waveform_channels = 0
        self.dropped_clients = 0
        self._bin_ns = int(cfg.waveform_s * NS_PER_S / BIN_COUNT)
        self._subscribers: list[queue.Queue[tuple[str, dict[str, Any]]]] = []
        self.lock = threading.Lock()

    # ---- observer (event loop) ---------------------------------------------------------------
    def _station(self, network: str, station: str) -> Station:
        key = f"{network}.{station}"
        st = self.stations.get(key)
        if st is None:
            st = self.stations[key] = Station(network, station)
        return st

    def record(self, rec: Record) -> None:
        with self.lock:
            self.records += 1
            self.version += 1
            st = self._station(rec.network, rec.station)
            st.version = self.version
            cha = f"{rec.location}.{rec.channel}" if rec.location else rec.channel
            ch = st.channels.get(cha)
            if ch is None:
                ch = st.channels[cha] = ChannelState(rec.sampling_rate_hz)
                prefix, comp = rec.channel[:2], rec.channel[-1:]
                st.detectors.update(s.detector for s in self.specs
                                    if s.applies_to(prefix) and comp in s.components)
                if self.waveform_channels < self.cfg.max_waveform_channels:
                    ch.waveform = Waveform(self._bin_ns)
                    self.waveform_channels += 1
            ch.rate_hz = rec.sampling_rate_hz
            ch.last_end_ns = max(ch.last_end_ns, rec.end_ns)
            ch.last_arrival_ns = rec.arrival_ns
            ch.records += 1
            if ch.waveform is not None:
                ch.waveform.add(rec.start_ns, rec.sampling_rate_hz, rec.data)

    def events(self, events: Sequence[ChannelEvent]) -> None:
        with self.lock:
            for ev in events:
                st = self._station(ev.instrument.network, ev.instrument.station)
                if ev.event.kind in GAP_EVENTS:
                    st.gaps += 1
                    st.last_gap_ns = time.time_ns()
                elif ev.event.kind not in (BufferEventKind.REORDERED,
                                           BufferEventKind.MISSING_COMPONENT):
                    st.rejected += 1
                self.version += 1
                st.version = self.version

    def alerts(self, alerts: Sequence[Alert]) -> None:
        out = []
        with self.lock:
            for a in alerts:
                d = a.to_dict()
                ring = self.latest[a.kind]
                if len(ring) == ring.maxlen:
                    self.by_id.pop(ring[0]["id"], None)
                ring.append(d)
                self.by_id[d["id"]] = d
                self.counts[a.kind.value] += 1
                if a.station != "*":
                    st = self.stations.get(f"{a.network}.{a.station}")
                    if st is not None:
                        st.alerts += 1
                out.append(d)
            subscribers = list(self._subscribers)
        for q in subscribers:
            for d in out:
                try:
                    q.put_nowait(("alert", d))
                except queue.Full:  # a client that does not read: dropped, it reconnects
                    self.unsubscribe(q)
                    self.dropped_clients += 1
                    log.warning("console: a live-stream client fell %d alerts behind; dropped "
                                "(it reconnects and reloads)", SUBSCRIBER_QUEUE)
                    break

    # ---- live stream ---------------------------------------------------------------------
    def subscribe(self) -> queue.Queue[tuple[str, dict[str, Any]]]:
        q: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(SUBSCRIBER_QUEUE)
        with self.lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[tuple[str, dict[str, Any]]]) -> None:
        with self.lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    # ---- views (HTTP threads) ------------------------------------------------------------
    def _station_row(self, st: Station, now_ns: int) -> dict[str, Any]:
        last = st.last()
        arrival = last.last_arrival_ns if last else 0
        end = max((c.last_end_ns for c in st.channels.values()), default=0)
        age_s = (now_ns - arrival) / NS_PER_S if arrival else None
        if age_s is None or age_s > self.cfg.silent_after_s:
            state = Health.SILENT
        elif st.last_gap_ns and (now_ns - st.last_gap_ns) / NS_PER_S < self.cfg.silent_after_s:
            state = Health.GAP
        else:
            state = Health.OK
        pos = self.inventory.lookup(st.network, st.station) if self.inventory else None
        return {
            "key": st.key, "network": st.network, "station": st.station, "state": state,
            "channels": sorted(st.channels), "last_sample": ns_to_iso(end) if end else None,
            "last_arrival": ns_to_iso(arrival) if arrival else None,
            "arrival_age_s": None if age_s is None else round(age_s, 3),
            "data_latency_s": round((arrival - end) / NS_PER_S, 3) if last else None,
            "rate_hz": sorted({c.rate_hz for c in st.channels.values()}),
            "records": sum(c.records for c in st.channels.values()),
            "gaps": st.gaps, "rejected": st.rejected, "alerts": st.alerts,
            "detectors": sorted(st.detectors),
            "lat": pos.lat_deg if pos else None, "lon": pos.lon_deg if pos else None,
            "version": st.version,
        }

    def station_rows(self, since_version: int = 0) -> list[dict[str, Any]]:
        now = time.time_ns()
        with self.lock:
            return [self._station_row(st, now) for st in sorted(
                self.stations.values(), key=lambda s: s.key) if st.version > since_version]

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {"records": self.records, "stations": len(self.stations),
                    "alerts": dict(self.counts), "version": self.version,
                    "started": ns_to_iso(self.started_ns), "now": ns_to_iso(time.time_ns()),
                    "clients": len(self._subscribers), "waveform_s": self.cfg.waveform_s}

    def latest_alerts(self, kind: AlertKind | None, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            if kind is not None:
                return list(self.latest[kind])[-limit:][::-1]
            merged = [d for ring in self.latest.values() for d in ring]
        return sorted(merged, key=lambda d: d["emitted_at"])[-limit:][::-1]

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.by_id.get(alert_id)

    def waveform(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            st = self.stations.get(key)
            if st is None:
                return None
            traces = {c: ch.waveform.series() for c, ch in sorted(st.channels.items())
                      if ch.waveform is not None}
            picks = [d for kind in (AlertKind.PICK, AlertKind.DETECTION, AlertKind.ANOMALY)
                     for d in self.latest[kind]
                     if f"{d['network']}.{d['station']}" == key]
        return {"station": key, "bin_s": self._bin_ns / NS_PER_S, "traces": traces,
                "alerts": picks}

    def map_view(self) -> dict[str, Any]:
        rows = self.station_rows()
        stations = [{"key": r["key"], "lat": r["lat"], "lon": r["lon"], "state": r["state"]}
                    for r in rows]
        if self.inventory is not None:  # inventory stations not heard from yet
            inv = self.inventory
            heard = {found.key for r in rows
                     if (found := inv.lookup(r["network"], r["station"])) is not None}
            stations += [{"key": s.key if s.network else f"?.{s.station}", "lat": s.lat_deg,
                          "lon": s.lon_deg, "state": Health.NO_DATA}
                         for s in inv.stations.values() if s.key not in heard]
        with self.lock:
            updates = list(self.latest[AlertKind.EVENT])
        events: dict[str, dict[str, Any]] = {}  # each event's latest update; deleted ones go
        for d in updates:
            key = str(d["details"].get("event_id", d["id"]))
            point = _event_point(d)
            if point is None:
                events.pop(key, None)
            else:
                events[key] = point
        return {"stations": [s for s in stations if s["lat"] is not None],
                "unplaced": sorted(s["key"] for s in stations if s["lat"] is None),
                "events": list(events.values()),
                "inventory": (self.inventory_source or "inventory") if self.inventory else None}


def _event_point(d: dict[str, Any]) -> dict[str, Any] | None:
    origin = d.get("details", {}).get("origin")
    if not isinstance(origin, dict) or d.get("details", {}).get("deleted"):
        return None
    mags = d["details"].get("magnitudes") or [{}]
    return {"id": d["id"], "event_id": d["details"].get("event_id"), "time": origin.get("time"),
            "lat": origin.get("latitude"), "lon": origin.get("longitude"),
            "depth_km": origin.get("depth_km"),
            "magnitude": mags[0].get("value") if isinstance(mags[0], dict) else None}


class StationCollector(Collector):
    """``geosentry_station_last_arrival_timestamp_seconds`` and ``..._last_sample_...`` per
    station (what an alert rule needs to tell a silent station), read at scrape time."""

    def __init__(self, state: OpsState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        arrival = GaugeMetricFamily(
            "geosentry_station_last_arrival_timestamp_seconds",
            "Wall-clock time the station's newest record arrived", labels=["network", "station"])
        sample = GaugeMetricFamily(
            "geosentry_station_last_sample_timestamp_seconds",
            "Data time of the station's newest sample", labels=["network", "station"])
        clients = GaugeMetricFamily("geosentry_console_clients",
                                    "Browsers connected to the console's live stream")
        with self.state.lock:
            for st in self.state.stations.values():
                last = st.last()
                if last is None:
                    continue
                arrival.add_metric([st.network, st.station], last.last_arrival_ns / NS_PER_S)
                end = max(c.last_end_ns for c in st.channels.values())
                sample.add_metric([st.network, st.station], end / NS_PER_S)
            clients.add_metric([], len(self.state._subscribers))
        yield arrival
        yield sample
        yield clients

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def register_station_metrics(state: OpsState, registry: CollectorRegistry) -> None:
    registry.register(StationCollector(state))
