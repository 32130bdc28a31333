"""A table source's calls on threads of its own, so that a database that stops answering
(the network cut silently: packets dropped, no RST) holds only that source.

A call sent into such a cut waits inside the ODBC driver with no end the connector can set:
psqlODBC has no client-side read timeout, and the engine's statement timeout never starts
because the server never saw the statement. Every call to a source's database therefore runs
on that source's own thread (``Caller``); whoever asked waits while the call runs for less than
the source's ``timeout_seconds`` plus a margin, and past that the source is paused while the
call is left to return by itself (when the network heals, or when the system's TCP gives up:
about 15 minutes on Linux). The daemon's loop does not even wait that long: each table source's
polls (claim, read, admission, renewals, take-backs) run on a second thread of its own.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")

MARGIN = 5.0  # seconds a call may run beyond the engine's statement timeout before it is stuck
_SLICE = 0.25  # how often a waiting caller looks at the running call's age


class Stuck(Exception):
    """The call running on a ``Caller`` went past its limit (the caller's own call, or the one
    ahead of it)."""


class Caller:
    """One daemon thread that runs calls in order (a thread stuck in a driver never holds up
    the process's exit). ``running_for`` says how long the current call has been running."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._started_at: float | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((fut, fn))
        return fut

    def running_for(self) -> float:
        started = self._started_at
        return 0.0 if started is None else time.monotonic() - started

    def wait(self, fut: Future[T], limit: float) -> T:
        """The call's result (or its exception); ``Stuck`` when the call running on this thread
        (this one or one ahead of it) has run longer than ``limit`` seconds. A call given up on
        before it started never runs."""
        while True:
            try:
                return fut.result(timeout=_SLICE)
            except FutureTimeout:
                if self.running_for() > limit:
                    fut.cancel()  # only if it has not started
                    raise Stuck() from None

    def stop(self) -> None:
        """No more calls: the thread ends after those already queued."""
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            fut, fn = job
            if not fut.set_running_or_notify_cancel():
                continue
            self._started_at = time.monotonic()
            try:
                result = fn()
            except BaseException as exc:
                self._started_at = None
                fut.set_exception(exc)
            else:
                self._started_at = None
                fut.set_result(result)
