"""Wires the stages: sources -> decode -> windows -> inference -> alerts -> sinks.

Start order: sinks, runners, sources. Stop order (SIGTERM, or every finite source exhausted):
stop reading, flush windows of finished replays, drain the inference queues (every alert
delivered), commit input offsets, stop sinks and sources.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from typing import Any

from geosentry.stream.alerts import HEALTH_EVENTS, Coincidence, health_alert, overload_alert, stall_alert
from geosentry.stream.alerts import source_gap_alert
from geosentry.stream.buffer.channel import GAP_ACTIONS, REJECTIONS, BufferEventKind
from geosentry.stream.buffer.windows import ChannelEvent, Windower
from geosentry.stream.config import Config
from geosentry.stream.console.observer import Observer
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.delivery import DeliveryTracker
from geosentry.stream.events.service import EventService
from geosentry.stream.detectors.base import Detector, LoadedModel
from geosentry.stream.errors import DecodeError, RejectReason
from geosentry.stream.inference.runner import BatchRunner, inference_workers
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import NS_PER_S, Alert, InstrumentId, RawRecord, Window
from geosentry.stream.sinks import Sink
from geosentry.stream.sinks.fanout import Fanout
from geosentry.stream.sources import ReportsGaps, Revocable, Source, SourceGap, is_live
from geosentry.stream.offsets import Offsets
from geosentry.stream.summary import Summary, _LogOnce
from geosentry.stream.supervision import DrainDeadline, Watchdog, supervise

log = logging.getLogger(__name__)
COMMIT_INTERVAL_S = 1.0
YIELD_EVERY = 64  # records ingested between chances for other tasks to run


class Pipeline:
    def __init__(self, cfg: Config, sources: list[Source], sinks: list[Sink],
                 detectors: list[Detector], metrics: Metrics | None = None,
                 keep_alerts: bool = False) -> None:
        self.cfg = cfg
        self.sources = sources
        self.sinks = sinks
        self.detectors = detectors
        self.metrics = metrics or Metrics()
        self.fanout = Fanout(sinks, self.metrics)  # delivery to every sink, retried
        self.windower = Windower([d.spec for d in detectors], cfg.buffer,  # live: clock policy
                                 live=bool(sources) and all(is_live(s) for s in sources))
        self.tracker = DeliveryTracker()
        self.events = (EventService(cfg.stations, self.tracker, self.metrics)  # [stations]
                       if cfg.stations is not None else None)
        self.coincidence = (Coincidence(cfg.coincidence.min_stations, cfg.coincidence.window_s,
                                        {d.name: d.spec.report_lag_s for d in detectors})
                            if cfg.coincidence.enabled else None)
        self.summary = Summary()
        self.keep_alerts = keep_alerts
        self.observer: Observer | None = None  # the operator console (geosentry.stream.console)
        self._log_once = _LogOnce()
        self._stop = asyncio.Event()
        self._deadline = DrainDeadline(cfg.shutdown_timeout_s, self._progress)
        self._background: set[asyncio.Future[None]] = set()
        self._runners: dict[str, BatchRunner] = {}
        self._source_counters: dict[str, tuple[Any, Any]] = {}
        self._window_counters: dict[str, tuple[Any, Any]] = {}
        self.offsets = Offsets(self.windower, self.tracker, sources, self.metrics)

    def request_stop(self) -> None:
        """Stop reading; ``run`` then drains, commits and returns, within
        ``shutdown_timeout_s`` of this call."""
        if self._deadline.armed:  # asked during the drain of finite input: bounded from now
            self._deadline.arm(requested=True)
        self._stop.set()

    async def run(self) -> Summary:
        """Start, stream until every finite source ends or ``request_stop``, then drain,
        deliver and commit: within ``shutdown_timeout_s`` of a stop request; at the end of
        finite input for as long as the drain moves (``DrainDeadline``). ``Summary.exit_code``
        says how it ended. Start-up errors (a sink folder missing, a broker unreachable) are raised."""
        inf = self.cfg.inference
        shed = inf.overload == "shed" or (inf.overload == "auto"
                                          and all(is_live(s) for s in self.sources))
        workers = inference_workers(inf.workers)
        # one pool of inference threads for every detector: `workers` forward passes at a time
        pool = ThreadPoolExecutor(workers, thread_name_prefix="infer")
        watchdog = Watchdog(self.cfg.watchdog_s, self._progress, self._pending, self._stalled)
        committer: asyncio.Task[None] | None = None
        try:
            if not await self._start_all(self.sinks, "sink"):
                return self.summary
            for det in self.detectors:
                self._model_info(det)
                runner = BatchRunner(det, self._deliver, self.metrics, inf.max_batch,
                                     inf.max_wait_s, inf.max_pending_windows, workers=workers,
                                     executor=pool, shed_after_s=inf.max_lag_s if shed else None,
                                     max_data_latency_s=inf.max_data_latency_s if shed else None,
                                     on_overload=self._overload)
                runner.held = self.fanout.held
                runner.start(self._task_failed)
                self._runners[det.name] = runner
            for src in self.sources:
                if isinstance(src, Revocable):
                    src.on_revoke = partial(self._revoked, src.name)
                if isinstance(src, ReportsGaps):  # SeedLink resumes: gaps and dropped repeats
                    src.on_gap = partial(self._source_gap, src.name)
                    src.on_duplicate = self.metrics.source_duplicates.labels(source=src.name).inc
            if not await self._start_all(self.sources, "source"):
                return self.summary
            watchdog.start()
            committer = supervise(self._commit_loop(watchdog), "commit", self._task_failed)
            await self._stream()
            await self._finish(committer)
        finally:
            watchdog.stop()
            if committer is not None:
                committer.cancel()
            await self._close(pool)
        self._judge()
        return self.summary

    async def _start_all(self, parts: Sequence[Source | Sink], what: str) -> bool:
        """Start sinks or sources; False when a stop was asked for meanwhile (a broker that is
        being retried must not hold up SIGTERM)."""
        for part in parts:
            start = asyncio.ensure_future(part.start())
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([start, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not start.done():
                start.cancel()
                log.warning("stopped while starting %s %s", what, part.name)
                return False
            start.result()  # a start-up error is raised to the caller (exit status 2)
        return True

    async def _stream(self) -> None:
        """Read every source until they end or a stop is asked for."""
        ingest = [supervise(self._ingest(s), f"ingest-{s.name}", self._source_failed)
                  for s in self.sources]
        stop_wait = asyncio.create_task(self._stop.wait())
        # every source ended (failures are logged by supervise), or a stop was asked for
        either: list[asyncio.Future[Any]] = [
            stop_wait, asyncio.gather(*ingest, return_exceptions=True)]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        # asked to stop: bounded from now; the input ended: as long as the drain moves
        self._deadline.arm(requested=self._stop.is_set())
        self._stop.set()
        stop_wait.cancel()
        for src in self.sources:
            src.stop_reading()
        # an ingest task blocked on a full queue (a sink away) is cancelled at the deadline:
        # the windows it had not queued were registered in flight, so nothing past them is
        # committed
        _, waiting = await asyncio.wait(ingest, timeout=self._deadline.remaining())
        for task in waiting:
            task.cancel()

    async def _finish(self, committer: asyncio.Task[None]) -> None:
        """Drain the inference queues (every alert delivered) and commit, within the deadline."""
        drains = asyncio.gather(*(r.drain() for r in self._runners.values()))
        try:
            await self._deadline.wait(drains)
            if self.coincidence is not None and all(s.finite for s in self.sources):
                if network := self.coincidence.flush():  # the end of the data decides the rest
                    await self._deadline.wait(self._send(network))
            if self.events is not None:  # the events stage's last update, then the commit
                await self._deadline.wait(self._send(*self.events.flush()))
        except TimeoutError:
            self.summary.undelivered_windows = self._pending() + (self.events.held
                                                                  if self.events else 0)
            log.error("shutdown timeout (%g s%s): %d windows not processed or not delivered; "
                      "their input is not committed", self.cfg.shutdown_timeout_s,
                      "" if self._deadline.requested else " with nothing moving",
                      self.summary.undelivered_windows)
        committer.cancel()
        try:
            await asyncio.wait_for(self._commit(), max(1.0, self._deadline.remaining()))
        except Exception as exc:
            log.error("final offset commit failed: %r (records will be re-read)", exc)

    async def _close(self, pool: ThreadPoolExecutor) -> None:
        """Stop runners, sinks and sources, each bounded: a dead broker cannot hold the exit."""
        for runner in self._runners.values():
            self.summary.undelivered_windows += runner.undelivered
            await runner.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        parts: list[Sink | Source] = [*self.sinks, *self.sources]
        for part in parts:
            try:
                await asyncio.wait_for(part.stop(), max(1.0, self._deadline.remaining()))
            except Exception as exc:
                log.error("stopping %s: %r", part.name, exc)

    def _judge(self) -> None:
        """Failures the exit status must tell: a detector that never ran, a delivery that broke."""
        for name, runner in self._runners.items():
            if runner.failing:
                self.summary.failures.append(
                    f"detector {name} failed on every window it was given "
                    f"({runner.windows_failed})")
        for failure in self.summary.failures:
            log.error("%s", failure)

    def _source_failed(self, name: str, exc: BaseException) -> None:
        """A source ended with an error: the others go on; the exit status says so."""
        self.summary.failures.append(f"source {name.removeprefix('ingest-')} failed: {exc}")

    def _task_failed(self, name: str, exc: BaseException) -> None:
        """A supervised task ended with an error: stop in order, exit status says so."""
        self.summary.failures.append(f"{name} failed: {exc!r}")
        self.request_stop()

    def _progress(self) -> int:
        return self.summary.records + sum(r.delivered for r in self._runners.values())

    def _pending(self) -> int:
        return sum(r.pending for r in self._runners.values())

    def _stalled(self, why: str) -> None:
        self.metrics.watchdog_stalls.inc()
        alert = stall_alert(why, time.time_ns())
        task = asyncio.ensure_future(self._send_best_effort([alert]))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _model_info(self, det: Detector) -> None:
        if isinstance(det, LoadedModel):  # a loaded model: which file, where, at what precision
            self.metrics.model_info.labels(
                detector=det.name, model=det.model.name, sha256=det.model.sha256[:12],
                device=str(det.device), precision=det.precision).set(1)

    # ---- ingestion -------------------------------------------------------------------------
    async def _ingest(self, src: Source) -> None:
        n = 0
        async for raw in src.records():
            await self._ingest_one(src.name, raw)
            if self._stop.is_set():
                return
            n += 1
            if n % YIELD_EVERY == 0:
                # A source that never waits (a replay, a Kafka batch, a backlog after a restart)
                # would otherwise keep the loop to itself: the runners could not hand batches to
                # their threads until ingestion ends or a queue fills, and decode + inference
                # would run one after the other instead of side by side.
                await asyncio.sleep(0)
        if src.finite:
            windows, events = self.windower.flush()
            await self._handle_events(events, 0)
            await self._enqueue(windows)
            self.tracker.finish(src.name)

    async def _ingest_one(self, source: str, raw: RawRecord) -> None:
        m = self.metrics
        counters = self._source_counters.get(source)
        if counters is None:  # label lookups cost more than the increments: once per source
            counters = self._source_counters[source] = (m.records_in.labels(source=source),
                                                         m.bytes_in.labels(source=source))
        counters[0].inc()
        counters[1].inc(len(raw.payload))
        self.summary.records += 1
        try:
            records = decode_payload(raw.payload, raw.arrival_ns, raw.ref)
        except DecodeError as exc:
            reason = exc.reason.value  # one of DecodeReason: a bounded set of label values
            m.decode_errors.labels(reason=reason).inc()
            self.summary.decode_errors += 1
            ref = raw.ref
            where = ("" if ref is None else f" at byte {ref.offset} of {ref.source}"
                     if source == "files" else
                     f" at {ref.source} partition {ref.partition} offset {ref.offset}")
            self._log_once((exc.sid or raw.key or (ref.source if ref else "?"), reason),
                           "decode error (%s) in %s%s (key %s): %s",
                           reason, source, where, raw.key, exc)
            self.tracker.record(raw.ref, None, 0)
            return
        for rec in records:
            if not self.windower.accepts(rec):
                m.records_rejected.labels(reason=RejectReason.UNKNOWN_CHANNEL.value).inc()
                self._log_once((rec.sid, RejectReason.UNKNOWN_CHANNEL.value),
                               "%s: channel not used by any detector", rec.sid)
                self.tracker.record(rec.ref, None, 0)
                continue
            if self.observer is not None:
                self.observer.record(rec)
            windows, events = self.windower.push(rec, self.offsets.replay_before_ns(source, rec))
            self.tracker.record(rec.ref, Windower.instrument_key(rec), rec.end_ns)
            await self._handle_events(events, rec.arrival_ns)
            await self._enqueue(windows)

    async def _handle_events(self, events: list[ChannelEvent], arrival_ns: int) -> None:
        m = self.metrics
        if self.observer is not None and events:
            self.observer.events(events)
        health: list[tuple[InstrumentId, Alert]] = []
        for ev in events:
            kind = ev.event.kind  # counted by kind (buffer.channel tables), never by its text
            if kind is BufferEventKind.REORDERED:
                m.reordered.inc()
            elif kind is BufferEventKind.MISSING_COMPONENT:
                m.windows_incomplete.labels(detector=ev.event.detector, action="reported").inc()
            elif kind in GAP_ACTIONS:  # interpolated, reset, released (a silent instrument)
                m.gaps.labels(action=GAP_ACTIONS[kind].value).inc()
            else:
                m.records_rejected.labels(reason=REJECTIONS[kind].value).inc()
            if kind in HEALTH_EVENTS and ev.event.alert:  # alert=False: already reported
                self._log_once((ev.sid, kind), "%s: %s at %s (%s)", ev.sid, kind,
                               ev.event.start_ns, ev.event.detail or f"{ev.event.duration_s:g} s")
                health.append((ev.instrument, health_alert(ev, arrival_ns)))
        if health:
            ends = [(inst, self.tracker.begin(inst, a.time_ns)) for inst, a in health]
            await self._send([a for _, a in health], partial(self._end, ends))

    async def _enqueue(self, windows: list[Window]) -> None:
        # every window is in flight before the first wait on a full queue: if ingestion is
        # cancelled meanwhile (shutdown), no offset past an unqueued window is ever committed
        tokens = [self.tracker.begin(w.instrument, w.start_ns) for w in windows]
        for w, token in zip(windows, tokens):
            counters = self._window_counters.get(w.detector)
            if counters is None:
                counters = self._window_counters[w.detector] = (
                    self.metrics.windows.labels(detector=w.detector),
                    self.metrics.windows_incomplete.labels(detector=w.detector, action="zeros"))
            counters[0].inc()
            if "" in w.channels:
                counters[1].inc()
            self.summary.windows += 1
            await self._runners[w.detector].put(w, token)

    async def _source_gap(self, source: str, gap: SourceGap) -> None:
        """Data a source could not get back (the source logged it): counted, health alert."""
        self.metrics.source_gaps.labels(source=source).inc()
        await self._send([source_gap_alert(source, gap.sid, gap.after_ns, gap.until_ns,
                                           time.time_ns())])

    async def _overload(self, detector: str, started: bool, info: dict[str, object]) -> None:
        await self._send([overload_alert(started, info, time.time_ns())])

    # ---- delivery --------------------------------------------------------------------------
    async def _deliver(self, results: list[tuple[Window, list[Alert]]], tokens: list[int]) -> None:
        # replayed windows were delivered before a restart: only the state they leave counts
        alerts = [a for w, batch in results if not w.replay for a in batch]
        if replayed := sum(w.replay for w, _ in results):
            self.metrics.replay_windows.inc(replayed)
        if self.coincidence is not None:  # what a restart re-decides was sent before it
            before_ns = self.offsets.delivered_before_ns() - self.coincidence.window_ns
            alerts += [a for a in self.coincidence.observe(results) if a.time_ns >= before_ns]
        ends = [(w.instrument, token) for (w, _), token in zip(results, tokens)]
        if self.events is not None:  # picks -> event alerts; picks' input held till delivered
            alerts, held = self.events.take(results, alerts)
            ends += held
        if alerts:  # ended once delivered everywhere (an embargo: when it ends, see fanout)
            await self._send(alerts, partial(self._end, ends))
        else:
            self._end(ends)

    def _end(self, ends: list[tuple[InstrumentId, int]]) -> None:
        for inst, token in ends:
            self.tracker.end(inst, token)

    async def _send(self, alerts: list[Alert], then: Callable[[], None] | None = None) -> None:
        await self.fanout.send(alerts, then)
        if self.observer is not None:
            self.observer.alerts(alerts)
        for a in alerts:
            for sink in self.sinks:
                self.metrics.alerts_out.labels(kind=a.kind, sink=sink.name).inc()
            self.metrics.end_to_end.labels(kind=a.kind).observe(
                max(0.0, (a.emitted_ns - a.newest_arrival_ns) / NS_PER_S))
            self.summary.alerts[a.kind.value] += 1
            if self.keep_alerts:
                self.summary.delivered.append(a)

    async def _send_best_effort(self, alerts: list[Alert]) -> None:
        """Service health alerts outside the data path (watchdog): never fail the caller."""
        try:
            await self._send(alerts)
        except Exception as exc:
            log.error("could not deliver a health alert: %r", exc)

    # ---- offsets ---------------------------------------------------------------------------
    async def _release_silent(self) -> None:
        """Instruments silent past buffer.release_silent_s let go of their data (their windows
        are cut now), so the committed offsets keep moving on a live feed."""
        windows, events = self.windower.release_silent()
        await self._handle_events(events, time.time_ns())
        await self._enqueue(windows)

    async def _commit(self) -> None:
        await self.offsets.commit()

    async def _revoked(self, source: str, partitions: set[int]) -> None:
        """A rebalance takes ``partitions`` of ``source`` away: commit all that is done, then
        stop tracking them (the new owner re-reads from there)."""
        await self.offsets.commit()
        self.offsets.revoke(source, partitions)

    async def _commit_loop(self, watchdog: Watchdog) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            watchdog.beat()
            try:
                await self._release_silent()
                await self._commit()
            except Exception:  # commit trouble must not kill the service; next round retries
                log.exception("offset commit failed")
