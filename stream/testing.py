"""In-memory sources and sinks, and real miniSEED bytes from ObsPy's bundled recordings or
synthetic traces. Shared by the tests, the demo and users testing their own setup.

>>> payloads = mseed_records(synthetic_trace("XX.SYN..HHZ", seconds=10))
>>> len(payloads) > 1 and all(len(p) == 512 for p in payloads)
True
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

import numpy as np
import obspy

from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.decode.mseed import encode_traces as mseed_records
from geosentry.stream.kafka_security import KafkaSecurity
from geosentry.stream.records import Alert, RawRecord, now_ns
from geosentry.stream.sources import FiniteSource

if TYPE_CHECKING:
    from geosentry.stream.config import Config
    from geosentry.stream.detectors.base import Detector
    from geosentry.stream.metrics import Metrics
    from geosentry.stream.summary import Summary
    from geosentry.stream.sources import Source

OBSPY_DATA = Path(obspy.__file__).resolve().parent / "signal" / "tests" / "data"
#: The BW.UH1-UH4 recordings ObsPy ships (2010-05-27 16:24-16:28), three network triggers.
DEMO_FILES = ("BW.UH1._.SHZ.D.2010.147.cut.slist.gz", "BW.UH2._.SHZ.D.2010.147.cut.slist.gz",
              "BW.UH3._.SHZ.D.2010.147.cut.slist.gz", "BW.UH4._.EHZ.D.2010.147.cut.slist.gz")


def demo_stream() -> obspy.Stream:
    """The four vertical BW.UH* traces, as integer counts."""
    st = obspy.Stream()
    for name in DEMO_FILES:
        st += obspy.read(str(OBSPY_DATA / name))
    for tr in st:
        tr.data = np.round(tr.data).astype(np.int32)
    return st


def synthetic_trace(sid: str, seconds: float, rate_hz: float = 100.0,
                    start: str = "2024-01-01T00:00:00", seed: int = 0,
                    events_s: Iterable[float] = ()) -> obspy.Trace:
    """Coloured noise with optional impulsive events (integer counts, Steim2-encodable)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate_hz))
    noise = np.convolve(rng.normal(0, 100, n + 50), np.ones(5) / 5, mode="same")[:n]
    t = np.arange(n) / rate_hz
    for onset in events_s:
        dt = t - onset
        envelope = np.where(dt >= 0, np.exp(-np.clip(dt, 0, None) / 1.5), 0.0)
        noise += 5000 * envelope * np.sin(2 * np.pi * 8.0 * t)
    net, sta, loc, cha = sid.split(".")
    header = {"network": net, "station": sta, "location": loc, "channel": cha,
              "sampling_rate": rate_hz, "starttime": obspy.UTCDateTime(start)}
    return obspy.Trace(np.round(noise).astype(np.int32), header=header)


def synthetic_mseed(sid: str, n_samples: int = 1000, rate_hz: float = 100.0) -> bytes:
    return b"".join(mseed_records(synthetic_trace(sid, n_samples / rate_hz, rate_hz)))


def interleaved(st: obspy.Stream | None = None) -> list[bytes]:
    """Records of every trace of ``st`` (default: the demo recordings) as 512-byte miniSEED,
    ordered by end time, as a live feed delivers them."""
    tagged = []
    for tr in demo_stream() if st is None else st:
        for p in mseed_records(tr):
            tagged.append((obspy.read(io.BytesIO(p))[0].stats.endtime.ns, p))
    return [p for _, p in sorted(tagged, key=lambda t: t[0])]


def network_copies(copies: int) -> list[tuple[bytes, bytes]]:
    """``(key NET.STA, record)`` for ``copies`` copies of the demo recordings under other station
    codes (``UH1`` -> ``UH100``, ``UH101``, ...): a longer Kafka input. Traces follow each other
    in order of their end times, each trace's records in order."""
    out = []
    for k in range(copies):
        for tr in demo_stream():
            tr = tr.copy()
            tr.stats.station = f"{tr.stats.station[:3]}{k:02d}"
            out += [(tr.stats.endtime.ns, f"BW.{tr.stats.station}".encode(), p)
                    for p in mseed_records(tr)]
    return [(key, p) for _, key, p in sorted(out, key=lambda t: t[0])]


def long_network(copies: int, repeats: int) -> list[tuple[bytes, bytes]]:
    """``(key NET.STA, record)`` like ``network_copies``, each station's recording repeated
    ``repeats`` times back to back in time (a stream longer than a restart's warm-up), records
    of all stations interleaved by end time as a live feed delivers them."""
    out = []
    for k in range(copies):
        for tr in demo_stream():
            span_s = tr.stats.endtime - tr.stats.starttime + tr.stats.delta
            for r in range(repeats):
                part = tr.copy()
                part.stats.station = f"{tr.stats.station[:3]}{k:02d}"
                part.stats.starttime += r * span_s
                out += [(decode_payload(p, 0)[0].end_ns, f"BW.{part.stats.station}".encode(), p)
                        for p in mseed_records(part)]
    return [(key, p) for _, key, p in sorted(out, key=lambda t: t[0])]


async def publish(bootstrap: str, topic: str, keyed: Iterable[tuple[bytes, bytes]],
                  security: KafkaSecurity | None = None) -> None:
    """Produce ``(key, value)`` pairs to ``topic`` (``acks=all``) and wait until all are in
    (``security``: TLS/SASL settings, ``geosentry.stream.kafka_security``)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                **(security or KafkaSecurity()).client_kwargs())
    await producer.start()
    try:
        for key, value in keyed:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


class MemorySource(FiniteSource):
    """A finite source over in-memory payloads, ``delay_s`` apart; ``live=True`` makes the
    service treat it as a live feed (overload shedding applies, see ``geosentry.stream.sources``)."""

    def __init__(self, payloads: Iterable[bytes], name: str = "memory", delay_s: float = 0.0,
                 live: bool = False) -> None:
        self.payloads = list(payloads)
        self.name = name
        self.delay_s = delay_s
        self.live = live

    async def records(self) -> AsyncIterator[RawRecord]:
        for p in self.payloads:
            if self._stopping:
                return
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield RawRecord(p, now_ns())



class MemorySink:
    """Keeps every alert it is sent (``alerts``), in delivery order."""

    name = "memory"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def start(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, alerts: list[Alert]) -> None:
        stamp = now_ns()
        for a in alerts:
            a.emitted_ns = a.emitted_ns or stamp
        self.alerts.extend(alerts)

    async def stop(self) -> None:
        return None


class FaultySink(MemorySink):
    """A ``MemorySink`` with injected faults (what a real sink cannot do on demand):
    ``fail_first=N`` raises a retriable ``SinkError`` on the first N sends (an outage),
    ``error`` raises that exception on every send (a broken sink), ``hang=True`` never returns
    (a sink stuck in a call), ``stall_s`` makes the first send take that long and then succeed
    (a frozen broker that wakes up). ``attempts`` counts every call."""

    name = "faulty"

    def __init__(self, fail_first: int = 0, error: BaseException | None = None,
                 hang: bool = False, stall_s: float = 0.0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.error = error
        self.hang = hang
        self.stall_s = stall_s
        self.attempts = 0

    async def send(self, alerts: list[Alert]) -> None:
        from geosentry.stream.errors import SinkError

        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.stall_s and self.attempts == 1:
            await asyncio.sleep(self.stall_s)
        if self.error is not None:
            raise self.error
        if self.attempts <= self.fail_first:
            raise SinkError(f"injected outage ({self.attempts}/{self.fail_first})")
        await super().send(alerts)


class FailingSource(MemorySource):
    """Yields ``payloads``, then raises ``error`` (a source that breaks mid-stream)."""

    def __init__(self, payloads: Iterable[bytes], error: BaseException) -> None:
        super().__init__(payloads, name="failing")
        self.error = error

    async def records(self) -> AsyncIterator[RawRecord]:
        async for raw in super().records():
            yield raw
        raise self.error


IAGA_T0 = np.datetime64("2014-04-07T00:00:00", "s")


def quiet_geomag(n: int = 7200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """H, D (minutes of arc), Z, F of a quiet 1 s observatory record (random walks, nT)."""
    rng = np.random.default_rng(seed)
    h = 20000 + np.cumsum(rng.normal(0, 0.02, n))
    z = 45000 + np.cumsum(rng.normal(0, 0.02, n))
    d = -7 + np.cumsum(rng.normal(0, 0.001, n))
    return h, d, z, np.hypot(h, z) + 1.5


def write_iaga(path: Path, h: np.ndarray, d_min: np.ndarray, z: np.ndarray, f: np.ndarray,
               code: str = "TST") -> Path:
    """A 1 s IAGA-2002 file starting at ``IAGA_T0`` (components HDZF)."""
    lines = [f" IAGA CODE              {code:<45}|",
             f" Data Type              {'variation':<45}|",
             f"DATE       TIME         DOY     {code}H      {code}D      {code}Z      {code}F   |"]
    for i in range(len(h)):
        t = str(IAGA_T0 + np.timedelta64(i, "s")).replace("T", " ")
        lines.append(f"{t}.000 097 {h[i]:12.2f} {d_min[i]:9.2f} {z[i]:9.2f} {f[i]:9.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


async def read_topic(bootstrap: str, topic: str, idle_s: float = 3.0,
                     security: KafkaSecurity | None = None) -> list[tuple[bytes, bytes]]:
    """Every ``(key, value)`` on ``topic`` from the beginning, until ``idle_s`` without news
    (a separate consumer, no group: what an alert consumer would see)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **(security or KafkaSecurity()).client_kwargs())
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        idle = 0.0
        while idle < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            idle = idle + 0.5 if not batch else 0.0
            out += [(m.key, m.value) for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return out


class PipelineRun(NamedTuple):
    """What ``run_pipeline`` returns (unpacks as ``sink, summary, metrics``)."""

    sink: MemorySink
    summary: Summary
    metrics: Metrics


async def run_pipeline(inputs: Iterable[bytes] | Iterable[Source],
                       config: dict[str, Any] | Config | None = None, *,
                       detectors: list[Detector] | None = None, metrics: Metrics | None = None,
                       sink: MemorySink | None = None, live: bool = False,
                       timeout_s: float | None = None) -> PipelineRun:
    """Run a ``Pipeline`` to its end into a ``MemorySink`` (or ``sink``).

    ``inputs`` are miniSEED payloads (one ``MemorySource``; ``live=True`` makes it a live feed)
    or sources. ``config`` is a config table (checked by ``load_config_dict``), a loaded
    ``Config``, or ``None`` for the demo configuration; ``detectors`` replace the configured
    ones; ``timeout_s`` bounds the run (``TimeoutError`` past it)."""
    from geosentry.stream.config import Config, load_config_dict
    from geosentry.stream.demo import demo_config_dict
    from geosentry.stream.detectors.factory import build_detectors
    from geosentry.stream.metrics import Metrics
    from geosentry.stream.pipeline import Pipeline

    if config is None:
        config = demo_config_dict()
    cfg = config if isinstance(config, Config) else load_config_dict(config)
    items: list[Any] = list(inputs)
    sources = ([MemorySource(items, live=live)]
               if all(isinstance(i, (bytes, bytearray)) for i in items) else items)
    sink = MemorySink() if sink is None else sink
    metrics = metrics or Metrics()
    pipeline = Pipeline(cfg, sources, [sink], build_detectors(cfg) if detectors is None
                        else detectors, metrics)
    summary = await asyncio.wait_for(pipeline.run(), timeout_s)
    return PipelineRun(sink, summary, metrics)


def geomag_alerts(path: Path, *detectors: str | dict[str, Any],
                  interleave: bool = False) -> list[Alert]:
    """Alerts from the IAGA-2002 (or miniSEED) file ``path`` through ``detectors`` (a type name,
    or a detector table), coincidence off, without the ``missing_component`` notices. The
    records go in file order (one component after another) or, with ``interleave``, with the
    components interleaved in time, as a live feed sends them."""
    from geosentry.stream.decode.mseed import split_records
    from geosentry.stream.sources.files import archive_records

    payloads = [p for _, p in archive_records(path)]
    if interleave:
        records = split_records(b"".join(payloads))
        payloads = [p for p, _ in sorted(records, key=lambda r: r[1] or 0)]
    tables = [{"name": d, "type": d} if isinstance(d, str) else d for d in detectors]
    sink, _, _ = asyncio.run(run_pipeline(
        payloads, {"detectors": tables, "coincidence": {"enabled": False}}))
    return [a for a in sink.alerts if a.details.get("event") != "missing_component"]
