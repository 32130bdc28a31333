"""The daemon's engine: the invoice flow (``connector.flow``) with the source kinds around it.

A source kind supplies units of work and writes each invoice's outcome back its own way:
folders (``connector.adapters.files``: claimed files, XML/PDF/acuse files, archive and
``failed/``) and database tables (``connector.adapters.table.runner``: claimed rows, the row's
columns). The flow — journal transitions, sealing, sends with many in flight, retries,
recovery by referencia, delivery — does not know which one an invoice came from.

The main thread scans and claims, parses, validates and seals each invoice and records every
step in the journal; PAC round trips run in a thread pool (``daemon.workers`` requests in
flight).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from connector.adapters.files.finishing import FileOutcome, deliver_outputs
from connector.adapters.files.units import FileUnits
from connector.adapters.table.rows import instance_name
from connector.adapters.table.runner import TableUnits
from connector.cancel_follow import CancellationFollower
from connector.cfdi.errors import Problem
from connector.config import Config, PacConfig, SourceConfig, load_csd, source_mapping
from connector.flow.runtime import (
    PacRuntime,
    PipelineError,
    SourceRuntime,
    as_problem,
    make_driver,
    sat_cert,
)
from connector.flow.sending import ACCOUNT_WAIT_CODES, InvoiceFlow
from connector.journal import FileRecord, Journal, journal_away, journal_retry, open_journal
from connector.membership import Membership, SharedJournal, per_instance_work
from connector.rendering import PdfRenderer, default_processes
from connector.sinks import atomic_write, clean_temp_files

log = structlog.get_logger("connector.pipeline")

_REDELIVER_SECONDS = 30.0

__all__ = ["FileOutcome", "Pipeline", "PipelineError", "deliver_outputs", "make_driver"]


def _local_now() -> datetime:
    return datetime.now().astimezone()


def _no_tick() -> None:
    pass


class Pipeline(SharedJournal, InvoiceFlow):
    """The daemon's engine. ``start()``, then ``poll_once()`` / ``run(stop)``, then ``close()``."""

    def __init__(
        self,
        cfg: Config,
        *,
        now: Callable[[], datetime] | None = None,
        max_inflight: int | None = None,
    ) -> None:
        self.cfg = cfg
        # aware local time: the 72-hour rule then accepts a Fecha written in any Mexican zone
        # or in this machine's own zone (rules._fecha)
        self.now = now or _local_now
        self.journal: Journal | None = None
        self.sources: dict[str, SourceRuntime] = {}
        self.pacs: dict[str, PacRuntime] = {}
        processes = cfg.daemon.pdf_processes
        self.pdf = PdfRenderer(default_processes() if processes is None else processes)
        self._init_flow(cfg.daemon.workers, max_inflight)
        self.files = FileUnits(self)
        # this connector's name in the table rows it claims (the same across restarts)
        self.instance = cfg.daemon.instance or instance_name(cfg.path)
        self.cfg = per_instance_work(cfg, self.instance)
        # with a shared (PostgreSQL) journal: the heartbeat and the takeover (``start``)
        self.membership: Membership | None = None
        # this instance was taken over (it stalled past its lease): the daemon exits at once
        self.on_lost: Callable[[], None] = self._lost
        self.tables = TableUnits(self, self.instance)
        self._watchers: list[Any] = []
        self._last_status = 0.0
        self._last_redeliver = time.monotonic()
        # how often what is stuck is tried again: undelivered stamps, moves to archive/failed,
        # files whose processing failed, sends no worker holds
        self.redeliver_seconds = _REDELIVER_SECONDS
        self.cancellations = CancellationFollower(cfg)  # SAT follow-up of cancellations
        # called by the loop on every turn and by recovery at every step (the service's
        # watchdog and health check: connector.service.notify.Heartbeat.tick)
        self.tick: Callable[[], None] = _no_tick
        self.status_more: Callable[[], dict[str, Any]] = dict  # more for the status file

    # the folder kind's outcomes and settings, as the pipeline's (submit, demo, tests)
    @property
    def finished(self) -> list[FileOutcome]:
        return self.files.finished

    @property
    def max_changes(self) -> int:
        return self.files.max_changes

    @max_changes.setter
    def max_changes(self, n: int) -> None:
        self.files.max_changes = n

    @property
    def busy_note_seconds(self) -> float:
        return self.files.busy_note_seconds

    @busy_note_seconds.setter
    def busy_note_seconds(self, s: float) -> None:
        self.files.busy_note_seconds = s

    def process_file(self, src: SourceRuntime, work: Path, **kw: Any) -> FileRecord:
        return self.files.process_file(src, work, **kw)

    def _kinds(self) -> list[Any]:
        return [self.files, self.tables]

    def _each_kind(self, what: str, *args: Any) -> None:
        """``what`` of every source kind; one that fails does not keep the others from it."""
        for kind in self._kinds():
            try:
                getattr(kind, what)(*args)
            except Exception as exc:
                if journal_retry(exc):  # the shared journal's outage: said once
                    self.journal_away(exc)
                else:
                    log.exception(f"{what}_failed", kind=type(kind).__name__)

    def _after_invoice(self, invoice_id: int) -> None:
        self._each_kind("after_invoice", invoice_id)

    # --- life cycle -------------------------------------------------------------------------

    def start(self, *, watch: bool = False) -> None:
        cfg = self.cfg
        try:
            self.journal = open_journal(cfg.daemon)
        except (sqlite3.Error, OSError) as exc:
            raise PipelineError(
                [
                    Problem(
                        "CONN-DIARIO",
                        "daemon.journal",
                        f"No se puede abrir el diario {cfg.daemon.journal}: {exc}.",
                    )
                ]
            ) from exc
        if self.journal.shared:
            self._join()
        cfg = self.cfg
        built, problems = self._build_sources(cfg, cfg.sources)
        if problems:
            self.tables.discard(built)
            self.close()
            raise PipelineError(problems)
        self.sources.update(built)
        self.tables.adopt(built, removed=[])
        self._start_workers(cfg.daemon.workers)
        try:  # SAT's catalogs and schema load once per process (~0.6 s): now, not in a file
            from connector.cfdi.catalogs import catalogs
            from connector.cfdi.xmlio_xsd import preload_schema

            catalogs()
            preload_schema()
        except Exception:  # the first invoice that needs them reports the problem
            log.warning("catalogs_unavailable", exc_info=True)
        clean_temp_files([self.status_path().parent])  # a status file cut by a kill
        for src in self.sources.values():
            src.kind.clean(src, self.now().date())
        self.resume()
        if watch:
            for src in self.sources.values():
                self._watch(src)
        log.info("pipeline_started", sources=sorted(self.sources), workers=cfg.daemon.workers)

    def _build_sources(
        self, cfg: Config, sources: list[SourceConfig]
    ) -> tuple[dict[str, SourceRuntime], list[Problem]]:
        """The runtimes of ``sources`` (their PACs added to ``self.pacs`` when new), with every
        problem found (emisor, CSD, mapping, PAC)."""
        problems: list[Problem] = []
        for p in cfg.pacs:
            if p.name not in self.pacs and any(s.pac == p.name for s in sources):
                try:
                    self.pacs[p.name] = self._pac_runtime(p)
                except Exception as exc:
                    problems.append(as_problem(exc, f"pacs.{p.name}", "CONN-CFG-PAC"))
        built: dict[str, SourceRuntime] = {}
        csds: dict[str, Any] = {}
        for s in sources:
            try:
                emisor = cfg.emisor(s.emisor)
            except KeyError:
                problems.append(
                    Problem("CONN-CFG-EMISOR", s.name, f"El emisor {s.emisor} no está definido.")
                )
                continue
            csd = None
            if s.mode == "stamp" or s.adapter == "xml":
                try:
                    csd = csds.get(emisor.rfc) or load_csd(emisor)
                    csds[emisor.rfc] = csd
                except Exception as exc:
                    problems.append(as_problem(exc, f"emisores.{emisor.rfc}", "CONN-CFG-CSD"))
                    continue
            try:
                mapping = source_mapping(s)
            except Exception as exc:
                problems.append(as_problem(exc, f"sources.{s.name}.mapping", "CONN-CFG-MAPEO"))
                continue
            if s.pac not in self.pacs:
                continue
            src = SourceRuntime(cfg=s, emisor=emisor, pac=self.pacs[s.pac], mapping=mapping,
                                csd=csd)  # fmt: skip
            if s.kind == "table":
                try:
                    src.table = self.tables.make_table(s, emisor, mapping)
                except Exception as exc:  # the password's secret
                    problems.append(as_problem(exc, f"sources.{s.name}.table", "CONN-CFG-SECRETO"))
                    continue
                src.kind = self.tables
            else:
                src.folder = self.files.make_folder(s, self.cfg.daemon.poll_seconds)
                src.kind = self.files
            built[s.name] = src
        return built, problems

    def _watch(self, src: SourceRuntime) -> None:
        if src.folder is not None and not src.cfg.polling:
            try:
                src.folder.watch(self.wake)
                self._watchers.append(src.folder)
            except Exception as exc:  # events are only a wake-up: polling still works
                log.warning("watch_unavailable", source=src.cfg.name, error=str(exc))

    def reload(self, cfg: Config) -> dict[str, list[str]]:
        """Apply a checked configuration between two turns of the loop: sources added,
        removed or changed (a changed one is rebuilt; sends in flight keep the runtime they
        started with; a removed source's files and invoices stay in the journal, resumed when
        it comes back). ``[daemon]`` and PACs already running keep their settings until a
        restart (listed under ``restart``). PipelineError: nothing was changed."""
        cfg = per_instance_work(cfg, self.instance)
        old = {s.name: s for s in self.cfg.sources}
        new = {s.name: s for s in cfg.sources}
        changed = [n for n in new if n in old and old[n] != new[n]]
        added = [n for n in new if n not in old]
        removed = [n for n in old if n not in new]
        before = set(self.pacs)
        built, problems = self._build_sources(cfg, [new[n] for n in (*added, *changed)])
        if problems:
            for name in set(self.pacs) - before:  # nothing changes: PACs just made go too
                with contextlib.suppress(Exception):
                    self.pacs.pop(name).driver.close()
            self.tables.discard(built)
            raise PipelineError(problems)
        self.tables.adopt(built, removed=removed)
        for name in (*removed, *changed):
            src = self.sources.pop(name, None)
            if src is not None and src.folder in self._watchers:
                self._watchers.remove(src.folder)
                with contextlib.suppress(Exception):
                    src.folder.stop()
        for name, src in built.items():
            self.sources[name] = src
            self._watch(src)
        restart = ["daemon"] if cfg.daemon != self.cfg.daemon else []
        restart += [f"pacs.{p.name}" for p in cfg.pacs
                    if p.name in self.pacs and self.pacs[p.name].cfg != p]  # fmt: skip
        self.cfg = cfg.model_copy(update={"daemon": self.cfg.daemon})
        self._dispatch_unfinished()  # a source back: its invoices left in the journal go on
        self.wake.set()
        return {"added": added, "removed": removed, "changed": changed, "restart": restart}

    def _pac_runtime(self, p: PacConfig) -> PacRuntime:
        from connector.pac.resilience import CircuitBreaker, ResilientPac, RetryPolicy

        driver = make_driver(p, pool_size=self.cfg.daemon.workers)
        breaker = CircuitBreaker(  # one per configured PAC and pipeline
            p.name,
            failure_threshold=p.breaker.failure_threshold,
            reset_timeout=p.breaker.reset_seconds,
        )
        policy = RetryPolicy(
            max_attempts=p.retry.attempts,
            base_delay=p.retry.backoff_seconds,
            max_delay=p.retry.backoff_max_seconds,
        )
        submitter: Any = ResilientPac(driver, policy=policy, breaker=breaker)
        if self.metrics is not None:  # every operation counted and timed for /metrics
            submitter = self.metrics.wrap_pac(p.name, submitter)
        return PacRuntime(
            cfg=p,
            driver=driver,
            breaker=breaker,
            submitter=submitter,
            sat_cert_der=sat_cert(p),
        )

    def close(self, *, wait: bool = True) -> None:
        """Stop taking work; let in-flight sends finish; the rest stays resumable."""
        self.stopping.set()
        for w in self._watchers:
            stop = getattr(w, "stop", None) or getattr(w, "close", None)
            with contextlib.suppress(Exception):
                if stop is not None:
                    stop()
        self._watchers.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None
        self.pdf.close()
        self.cancellations.close()
        self.tables.close()
        for rt in self.pacs.values():
            with contextlib.suppress(Exception):
                rt.driver.close()
        if self.membership is not None:
            self.membership.stop()
            self.membership = None
        if self.journal is not None:
            with contextlib.suppress(Exception):
                self.write_status()
            self.journal.close()
            self.journal = None

    # --- the loop ---------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        max_wait: float | None = None,
        between: Callable[[], None] | None = None,
    ) -> None:
        """Until ``stop`` is set: scan, claim, process; wake on events or the poll interval
        (or after ``max_wait`` seconds at most: the watchdog's pace). ``between`` runs at the
        top of every turn, outside any scan (the daemon's configuration reload)."""
        self.tables.background = True  # each table source polls on its own thread
        try:
            while not stop.is_set() and not self.stopping.is_set():
                self.tick()
                if between is not None:
                    between()
                self.wake.clear()
                try:
                    self.poll_once(stop)
                except Exception as exc:  # e.g. the journal busy for too long: log, wait, go on
                    if journal_retry(exc):  # the shared journal's outage: said once
                        self.journal_away(exc)
                    else:
                        log.exception("poll_failed")
                interval = self.cfg.daemon.poll_seconds
                srcs = [s.cfg.poll_seconds for s in self.sources.values() if s.cfg.poll_seconds]
                if srcs:
                    interval = min([interval, *srcs])
                try:  # a journal query too: the shared journal's outage must not end the loop
                    due = self._next_retry_in()
                except Exception as exc:
                    if not journal_away(exc):
                        log.exception("next_retry_failed")
                    due = None
                if due is not None:
                    interval = min(interval, max(0.05, due))
                folders = [s for s in self.sources.values() if s.folder is not None]
                if folders and (self.inbox_waiting() or self.files.settling):  # stable soon?
                    stable = min(s.cfg.stable_seconds for s in folders)
                    interval = min(interval, max(0.05, stable / 2))
                if self.tables.more:  # a full batch (or no room for one): more rows may wait
                    interval = min(interval, 0.05 if self.in_flight() < self.max_inflight else 0.2)
                if max_wait is not None:
                    interval = min(interval, max_wait)
                self.wake.wait(interval)
                if stop.is_set():
                    break
        finally:
            self.tables.background = False

    def poll_once(self, stop: threading.Event | None = None) -> int:
        """One pass: due retries, then every source's ready work. Returns units taken."""
        assert self.journal is not None

        def stopped() -> bool:
            return (stop is not None and stop.is_set()) or self.stopping.is_set()

        if self.membership is not None and self.membership.take_back():
            # the periodic second chance at once: a server that crashed may have undone the
            # steps committed without waiting for its disk (a file's end, a delivery), which
            # repeating them repairs (see Durability in connector.journal)
            self._last_redeliver = float("-inf")
        if self.membership is not None and self.membership.take_pending():
            try:
                self._take_over()
            except Exception:  # tried again at the next turn: nothing taken is left behind
                self.membership.pend()
                raise
        self._dispatch_due_retries()
        self.files.read_settled()
        self.tables.more = False
        taken = 0
        if self.fenced():  # its heartbeats do not go through: no new work for now
            return 0
        for src in list(self.sources.values()):
            if stopped():
                break
            try:
                taken += src.kind.poll(src, stopped)
            except Exception as exc:  # one source's failure never stops the others
                if journal_retry(exc):
                    self.journal_away(exc)
                else:
                    log.exception("poll_source_failed", source=src.cfg.name)
        self._reap()
        if time.monotonic() - self._last_status > 2.0:
            self.write_status()
        return taken

    def poll_retries(self) -> None:
        """Dispatch the invoices whose retry time has come (no scan)."""
        self._dispatch_due_retries()
        self._reap()

    def _dispatch_due_retries(self) -> None:
        assert self.journal is not None
        if time.monotonic() - self._last_redeliver > self.redeliver_seconds:
            self._last_redeliver = time.monotonic()
            self._retry_stuck()
        self.cancellations.tick(self)  # its own cadence, on a worker thread
        super()._dispatch_due_retries()

    def _retry_stuck(self) -> None:
        """The periodic second chance (``redeliver_seconds``) for what no event will retry:
        each kind's own (moves to archive/ or failed/, files whose processing failed, rows
        not written back), stamped invoices not delivered (an output folder missing),
        sealed/sending ones no worker holds and acuses still missing."""
        self._each_kind("retry_stuck")
        self._check_elsewhere()
        self._dispatch_unfinished()
        self._fetch_missing_acuses_soon()

    def idle(self) -> bool:
        """Nothing in flight, nothing waiting for a retry, every unit finished."""
        assert self.journal is not None
        self._reap()
        return not self._inflight and all(kind.idle() for kind in self._kinds())

    def inbox_waiting(self) -> bool:
        """Some inbox holds a file this pipeline would take once it is stable."""
        return self.files.inbox_waiting([s for s in self.sources.values() if s.folder])

    def run_until_idle(self, timeout: float = 60.0, *, settle: float = 0.0) -> bool:
        """Poll until every unit found is finished (tests, ``submit``, ``demo``, ``--once``)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            taken = self.poll_once()
            if taken == 0 and self.idle() and not self.inbox_waiting():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            self.wake.wait(0.05)
            self.wake.clear()
        return False

    def resume(self) -> None:
        """Finish what a previous run left: each kind's units (moves decided but not done,
        files left in work/, rows this instance holds), then every invoice not final."""
        assert self.journal is not None
        self._each_kind("resume")
        waited = self.journal.retry_now(ACCOUNT_WAIT_CODES)
        if waited:
            log.info("resume_account_waits", invoices=waited)
        self._dispatch_unfinished()

    # --- status -----------------------------------------------------------------------------

    def status_path(self) -> Path:
        return self.cfg.daemon.local_file(".status.json")

    def write_status(self) -> None:
        self._last_status = time.monotonic()
        doc = {
            "pid": os.getpid(),
            "at": datetime.now().isoformat(timespec="seconds"),
            "pacs": {name: rt.state() for name, rt in self.pacs.items()},
            "in_flight": len(self._inflight),
            **({"tables": self.tables.state()} if self.tables.state() else {}),
            **self.status_more(),
        }
        with contextlib.suppress(OSError):
            atomic_write(self.status_path(), json.dumps(doc).encode())
