"""Keeping an unattended service honest: exit codes, supervised tasks, bounded shutdown and a
watchdog.

* Every long-lived task is created through ``supervise``: if it ends with an exception, one log
  record names the task and carries the traceback, and ``on_failure`` turns it into an orderly
  stop (the exit code then says so). No task dies silently.
* ``SignalGuard``: the first SIGTERM/SIGINT asks the pipeline to stop (drain, commit, exit) and
  arms a hard deadline (``shutdown_timeout_s`` plus a grace period) after which the process
  exits even if something is stuck in C code or a thread; a second signal exits at once. Both
  hard exits use ``ExitCode.UNDELIVERED``: what was in flight may not have been delivered.
* ``Watchdog``: a thread (it works even when the event loop is blocked) that notices when the
  loop stops turning, or work is pending and nothing moves, for ``stall_s``; it logs every task's
  and thread's stack once per episode, counts it, and hands the pipeline a ``health`` alert.
* ``DrainDeadline``: how long the end of a run may take. A stop that was asked for (a signal, a
  failure) has ``shutdown_timeout_s`` from the request; the natural end of finite input (an
  archive replayed at full speed, with up to ``max_pending_windows`` still queued) has it from
  the last progress, so a slow model finishes the archive and a sink that never answers still
  ends the run.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from enum import IntEnum
from typing import Any

from geosentry.stream.errors import GeosentryError

log = logging.getLogger(__name__)
#: seconds between the shutdown deadline and the hard exit (room for logging and closing)
HARD_EXIT_GRACE_S = 5.0


class ExitCode(IntEnum):
    """What ``geosentry`` exit statuses mean (README: failure policy)."""

    OK = 0  #: every input read was processed and every alert delivered
    FAILED = 1  #: a source or detector failed (logged); what was delivered was delivered
    USAGE = 2  #: bad command line, configuration or unreachable endpoint at start-up
    UNDELIVERED = 3  #: stopped (shutdown timeout, second signal) with alerts not delivered


def supervise(coro: Coroutine[Any, Any, Any], name: str,
              on_failure: Callable[[str, BaseException], None]) -> asyncio.Task[Any]:
    """``asyncio.create_task`` whose unexpected end is logged and reported, never silent."""
    task = asyncio.create_task(coro, name=name)

    def done(t: asyncio.Task[Any]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            # an error raised on purpose is one line; anything else is a bug: full traceback
            log.error("task %s failed: %s", name, exc,
                      exc_info=None if isinstance(exc, GeosentryError) else exc)
            on_failure(name, exc)

    task.add_done_callback(done)
    return task


def stacks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every thread's stack and, when ``loop`` is given, every task's (one text block)."""
    out = io.StringIO()
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.write(f"--- thread {names.get(ident, ident)}\n")
        traceback.print_stack(frame, file=out)
    if loop is not None:
        for task in asyncio.all_tasks(loop):
            out.write(f"--- task {task.get_name()}\n")
            try:
                task.print_stack(limit=8, file=out)
            except Exception as exc:  # a task changing under us: say so, keep the rest
                out.write(f"(stack unavailable: {exc!r})\n")
    return out.getvalue()


def hard_exit(why: str, code: ExitCode = ExitCode.UNDELIVERED) -> None:
    """Leave now, whatever is running (threads stuck in C code included)."""
    try:  # never block on a full stderr pipe: the exit must happen
        os.set_blocking(2, False)
        os.write(2, f"geosentry: {why}; exiting with status {int(code)}\n".encode())
    except OSError:
        pass
    finally:
        os._exit(int(code))


class RateLimit(logging.Filter):
    """At most one record per logger and message template every ``interval_s`` (third-party
    clients such as aiokafka log each failed reconnect, many per second during an outage; the
    service reports the outage itself, once). How many were suppressed is added to the next."""

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",), interval_s: float = 60.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-self.interval_s, 0))
        if now - last < self.interval_s:
            self._last[key] = (last, suppressed + 1)
            return False
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} like it in the last {self.interval_s:g} s)"
        return True


class SignalGuard:
    """SIGTERM/SIGINT handling for a service coroutine (see the module docs)."""

    def __init__(self, request_stop: Callable[[], None], shutdown_timeout_s: float) -> None:
        self.request_stop = request_stop
        self.shutdown_timeout_s = shutdown_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signalled = 0
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        # signal.signal, not loop.add_signal_handler: a Python-level handler runs between
        # bytecodes even while the loop is blocked in a long synchronous step
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        self._signalled += 1
        name = signal.Signals(signum).name
        if self._signalled > 1:
            hard_exit(f"second {name}: stopping at once, alerts in flight may be undelivered")
        log.warning("%s: stopping (drain, deliver, commit; at most %g s)", name,
                    self.shutdown_timeout_s)
        self._timer = threading.Timer(self.shutdown_timeout_s + HARD_EXIT_GRACE_S, hard_exit,
                                      (f"shutdown did not finish within "
                                       f"{self.shutdown_timeout_s:g} s",))
        self._timer.daemon = True
        self._timer.start()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.request_stop)


class DrainDeadline:
    """The deadline of a run's drain (module docs). ``progress()`` is the pipeline's progress
    count (records read, windows delivered)."""

    def __init__(self, timeout_s: float, progress: Callable[[], int]) -> None:
        self.timeout_s = timeout_s
        self.progress = progress
        self._at = float("inf")
        self._last: int | None = None  # the progress seen last; None: not following progress

    def arm(self, *, requested: bool) -> None:
        """Start the clock: a stop asked for (``requested``) ends ``timeout_s`` from now at the
        latest, whatever moves; the end of the input ``timeout_s`` after the last progress."""
        now = time.monotonic()
        if requested:
            self._last = None
            self._at = min(self._at, now + self.timeout_s)
        elif self._at == float("inf"):
            self._last = self.progress()
            self._at = now + self.timeout_s

    @property
    def armed(self) -> bool:
        return self._at != float("inf")

    @property
    def requested(self) -> bool:
        """Armed by a stop request (not following progress)."""
        return self.armed and self._last is None

    def remaining(self) -> float:
        """Seconds left (0: past it); progress since the last call moves a following deadline."""
        now = time.monotonic()
        if self._last is not None and (p := self.progress()) != self._last:
            self._last, self._at = p, now + self.timeout_s
        return max(0.0, self._at - now)

    async def wait(self, aw: Awaitable[Any]) -> Any:
        """``aw``'s result; ``TimeoutError`` (``aw`` cancelled) once the deadline passes."""
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                left = self.remaining()
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait([task], timeout=min(left, 1.0))
            return task.result()
        finally:
            task.cancel()


class Watchdog:
    """Stall detection in a daemon thread (see the module docs).

    ``progress()`` returns a number that grows whenever the pipeline moves (records read,
    batches delivered); ``pending()`` how many windows wait or are in flight; ``on_stall`` is
    called on the loop with a one-line reason. The pipeline calls ``beat()`` from the loop.
    """

    def __init__(self, stall_s: float, progress: Callable[[], int], pending: Callable[[], int],
                 on_stall: Callable[[str], None], check_s: float = 1.0) -> None:
        self.stall_s = stall_s
        self.progress = progress
        self.pending = pending
        self.on_stall = on_stall
        self.check_s = check_s
        self.stalls = 0
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def beat(self) -> None:
        self._beat = time.monotonic()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last_progress, moved_at, stalled = self.progress(), time.monotonic(), False
        while not self._stop.wait(self.check_s):
            now = time.monotonic()
            progress, pending = self.progress(), self.pending()
            if progress != last_progress or not pending:
                last_progress, moved_at = progress, now
            why = None
            if now - self._beat > self.stall_s:
                why = f"event loop blocked for {now - self._beat:.0f} s"
            elif pending and now - moved_at > self.stall_s:
                why = f"{pending} windows pending and no progress for {now - moved_at:.0f} s"
            if why is None:
                if stalled:
                    log.warning("watchdog: moving again")
                stalled = False
                continue
            if stalled:
                continue
            stalled = True
            self.stalls += 1
            loop = self._loop
            log.error("watchdog: %s; stacks follow\n%s", why, stacks() + self._task_stacks())
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self.on_stall, why)

    def _task_stacks(self) -> str:
        """Task stacks, taken on the loop when it still turns (within a second)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return ""

        async def take() -> str:
            return "".join(stacks(loop).partition("--- task")[1:])

        try:
            return asyncio.run_coroutine_threadsafe(take(), loop).result(timeout=1.0)
        except Exception:
            return "(event loop not answering: task stacks unavailable)\n"
