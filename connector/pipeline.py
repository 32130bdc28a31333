"""Orchestration: folder sources → invoices → journal → seal → PAC (many in flight) → sinks.

The main thread scans and claims files, parses them, validates and seals each invoice and
records every step in the journal; PAC round trips run in a thread pool (``daemon.workers``
requests in flight). When every invoice of a file has reached a final state the file is
archived by date (all good) or moved to ``failed/`` beside its error files (any bad).

Restart safety (see ``connector.journal``): a file stays in ``work/`` until its invoices end;
on start every file left in ``work/`` is processed again and each invoice continues from its
journal state — sealed bytes are resent as they are, an invoice found in ``sending`` is first
recovered from the PAC by its ``referencia``, stamped ones are only delivered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from connector.cancellations import CancellationFollower
from connector.cfdi.errors import CfdiError, Problem
from connector.config import (
    Config,
    EmisorConfig,
    PacConfig,
    SourceConfig,
    load_csd,
    pac_network,
    read_secret,
    source_mapping,
)
from connector.journal import (
    ACUSE_MISSING,
    COMMITTED_STATES,
    FINAL_STATES,
    PAC_DOCUMENT,
    Admission,
    Entry,
    FileItem,
    FileRecord,
    FileState,
    Journal,
    State,
)
from connector.outputs import output_paths
from connector.pac.errors import ACCOUNT_CODES
from connector.rendering import PdfRenderer, default_processes, render_pdf_bytes
from connector.sinks import (
    ItemError,
    archive_folder,
    atomic_write,
    atomic_write_all,
    clean_temp_files,
    fit_name,
    free_name,
    move_file,
    safe_part,
    write_error_files,
)

log = structlog.get_logger("connector.pipeline")

# an invoice waiting with one of these codes waits for the PAC account (password, credits),
# not for its own sake: sent again at once when the daemon starts (the configuration may be
# fixed) and when the paused PAC accepts the account again
ACCOUNT_WAIT_CODES = (*sorted(ACCOUNT_CODES), "CONN-PAC-CUENTA", "CONN-PAC-RECUPERACION")
_REDELIVER_SECONDS = 30.0
_CHUNK = 32  # invoices journaled per transaction before their sends are dispatched
_HASH_EXCLUDE = {"Fecha", "Sello", "NoCertificado", "Certificado", "TimbreFiscalDigital"}


# the files a claimed file's invoices were read from, as read: (path, size, mtime_ns, sha256)
Fingerprint = tuple[tuple[str, int, int, str], ...]
_MAX_CHANGES = 10  # times a file may be found changed after it was read before it fails


class _StillWriting(Exception):
    """A claimed file that another process still writes: read it once it settled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Settling:
    source: str
    work: Path
    seen: tuple[int, int] | None = None  # (size, mtime_ns) last observed
    since: float = 0.0  # time.monotonic() when ``seen`` was first observed


def _read_whole(
    src: SourceRuntime, work: Path, *, writers: bool = True
) -> tuple[bytes, tuple[Path, bytes] | None, Fingerprint]:
    """A claimed file's bytes (and, for a pair, its partner's path and bytes) with their
    fingerprint. ``_StillWriting`` when a process holds one of them open for writing or one
    changed while it was read: a record cut at the end of a chunk is never reported as bad
    data, the file is read again once it settled. ``writers=False``: no look for open writers
    (the scan that just claimed it looked; they are looked for again before it is finished)."""
    from connector.adapters.folder import open_for_writing

    paths = [work]
    other = getattr(src.folder, "partner_in_work", _none)(work)
    if other is not None:
        paths.append(other)
    if writers and open_for_writing(paths):
        raise _StillWriting("otro proceso lo tiene abierto para escritura")
    datas: list[bytes] = []
    fp: list[tuple[str, int, int, str]] = []
    for path in paths:
        before = os.stat(path)
        data = path.read_bytes()
        after = os.stat(path)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(
            data
        ) != after.st_size:
            raise _StillWriting("cambió mientras se leía")
        datas.append(data)
        fp.append((str(path), after.st_size, after.st_mtime_ns, hashlib.sha256(data).hexdigest()))
    return datas[0], (paths[1], datas[1]) if other is not None else None, tuple(fp)


def _changed_since(fp: Fingerprint, *, writers: bool = True) -> str | None:
    """Why the files a fingerprint describes no longer hold the bytes that were read (a
    process holds one open for writing, its size, mtime or content differ); None when they
    are the same (a file gone from its place is left to the move that follows).
    ``writers=False``: no pass over /proc for open writers (the caller's previous check, a
    journal commit ago, made it); size, mtime and content are compared all the same."""
    from connector.adapters.folder import open_for_writing

    if writers and open_for_writing(Path(f[0]) for f in fp):
        return "otro proceso lo tiene abierto para escritura"
    for path, size, mtime_ns, digest in fp:
        try:
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return (
                    f"su tamaño o fecha cambió (se leyeron {size} bytes, ahora tiene {st.st_size})"
                )
            if hashlib.sha256(Path(path).read_bytes()).hexdigest() != digest:
                return "su contenido cambió"
        except FileNotFoundError:
            continue
    return None


class _Changed(Exception):
    """A decided file is no longer what was read (``_changed_since``)."""

    def __init__(self, reason: str, fingerprint: Fingerprint) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fingerprint = fingerprint


def _keeps_changing(name: str, reason: str, times: int) -> ItemError:
    return ItemError(
        location=name,
        invoice="",
        code="CONN-ARCHIVO-CAMBIO",
        path="",
        message=(
            f"El archivo siguió cambiando después de leerse ({reason}); se leyó de nuevo "
            f"{times} veces. Se timbraron solo las facturas que tenía completas en la "
            "última lectura (las que este reporte da por entregadas); quedan sin timbrar las "
            "que el ERP escribió después. "
            "El ERP lo escribe por partes con pausas: configure done_marker en la fuente (el "
            "ERP crea el marcador al terminar), y reprocese este archivo con replay."
        ),
    )


def original_name(work: Path) -> str:
    """The ERP's file name of a claimed file (``<stamp>-<hex>--<name>`` in work/)."""
    from connector.adapters.folder import FolderSource

    return FolderSource.original_name(work)


def content_hash(comprobante: Any | None, xml: bytes | None = None) -> str:
    """What makes two submissions of one business key "the same invoice".

    The issue date and the seal are left out: a re-export of the same data an hour later is
    the same invoice, not a new one.
    """
    h = hashlib.sha256()
    if comprobante is not None:
        h.update(comprobante.model_dump_json(exclude=_HASH_EXCLUDE).encode())
    elif xml is not None:
        h.update(xml)
    return h.hexdigest()


def new_referencia(serie: str, folio: str) -> str:
    base = f"{serie}{folio}"[:20]
    return f"{base}-{secrets.token_hex(6)}"


MAX_MESSAGE = 1000  # characters of one problem's message kept in the journal and error files


def short_message(message: str) -> str:
    """A message as stored and reported: a value quoted whole (a 1 MB field) is cut."""
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}… (mensaje recortado: {len(message)} caracteres)"


def problem_dict(p: Problem, location: str | None = None) -> dict[str, Any]:
    d = p.to_dict()
    d["message"] = short_message(p.message)
    if not d.get("location"):
        d["location"] = location
    return d


@dataclass
class PacRuntime:
    cfg: PacConfig
    driver: Any  # connector.pac.base.PacDriver
    breaker: Any | None = None  # connector.pac.resilience circuit breaker, when available
    submitter: Any | None = None
    sat_cert_der: bytes | None = None  # [[pacs]] sat_cert: every SelloSAT is verified with it

    def state(self) -> dict[str, Any]:
        if self.breaker is not None:
            return dict(self.breaker.snapshot())
        return {"pac": self.cfg.name, "state": "closed"}


@dataclass
class SourceRuntime:
    cfg: SourceConfig
    emisor: EmisorConfig
    pac: PacRuntime
    folder: Any  # connector.adapters.folder.FolderSource
    mapping: Any | None
    csd: Any | None


@dataclass
class FileOutcome:
    """The final place of one input file and what happened to its invoices."""

    file_id: int
    name: str
    state: FileState
    final_path: str | None
    delivered: list[dict[str, str]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def _local_now() -> datetime:
    return datetime.now().astimezone()


class PipelineError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def make_driver(pac: PacConfig, pool_size: int) -> Any:
    """The PAC driver for a configured PAC (``connector.pac.create_driver``)."""
    from connector.pac import create_driver
    from connector.pac.base import Timeouts

    password = read_secret(pac, f"el PAC {pac.name!r}")
    timeouts = Timeouts(connect=min(5.0, pac.timeout_seconds), read=pac.timeout_seconds)
    extra: dict[str, Any] = {}
    if pac.kind == "fel":
        extra = {"cuenta": pac.cuenta, "remote_url": pac.url_remote}
    elif pac.url_cancel:
        extra = {"cancel_url": pac.url_cancel}
    return create_driver(
        pac.kind,
        pac.url,
        usuario=pac.usuario,
        password=password,
        timeouts=timeouts,
        pool_size=pool_size,
        **pac_network(pac),
        **extra,
    )


class Pipeline:
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
        self._executor: ThreadPoolExecutor | None = None
        processes = cfg.daemon.pdf_processes
        self.pdf = PdfRenderer(default_processes() if processes is None else processes)
        self._inflight: dict[int, Future[None]] = {}
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)  # notified when an invoice leaves flight
        self._acuses: Future[None] | None = None  # the missing acuses being fetched
        self._files_lock = threading.RLock()
        self._open_files: dict[int, tuple[str, Path]] = {}  # file_id → (source, work path)
        self._files_of: dict[int, set[int]] = {}  # invoice_id → open files carrying it
        self._fresh: set[int] = set()  # sealed in this run, attempt 1 recorded, not sent yet
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.max_inflight = max_inflight or max(64, cfg.daemon.workers * 4)
        self._watchers: list[Any] = []
        self._last_status = 0.0
        self._last_redeliver = time.monotonic()
        # how often what is stuck is tried again: undelivered stamps, moves to archive/failed,
        # files whose processing failed, sends no worker holds
        self.redeliver_seconds = _REDELIVER_SECONDS
        self.cancellations = CancellationFollower(cfg)  # SAT follow-up of cancellations
        self._reread: set[int] = set()  # claimed files whose processing raised: read again
        # files that changed while (or after) they were read: file_id → watched until settled
        self._settling: dict[int, _Settling] = {}
        self._settling_since: dict[int, float] = {}  # file_id → monotonic() first watched
        self.busy_note_seconds = 300.0  # watched this long: listed by status (once)
        self._parsed: dict[int, Fingerprint] = {}  # file_id → the bytes its invoices came from
        self._changes: dict[int, int] = {}  # file_id → times it was found changed after a read
        self.max_changes = _MAX_CHANGES
        self._noted: set[str] = set()  # inbox entries not taken, already noted in the journal
        self.finished: list[FileOutcome] = []  # outcomes since start (for submit / demo)
        # called by the loop on every turn and by recovery at every step (the service's
        # watchdog and health check: connector.service.notify.Heartbeat.tick)
        self.tick: Callable[[], None] = _no_tick
        self.metrics: Any | None = None  # connector.service.metrics.Metrics, when served
        self.status_more: Callable[[], dict[str, Any]] = dict  # more for the status file

    # --- life cycle -------------------------------------------------------------------------

    def start(self, *, watch: bool = False) -> None:
        cfg = self.cfg
        try:
            self.journal = Journal(cfg.daemon.journal, synchronous=cfg.daemon.journal_synchronous)
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
        built, problems = self._build_sources(cfg, cfg.sources)
        self.sources.update(built)
        if problems:
            self.close()
            raise PipelineError(problems)
        self._executor = ThreadPoolExecutor(
            max_workers=cfg.daemon.workers, thread_name_prefix="pac"
        )
        try:  # SAT's catalogs load once per process (~0.3 s): now, not inside the first file
            from connector.cfdi.catalogs import catalogs

            catalogs()
        except Exception:  # the first invoice that needs them reports the problem
            log.warning("catalogs_unavailable", exc_info=True)
        clean_temp_files([self.status_path().parent])  # a status file cut by a kill
        for src in self.sources.values():
            o = src.cfg.output
            clean_temp_files([o.xml, o.pdf, o.acuse, o.errors, src.cfg.archive, src.cfg.failed])
            clean_temp_files([archive_folder(src.cfg.archive, self.now().date()), src.cfg.work])
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
                    problems.append(_as_problem(exc, f"pacs.{p.name}", "CONN-CFG-PAC"))
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
                    problems.append(_as_problem(exc, f"emisores.{emisor.rfc}", "CONN-CFG-CSD"))
                    continue
            try:
                mapping = source_mapping(s)
            except Exception as exc:
                problems.append(_as_problem(exc, f"sources.{s.name}.mapping", "CONN-CFG-MAPEO"))
                continue
            if s.pac not in self.pacs:
                continue
            assert s.work is not None
            s.work.mkdir(parents=True, exist_ok=True)
            built[s.name] = SourceRuntime(
                cfg=s,
                emisor=emisor,
                pac=self.pacs[s.pac],
                folder=self._folder_source(s),
                mapping=mapping,
                csd=csd,
            )
        return built, problems

    def _watch(self, src: SourceRuntime) -> None:
        if not src.cfg.polling:
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
            raise PipelineError(problems)
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
            sat_cert_der=_sat_cert(p),
        )

    def _folder_source(self, s: SourceConfig) -> Any:
        from connector.adapters.folder import FolderSource

        pair = s.pair.spec() if s.pair is not None else None
        return FolderSource(
            s.inbox,
            s.work,
            include=s.include,
            exclude=s.exclude,
            stable_seconds=s.stable_seconds,
            done_marker=s.done_marker,
            polling=s.polling,
            poll_interval=s.poll_seconds or self.cfg.daemon.poll_seconds,
            pair=pair,
            remember_name=self.journal.remember_name if self.journal is not None else None,
        )

    def _original_name(self, work: Path) -> str:
        """The ERP's name of a claimed file (from the journal when the claim shortened it)."""
        assert self.journal is not None
        return self.journal.claimed_name(work.name) or original_name(work)

    def close(self, *, wait: bool = True) -> None:
        """Stop taking work; let in-flight sends finish; the rest stays resumable."""
        self.stopping.set()
        for w in self._watchers:
            with contextlib.suppress(Exception):
                (getattr(w, "stop", None) or getattr(w, "close", lambda: None))()
        self._watchers.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None
        self.pdf.close()
        self.cancellations.close()
        for rt in self.pacs.values():
            with contextlib.suppress(Exception):
                rt.driver.close()
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
        while not stop.is_set() and not self.stopping.is_set():
            self.tick()
            if between is not None:
                between()
            self.wake.clear()
            try:
                self.poll_once(stop)
            except Exception:  # e.g. the journal busy for too long: log, wait, go on
                log.exception("poll_failed")
            interval = self.cfg.daemon.poll_seconds
            srcs = [s.cfg.poll_seconds for s in self.sources.values() if s.cfg.poll_seconds]
            if srcs:
                interval = min([interval, *srcs])
            due = self._next_retry_in()
            if due is not None:
                interval = min(interval, max(0.05, due))
            if self.inbox_waiting() or self._settling:  # look again when it may be stable
                stable = min(s.cfg.stable_seconds for s in self.sources.values())
                interval = min(interval, max(0.05, stable / 2))
            if max_wait is not None:
                interval = min(interval, max_wait)
            self.wake.wait(interval)
            if stop.is_set():
                break

    def poll_once(self, stop: threading.Event | None = None) -> int:
        """One pass: due retries, then every ready file of every source. Returns files taken."""
        assert self.journal is not None
        self._dispatch_due_retries()
        self._read_settled()
        taken = 0
        for src in self.sources.values():
            try:
                ready = src.folder.scan()
                self._note_rejected(src)
            except Exception as exc:
                log.error("scan_failed", source=src.cfg.name, error=str(exc))
                continue
            for path in ready:
                if (stop is not None and stop.is_set()) or self.stopping.is_set():
                    return taken
                self.tick()
                with self._room:  # back-pressure: the PAC is the bottleneck
                    while len(self._inflight) >= self.max_inflight and not self.stopping.is_set():
                        self._room.wait(0.2)  # a worker that ends notifies
                        self._reap()
                        self.tick()  # waiting for the PAC is not a hang
                try:
                    work = src.folder.claim(path)
                except Exception as exc:
                    log.error("claim_failed", source=src.cfg.name, file=str(path), error=str(exc))
                    continue
                if work is None:
                    continue
                taken += 1
                try:
                    self.process_file(src, Path(work), just_claimed=True)
                except Exception:  # stays in work/: resumed on the next start
                    log.exception("file_failed_internal", file=Path(work).name)
        self._reap()
        if time.monotonic() - self._last_status > 2.0:
            self.write_status()
        return taken

    def _note_rejected(self, src: SourceRuntime) -> None:
        """What the scan found in the inbox and does not take (links, folders, FIFOs, files
        that cannot be claimed): noted in the journal (``status`` lists it) and logged, once
        per entry — across restarts too."""
        assert self.journal is not None
        for name, (code, message, ident) in getattr(src.folder, "rejected", {}).items():
            once = f"inbox:{src.cfg.name}:{name}:{code}:{ident}"
            if once in self._noted or _own_folder(src.cfg, Path(src.cfg.inbox) / name):
                continue
            location = str(Path(src.cfg.inbox) / name)
            if self.journal.note_failure(src.cfg.name, name, code, message, location=location,
                                         once=once):  # fmt: skip
                log.error("inbox_item_rejected", code=code, file=name, source=src.cfg.name,
                          message=message)  # fmt: skip
            self._noted.add(once)

    def poll_retries(self) -> None:
        """Dispatch the invoices whose retry time has come (no folder scan)."""
        self._dispatch_due_retries()
        self._reap()

    def _reap(self) -> None:
        with self._lock:
            for iid in [i for i, f in self._inflight.items() if f.done()]:
                self._inflight.pop(iid, None)

    def _next_retry_in(self) -> float | None:
        assert self.journal is not None
        due = self.journal.next_retry_at()
        return None if due is None else due - time.time()

    def _dispatch_due_retries(self) -> None:
        assert self.journal is not None
        if time.monotonic() - self._last_redeliver > self.redeliver_seconds:
            self._last_redeliver = time.monotonic()
            self._retry_stuck()
        self.cancellations.tick(self)  # its own cadence, on a worker thread
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for e in self.journal.due_retries(limit=room + len(self._inflight)):
            if e.id not in self._inflight:
                self._dispatch(e)

    def _retry_stuck(self) -> None:
        """The periodic second chance (``redeliver_seconds``) for what no event will retry:
        moves to archive/ or failed/ and error files that failed (share offline, permissions,
        disk full), claimed files whose processing failed, stamped invoices not delivered (an
        output folder missing) and sealed/sending ones no worker holds."""
        assert self.journal is not None
        for rec in self.journal.files(FileState.ARCHIVING, FileState.FAILING):
            if rec.source in self.sources:
                self._retry_move(rec)
        for rec in self.journal.files(FileState.CLAIMED):
            src = self.sources.get(rec.source)
            if src is None:
                continue
            with self._files_lock:
                is_open = rec.id in self._open_files
                reread = rec.id in self._reread
            try:
                if (reread or not is_open) and Path(rec.work_path).is_file():
                    log.info("file_read_again", file=rec.name, source=rec.source)
                    self.process_file(src, Path(rec.work_path))
                elif is_open:
                    self._maybe_finish(rec.id)
            except Exception:
                log.exception("file_failed_internal", file=rec.name)
        self._dispatch_unfinished()
        if self._executor is not None and not self.stopping.is_set():
            with self._lock:  # on a worker thread, never the scanner's; one batch at a time
                if self._acuses is None or self._acuses.done():
                    with contextlib.suppress(RuntimeError):  # shutting down
                        self._acuses = self._executor.submit(self._fetch_missing_acuses)

    def _fetch_missing_acuses(self, limit: int = 20) -> None:
        """Acuses that could not be had at delivery (PAC busy, not ready yet): asked for
        again, a few per source and tick, and written beside their XML. A PAC that still
        fails is left alone until the next tick (the invoice goes to the back of its
        source's queue); an acuse fetched but not written is kept and only written next
        time."""
        failed_pacs: set[str] = set()
        try:
            assert self.journal is not None
            for name, src in list(self.sources.items()):  # a reload may change them
                for e in self.journal.acuses_pending([name], limit):
                    if self.stopping.is_set():
                        return
                    if src.cfg.pac in failed_pacs:
                        break
                    self._fetch_acuse(src, e, failed_pacs)
        except Exception:  # e.g. the journal is closing: the next tick tries again
            log.exception("acuse_fetch_failed")

    def _fetch_acuse(self, src: SourceRuntime, e: Entry, failed_pacs: set[str]) -> None:
        assert self.journal is not None and e.uuid is not None
        path = output_paths(src.cfg, e).get("acuse")
        if path is None:  # no longer wanted
            self.journal.mark_delivered(e.id, e.outputs)
            return
        acuse = e.acuse
        try:
            acuse = acuse or src.pac.submitter.acuse_envio(e.uuid)
            written = atomic_write(path, acuse)
        except Exception as exc:  # tried again at the next tick, after the others
            if acuse is None:
                failed_pacs.add(src.cfg.pac)
                msg = _acuse_missing(e, exc)
            else:
                msg = _acuse_unwritten(e, path, exc)
            self.journal.acuse_still_missing(e.id, msg, acuse)
            log.info("acuse_still_missing", invoice=e.label, error=str(exc))
            return
        self.journal.mark_delivered(e.id, {**e.outputs, "acuse": str(written)}, acuse)
        log.info("acuse_fetched", file=e.source_file, invoice=e.label, uuid=e.uuid)

    def _retry_move(self, rec: FileRecord) -> None:
        """Complete a decided move again; on success the file is finished like any other."""
        assert self.journal is not None
        try:
            with self._files_lock:
                rec = self.journal.get_file(rec.id)  # a worker may have finished it meanwhile
                if rec.state not in (FileState.ARCHIVING, FileState.FAILING):
                    return
                self._finish_file(rec, *self._decided_report(rec))
        except Exception as exc:  # still not possible: the next tick tries again
            log.error("move_failed", file=rec.name, place=rec.final_path, error=str(exc))
            with self._files_lock:  # not finished: idle() says so
                self._open_files.setdefault(rec.id, (rec.source, Path(rec.work_path)))

    def _stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Times one stage for the metrics (``Metrics.stage``) when they are served."""
        return self.metrics.stage(name) if self.metrics is not None else contextlib.nullcontext()

    def stop_taking_work(self) -> int:
        """The first step of a clean stop: no more claims or sends; the sends queued but not
        started are cancelled (their invoices stay sealed in the journal: resumable). Returns
        how many sends are still running (``in_flight``)."""
        self.stopping.set()
        with self._lock:
            for fut in self._inflight.values():
                fut.cancel()  # only those not yet running
        return self.in_flight()

    def in_flight(self) -> int:
        """PAC round trips (and their deliveries) queued or running."""
        self._reap()
        return len(self._inflight)

    def idle(self) -> bool:
        """Nothing in flight, nothing waiting for a retry, every claimed file finished."""
        assert self.journal is not None
        self._reap()
        with self._files_lock:
            open_files = bool(self._open_files)
        return not self._inflight and not open_files

    def inbox_waiting(self) -> bool:
        """Some inbox holds a file this pipeline would take once it is stable."""
        for src in self.sources.values():
            candidate = getattr(src.folder, "_candidate", None)
            try:
                names = os.listdir(src.cfg.inbox)
            except OSError:
                continue
            marker = src.cfg.done_marker
            present = set(names)
            rejected = getattr(src.folder, "rejected", {})
            for n in names:
                if n in rejected:
                    continue  # not taken: listed by status, never waited for
                if marker and n + marker not in present:
                    continue  # waits for the ERP's done-marker, not for us
                if candidate is None or candidate(n):
                    return True
        return False

    def run_until_idle(self, timeout: float = 60.0, *, settle: float = 0.0) -> bool:
        """Poll until every file found is finished (tests, ``submit``, ``demo``)."""
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

    # --- resume -----------------------------------------------------------------------------

    def resume(self) -> None:
        """Finish what a previous run left: moves decided but not done, files left in work/."""
        assert self.journal is not None
        for rec in self.journal.files(FileState.ARCHIVING, FileState.FAILING):
            self._retry_move(rec)
        known: set[str] = set()
        for rec in self.journal.files(FileState.CLAIMED):
            known.add(rec.work_path)
            src = self.sources.get(rec.source)
            if src is None:
                continue
            if Path(rec.work_path).exists():
                self.tick()
                log.info("resume_file", file=rec.name, source=rec.source)
                try:
                    self.process_file(src, Path(rec.work_path))
                except Exception:
                    log.exception("file_failed_internal", file=rec.name)
        for src in self.sources.values():
            assert src.cfg.work is not None
            marker = src.cfg.done_marker
            for p in sorted(src.cfg.work.iterdir()):
                if marker and p.name.endswith(marker):
                    continue
                if _lines_of_a_claimed_pair(src, p):
                    continue  # read (and moved) with its header file
                if p.is_file() and not p.name.startswith(".") and str(p) not in known:
                    self.tick()
                    log.info("adopt_file", file=p.name, source=src.cfg.name)
                    self.process_file(src, p)
        waited = self.journal.retry_now(ACCOUNT_WAIT_CODES)
        if waited:
            log.info("resume_account_waits", invoices=waited)
        self._dispatch_unfinished()

    def _dispatch_unfinished(self) -> None:
        """Every invoice the journal holds sealed, in ``sending`` or stamped goes to the PAC
        (or to delivery) whatever became of its file: an invoice whose send may have reached
        the PAC is recovered by its ``referencia`` and delivered, never left behind."""
        assert self.journal is not None
        for e in self.journal.in_state(State.SEALED, State.SENDING):
            if e.id not in self._inflight and e.source in self.sources:
                log.info("resume_invoice", invoice=e.label, state=str(e.state))
                self._dispatch(e)
        for e in self.journal.in_state(State.STAMPED):
            if e.id not in self._inflight and e.source in self.sources:
                self._dispatch(e, deliver_only=True)

    # --- one file ---------------------------------------------------------------------------

    def process_file(
        self, src: SourceRuntime, work: Path, *, just_claimed: bool = False
    ) -> FileRecord:
        """Parse the file, run each invoice to the PAC hand-off; finish it when all are final.
        ``just_claimed``: the scan that claimed it a moment ago found no process writing it.

        Read again after a restart, the invoices this file already committed (sealed or later)
        stay linked to it and continue from their journal rows — resent as sealed, recovered,
        or delivered — whatever the file parses to now (a mapping edited meanwhile, a read or
        adapter error): a committed invoice is never re-sealed and never left behind.
        """
        assert self.journal is not None
        name = self._original_name(work)
        rec = self.journal.file_claimed(src.cfg.name, name, str(work))
        with self._files_lock:
            self._open_files[rec.id] = (src.cfg.name, work)
            self._reread.discard(rec.id)
        try:
            return self._process_file(src, work, rec, name, just_claimed)
        except Exception:  # e.g. the journal busy: the periodic tick reads the file again
            if self.journal.get_file(rec.id).state is FileState.CLAIMED:
                with self._files_lock:
                    self._reread.add(rec.id)
            raise

    def _process_file(
        self, src: SourceRuntime, work: Path, rec: FileRecord, name: str, just_claimed: bool
    ) -> FileRecord:
        assert self.journal is not None
        flog = log.bind(file=name, source=src.cfg.name)
        # on resume: what this very file already committed, by its index in the file
        previous: dict[int, tuple[Entry, str]] = {}
        for it in self.journal.file_items(rec.id):
            if it.invoice_id is not None:
                pe = self.journal.get_id(it.invoice_id)
                if pe.state in COMMITTED_STATES:
                    previous[it.idx] = (pe, it.location)
        spare = max(previous, default=-1) + 1  # the index of a whole-file error
        items: list[FileItem] = []
        dispatch: list[Entry] = []
        deliver: list[Entry] = []
        invoices: list[Any] = []
        seen: dict[tuple[str, str, str], str] = {}  # business key → where it first appeared
        # read again in this process because its bytes changed (the ERP still writing it):
        # its committed invoices are found by business key and their content compared
        # (journal.admit), not taken by their place in the file
        earlier_read = self._parsed.get(rec.id)
        by_key = False
        try:
            read = _read_whole(src, work, writers=not just_claimed)
        except _StillWriting as busy:
            flog.info("file_still_being_written", reason=busy.reason)
            self._settle(rec)
            return rec
        except OSError as exc:
            flog.error("read_failed", error=str(exc))
            items.append(
                FileItem(
                    rec.id,
                    spare,
                    name,
                    None,
                    [{"code": "CONN-LECTURA", "path": "", "location": name,
                      "message": f"No se pudo leer el archivo: {exc}"}],
                )
            )  # fmt: skip
        else:
            data, other, self._parsed[rec.id] = read
            by_key = earlier_read is not None and [f[3] for f in earlier_read] != [
                f[3] for f in read[2]
            ]
            try:
                with self._stage("parse_map"):
                    invoices = list(self._load(src, data, name, work, other))
            except Exception as exc:  # never crash the daemon on one file
                flog.exception("load_failed")
                items.append(
                    FileItem(
                        rec.id,
                        spare,
                        name,
                        None,
                        [{"code": "CONN-ADAPTADOR", "path": "", "location": name,
                          "message": f"Error interno al leer el archivo: {type(exc).__name__}: {exc}"}],
                    )
                )  # fmt: skip
        # invoices are journaled in chunks (one commit each); a chunk's sends leave only
        # after its commit
        for start in range(0, len(invoices), _CHUNK):
            with self.journal.batch():
                first = len(items)
                for idx in range(start, min(start + _CHUNK, len(invoices))):
                    inp = invoices[idx]
                    committed = None if by_key else previous.pop(idx, None)
                    try:
                        if committed is not None:
                            where = inp.location or committed[1]
                            seen.setdefault(committed[0].key, where)
                            item, entry, action = self._resume_committed(
                                rec, idx, where, committed[0], inp
                            )
                        else:
                            with self._stage("validate_seal"):
                                item, entry, action = self._admit_invoice(
                                    src, rec, idx, inp, name, seen
                                )
                    except Exception as exc:
                        flog.exception("invoice_failed_internal", index=idx)
                        item = FileItem(
                            rec.id,
                            idx,
                            inp.location,
                            None,
                            [{"code": "CONN-INTERNO", "path": "", "location": inp.location,
                              "message": f"Error interno al procesar la factura: {exc}"}],
                        )  # fmt: skip
                        entry, action = None, None
                    items.append(item)
                    _route(entry, action, dispatch, deliver)
                # linked to the file in the commit of their seals: after a crash before the
                # file's final items, a restart still finds them (and never admits them anew)
                self.journal.link_file_items(rec.id, items[first:])
            if start + _CHUNK < len(invoices):
                self._dispatch_all(dispatch, deliver)
        # committed invoices the file no longer yields (where they were, or at all when read
        # by key; one whose content changed was refused above): still this file's
        yielded = {it.invoice_id for it in items}
        extra = max((it.idx + 1 for it in items), default=0)  # a free index
        for idx, (pe, location) in sorted(previous.items()):
            if pe.id in yielded:
                continue
            if by_key:
                idx, extra = extra, extra + 1
            item, entry, action = self._resume_committed(rec, idx, location, pe, None)
            items.append(item)
            _route(entry, action, dispatch, deliver)
        items.sort(key=lambda it: it.idx)
        self.journal.set_file_items(rec.id, items)
        with self._files_lock:
            for it in items:
                if it.invoice_id is not None:
                    self._files_of.setdefault(it.invoice_id, set()).add(rec.id)
        flog.info("file_taken", invoices=len(invoices))
        self._dispatch_all(dispatch, deliver)
        self._maybe_finish(rec.id)
        return rec

    def _dispatch_all(self, dispatch: list[Entry], deliver: list[Entry]) -> None:
        for e in dispatch:
            self._dispatch(e)
        for e in deliver:
            self._dispatch(e, deliver_only=True)
        dispatch.clear()
        deliver.clear()

    def _load(
        self,
        src: SourceRuntime,
        data: bytes,
        name: str,
        work: Path | None = None,
        other: tuple[Path, bytes] | None = None,
    ) -> Any:
        """The invoices of a file; with pairs, ``other``: its partner in work/ and its bytes
        (None: the half came alone)."""
        from connector.adapters.base import FilePart, load_invoices, load_pair

        pair = getattr(src.folder, "pair", None)
        if pair is None or work is None:
            return load_invoices(
                data, name, adapter=src.cfg.adapter, options=src.cfg.options, mapping=src.mapping
            )
        # a header file with its lines file (claimed together), or a half that came alone
        other_part = FilePart(
            self._original_name(other[0]) if other is not None else (pair.partner(name) or ""),
            other[1] if other is not None else None,
        )
        this = FilePart(name, data)
        header, lines = (this, other_part) if pair.role(name) != "lines" else (other_part, this)
        return load_pair(
            header, lines, adapter=src.cfg.adapter, options=src.cfg.options, mapping=src.mapping
        )

    def _admit_invoice(
        self,
        src: SourceRuntime,
        rec: FileRecord,
        idx: int,
        inp: Any,
        name: str,
        seen: dict[tuple[str, str, str], str] | None = None,
    ) -> tuple[FileItem, Entry | None, str | None]:
        """Journal one invoice of a file; returns its file item and what to do next.

        ``seen``: the business keys earlier records of the same file carried (and where); a
        key seen again is CONN-FOLIO-DUPLICADO and never reaches the journal (it would
        restart or resume the earlier record's row and hide its outcome)."""
        assert self.journal is not None
        location = inp.location or f"{name}#{idx + 1}"
        problems: list[Problem] = list(inp.problems)

        def refused(label: str = "", *more: Problem) -> tuple[FileItem, None, None]:
            """The record stays out of the journal; its problems go to the file's report."""
            found = _dicts(_located(inp, [*problems, *more]), location, label)
            return FileItem(rec.id, idx, location, None, found), None, None

        c = given = inp.comprobante
        xml: bytes | None = inp.xml
        if c is None and xml is not None and not _has_errors(problems):
            try:
                from connector.cfdi.xmlio import from_xml

                c = from_xml(xml)
            except CfdiError as exc:
                problems.extend(exc.problems)
        if c is None:  # not mapped: its errors still say which invoice (serie+folio as read)
            return refused(getattr(inp, "label", ""))
        if xml is None:
            try:
                from connector.cfdi.amounts import complete

                c = complete(c)
            except Exception as exc:
                problems.append(
                    Problem("CONN-IMPORTES", "", f"No se pudieron calcular los importes: {exc}")
                )
        key = c.business_key
        label = f"{key[1]}{key[2]}"
        ilog = log.bind(file=name, invoice=f"{key[1]}{key[2]}", rfc=key[0])
        if key[0] != src.emisor.rfc:
            problems.append(
                Problem(
                    "CONN-EMISOR",
                    "Emisor.Rfc",
                    f"El RFC del emisor {key[0]} no es el de la fuente {src.cfg.name!r} "
                    f"({src.emisor.rfc}).",
                )
            )
        if src.emisor.series and key[1] not in src.emisor.series:
            problems.append(
                Problem(
                    "CONN-SERIE",
                    "Serie",
                    f"La serie {key[1]!r} no está entre las series del emisor {src.emisor.rfc} "
                    f"en la configuración ({', '.join(src.emisor.series)}).",
                )
            )
        if not key[2]:
            problems.append(
                Problem(
                    "CONN-FOLIO",
                    "Folio",
                    "La factura no tiene folio: el conector necesita serie y folio para "
                    "identificarla y no timbrarla dos veces.",
                )
            )
        if _has_errors(problems) and (key[0] != src.emisor.rfc or not key[2]):
            return refused(label)
        if seen is not None:
            earlier = seen.get(_norm_key(key))
            if earlier is not None:
                ilog.warning("folio_repeated_in_file", earlier=earlier, location=location)
                msg = (
                    f"La serie {key[1]!r} y folio {key[2]!r} ya aparecen antes en este mismo "
                    f"archivo ({earlier}); cada factura necesita su propio folio. Este registro "
                    "no se timbra: corrija el folio en el ERP y exporte de nuevo esta factura."
                )
                return refused(
                    label, Problem("CONN-FOLIO-DUPLICADO", "Folio", msg, location=location)
                )
            seen[_norm_key(key)] = location
        h = content_hash(c, xml)
        adm, e = self.journal.admit(
            key, h, mode=src.cfg.mode, source=src.cfg.name, source_file=name, location=location
        )
        if adm is Admission.CONFLICT:
            uuid_txt = f"con el UUID {e.uuid}" if e.uuid else "y está en proceso de timbrado"
            msg = (
                f"La serie {key[1]!r} y folio {key[2]!r} ya se usaron para otra factura "
                f"{uuid_txt} (archivo {e.source_file}); esta exportación tiene otro contenido "
                "y no se timbra dos veces. Use un folio nuevo."
            )
            ilog.warning("folio_used", uuid=e.uuid)
            return refused(label, Problem("CONN-FOLIO-USADO", "Folio", msg, location=location))
        if adm is Admission.DELIVERED:
            ilog.info("duplicate_delivered_again", uuid=e.uuid)
            return FileItem(rec.id, idx, location, e.id, []), e, "deliver"
        if adm is Admission.FAILED:
            return FileItem(rec.id, idx, location, e.id, []), None, None
        if adm is Admission.RESUME:
            action = None
            if e.state in (State.SEALED, State.SENDING) and e.id not in self._inflight:
                action = "send"
            return FileItem(rec.id, idx, location, e.id, []), e, action
        # NEW / RESTART: validate, seal, hand to the PAC
        if not _has_errors(problems):
            from connector.cfdi.rules import validate, without_follow_ons
            from connector.cfdi.xmlio import validate_limits, validate_xsd

            if xml is not None and c.Sello:  # a sealed XML drop: SAT's schema first
                problems.extend(validate_xsd(xml))
            if not _has_errors(problems):
                ruled = validate(c, now=self.now())
                found = list(ruled)
                if not (xml is not None and c.Sello):
                    # SAT's schema limits before sealing, never a request the PAC refuses
                    # (301); a field a SAT rule already reported is not reported twice
                    said = {p.path for p in ruled}
                    limits = validate_limits(xml if xml is not None else c)
                    found.extend(p for p in limits if p.path not in said)
                # the root cause only: not the amounts derived from an amount in error
                problems.extend(found if given is None else without_follow_ons(found, given))
        if _has_errors(problems):
            first = next(p for p in problems if p.severity == "error")
            self.journal.mark_failed(
                e.id,
                first.code,
                short_message(first.message),
                origin="rules",
                problems=_dicts(_located(inp, problems), location, label),
            )
            ilog.info("invalid", codes=sorted({p.code for p in problems}))
            return FileItem(rec.id, idx, location, e.id, []), None, None
        try:
            payload = self._payload(src, c, xml)
        except CfdiError as exc:
            self.journal.mark_failed(
                e.id,
                exc.code,
                short_message(str(exc.problems[0].message if exc.problems else exc)),
                origin="csd",
                problems=_dicts(_located(inp, exc.problems), location, label),
            )
            ilog.info("seal_failed", code=exc.code)
            return FileItem(rec.id, idx, location, e.id, []), None, None
        # validated, sealed and the first attempt in one write; the send leaves after the
        # commit
        e = self.journal.mark_sealed_sending(e.id, payload, new_referencia(key[1], key[2]))
        with self._lock:
            self._fresh.add(e.id)
        ilog.debug("sealed", referencia=e.referencia)
        return FileItem(rec.id, idx, location, e.id, []), e, "send"

    def _resume_committed(
        self, rec: FileRecord, idx: int, location: str, e: Entry, inp: Any | None
    ) -> tuple[FileItem, Entry | None, str | None]:
        """The same claimed file read again after a restart: an invoice it already committed
        (sealed or later) continues from its journal row, whatever the record parses to now
        (``inp``; None when the file no longer yields it): its sealed bytes are resent as they
        are, never re-sealed; a stamped one is delivered."""
        now = getattr(inp, "comprobante", None) if inp is not None else None
        key_now = getattr(now, "business_key", None)
        if inp is None or (key_now is not None and _norm_key(key_now) != e.key):
            log.warning(
                "content_changed_on_resume",
                file=rec.name,
                invoice=e.label,
                index=idx,
                now=None if key_now is None else f"{key_now[1]}{key_now[2]}",
            )
        item = FileItem(rec.id, idx, location, e.id, [])
        if e.state in (State.STAMPED, State.DELIVERED):
            return item, e, "deliver"
        if e.state in (State.SEALED, State.SENDING) and e.id not in self._inflight:
            return item, e, "send"
        return item, None, None  # retry_wait: its retry time dispatches it

    def _payload(self, src: SourceRuntime, c: Any, xml: bytes | None) -> bytes:
        """The exact bytes the PAC will receive: sealed XML, or the invoice data (remote)."""
        if src.cfg.mode == "remote" and xml is None:
            return c.model_dump_json(by_alias=True).encode()
        from connector.cfdi import seal

        if src.csd is not None and hasattr(src.csd, "check_can_seal"):
            src.csd.check_can_seal(src.emisor.rfc, c.Fecha)
        if xml is not None:
            if c.Sello:
                problems = seal.verify_seal(xml)
                if problems:
                    raise CfdiError(problems)
                return xml
            return seal.seal_xml(xml, src.csd)
        return seal.seal_invoice(c, src.csd)

    # --- PAC round trips (worker threads) ---------------------------------------------------

    def _dispatch(self, e: Entry, *, deliver_only: bool = False) -> None:
        if self._executor is None or self.stopping.is_set():
            return
        with self._lock:
            if e.id in self._inflight:
                return
            try:
                fut = self._executor.submit(self._work, e.id, deliver_only)
            except RuntimeError:  # shutting down
                return
            self._inflight[e.id] = fut

    def _work(self, invoice_id: int, deliver_only: bool) -> None:
        assert self.journal is not None
        try:
            e = self.journal.get_id(invoice_id)
            src = self.sources.get(e.source)
            if src is None:
                return
            if not deliver_only and e.state in (State.SEALED, State.SENDING, State.RETRY_WAIT):
                e = self._send(src, e)
            if e.state in (State.STAMPED, State.DELIVERED):
                with self._stage("write_back"):
                    e = self._deliver(src, e)
        except Exception:
            log.exception("worker_error", invoice_id=invoice_id)
        finally:
            with self._lock:
                self._inflight.pop(invoice_id, None)
                self._room.notify()
            try:
                self._after_invoice(invoice_id)
            except Exception:  # e.g. the archive is not writable: the file stays in work/
                log.exception("finish_failed", invoice_id=invoice_id)

    def _send(self, src: SourceRuntime, e: Entry) -> Entry:
        from connector.pac.errors import PacAccount, PacCircuitOpen, PacInvalid

        assert self.journal is not None and e.payload is not None and e.referencia
        with self._lock:
            fresh = e.id in self._fresh
            self._fresh.discard(e.id)
        if fresh and e.state is State.SENDING and e.attempts == 1:
            maybe_sent = False  # attempt 1 recorded with the seal, nothing sent yet
        else:
            maybe_sent = e.attempts > 0  # a previous attempt may have reached the PAC
            e = self.journal.mark_sending(e.id)
        ilog = log.bind(file=e.source_file, invoice=e.label, referencia=e.referencia)
        pac = src.pac
        paused = pac.breaker is not None and pac.breaker.account_error is not None
        try:
            with self._stage("pac_call"):
                result = self._call(pac, e, maybe_sent)
        except PacAccount as exc:
            return self._account_wait(pac, e, exc, refused=True)
        except PacCircuitOpen as exc:
            if exc.code == "CONN-PAC-CUENTA":  # paused earlier for the account
                return self._account_wait(pac, e, exc, refused=False)
            return self._transient_wait(pac, e, exc, ilog)  # an ordinary open circuit
        except PacInvalid as exc:
            ilog.info("pac_rejected", code=exc.code)
            # the document itself refused, and no earlier try could have been stamped under
            # these bytes: a replay may seal it anew (e.g. with a replaced CSD)
            clean = not (maybe_sent or exc.maybe_sent) and exc.code not in ACCOUNT_CODES
            return self.journal.mark_failed(
                e.id,
                exc.code,
                exc.message,
                origin=PAC_DOCUMENT if clean else "pac",
                problems=[
                    {"code": exc.code, "path": "", "message": exc.message, "location": e.location}
                ],
            )
        except Exception as exc:
            return self._transient_wait(pac, e, exc, ilog)
        if paused and pac.breaker.account_error is None:
            self._account_accepted(pac)
        reply_problems = self._check_reply(pac, e, result)
        if reply_problems:
            return self._reply_failed(src, e, result, reply_problems)
        # journal first: the stamp is recorded before any other round trip (the acuse is
        # fetched at delivery)
        e = self.journal.mark_stamped(e.id, result.uuid, result.xml)
        ilog.info("stamped", uuid=result.uuid, previously=result.previously_stamped)
        return e

    def _transient_wait(self, pac: PacRuntime, e: Entry, exc: Exception, ilog: Any) -> Entry:
        """No answer (or not asked: open circuit): the invoice waits and is sent again."""
        from connector.pac.errors import PacAmbiguous

        assert self.journal is not None
        code = getattr(exc, "code", "CONN-PAC")
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        delay = self._retry_delay(pac.cfg, e.attempts)
        ilog.warning(
            "pac_retry_wait",
            code=code,
            ambiguous=isinstance(exc, PacAmbiguous),
            retry_in=round(delay, 2),
        )
        return self.journal.mark_retry_wait(e.id, time.time() + delay, str(code), message)

    def _account_wait(self, pac: PacRuntime, e: Entry, exc: Exception, *, refused: bool) -> Entry:
        """The PAC refused the account (wrong or expired password, suspended, no credits;
        ``refused``) or is paused because it did: nothing was stamped and the invoice is not
        at fault. It waits (``retry_wait``, never failed) while the breaker keeps the PAC
        paused and probes it; a restart with a fixed configuration or the PAC accepting the
        account again sends it. The refusal itself is logged at error level."""
        assert self.journal is not None
        code = str(getattr(exc, "code", "CONN-PAC-CUENTA"))
        detail = getattr(exc, "message", str(exc))
        message = (
            f"{detail} La factura espera (no se da por fallida) y se envía sola cuando el PAC "
            f"'{pac.cfg.name}' acepte la cuenta: corrija el usuario o la contraseña en la "
            "configuración y reinicie el servicio, o revise la cuenta y sus créditos en el "
            "portal del PAC."
        )
        delay = self._retry_delay(pac.cfg, e.attempts)
        if refused:
            snap = pac.state().get("paused") or {}
            log.error(
                "pac_account_refused",
                pac=pac.cfg.name,
                code=code,
                message=detail,
                file=e.source_file,
                invoice=e.label,
                probe_in=snap.get("probe_in_seconds"),
            )
        else:
            log.info("pac_paused_wait", pac=pac.cfg.name, invoice=e.label, retry_in=delay)
        return self.journal.mark_retry_wait(e.id, time.time() + delay, code, message)

    def _account_accepted(self, pac: PacRuntime) -> None:
        """The paused PAC accepted the account again: what waited for it goes now."""
        assert self.journal is not None
        n = self.journal.retry_now(ACCOUNT_WAIT_CODES)
        log.info("pac_account_accepted", pac=pac.cfg.name, released=n)
        self.wake.set()

    def _check_reply(self, pac: PacRuntime, e: Entry, result: Any) -> list[Problem]:
        """What the PAC returned, before anything is delivered: a CFDI 4.0 whose seal verifies,
        whose TFD matches it and the UUID reported; in stamp mode the cadena we sealed; with
        ``sat_cert`` the SelloSAT."""
        from connector.cfdi.seal import verify_stamped

        try:
            return verify_stamped(
                result.xml,
                uuid=result.uuid,
                sealed=None if e.mode == "remote" else e.payload,
                pac_cert_der=pac.sat_cert_der,
            )
        except Exception as exc:  # never lose the stamp to a bug in a check
            return [_as_problem(exc, "", "CONN-PAC-XML")]

    def _reply_failed(
        self, src: SourceRuntime, e: Entry, result: Any, problems: list[Problem]
    ) -> Entry:
        """The PAC stamped (the UUID exists at SAT) but its document failed our checks: failed
        with CONN-PAC-XML, never re-sent; the journal keeps the UUID and the XML, a copy goes to
        the errors folder for support."""
        assert self.journal is not None
        folder = src.cfg.output.errors or src.cfg.failed
        name = f"{safe_part(e.serie)}{safe_part(e.folio)}_{safe_part(result.uuid)}_pac.xml"
        detail = "; ".join(f"{p.code} {p.message}" for p in problems)
        message = (
            f"El PAC timbró {e.label} con el UUID {result.uuid}, pero el XML que devolvió no "
            f"pasó la verificación ({detail}). El CFDI existe en el SAT: no se reenvía. Revise "
            f"con su PAC el XML guardado en {folder / name}."
        )
        e = self.journal.mark_failed(
            e.id,
            "CONN-PAC-XML",
            message,
            origin="pac",
            problems=[
                {"code": "CONN-PAC-XML", "path": "", "message": message, "location": e.location}
            ],
            uuid=result.uuid,
            stamped_xml=result.xml,
        )
        log.error(
            "pac_reply_invalid",
            file=e.source_file,
            invoice=e.label,
            uuid=result.uuid,
            codes=[p.code for p in problems],
        )
        try:
            atomic_write(folder / name, result.xml)
        except OSError as exc:  # the journal keeps the XML
            log.error("pac_reply_not_written", invoice=e.label, error=str(exc))
        return e

    def _call(self, pac: PacRuntime, e: Entry, maybe_sent: bool) -> Any:
        """One submission through the resilience layer (retries, breaker, recover first)."""
        assert e.payload is not None and e.referencia
        if e.mode == "remote":
            from connector.cfdi.model import Comprobante

            c = Comprobante.model_validate_json(e.payload)
            return pac.submitter.submit_generate(c, e.referencia, maybe_sent=maybe_sent)
        return pac.submitter.submit(e.payload, e.referencia, maybe_sent=maybe_sent)

    def _retry_delay(self, pac: PacConfig, attempts: int) -> float:
        base = pac.retry.wait_seconds * (2 ** max(0, attempts - 1))
        return min(pac.retry.wait_max_seconds, base) * (0.5 + random.random() / 2)

    def _deliver(self, src: SourceRuntime, e: Entry) -> Entry:
        assert self.journal is not None and e.stamped_xml is not None and e.uuid
        fetched = None
        missing: tuple[str, str] | None = None
        if e.state is State.STAMPED and e.acuse is None and src.cfg.output.acuse is not None:
            try:
                fetched = src.pac.submitter.acuse_envio(e.uuid)
                e = replace(e, acuse=fetched)
            except Exception as exc:  # the XML goes out now; the acuse is asked for later
                missing = (ACUSE_MISSING, _acuse_missing(e, exc))
                log.warning("acuse_unavailable", file=e.source_file, invoice=e.label,
                            uuid=e.uuid, error=str(exc))  # fmt: skip
        try:
            outputs = deliver_outputs(
                src.cfg,
                src.emisor,
                e,
                cancelled=self.journal.cancellation(e.uuid) is not None,
                renderer=self.pdf,
            )
        except OSError as exc:
            # stays STAMPED (redelivered by the periodic tick); the reason shows in `status`
            where = Path(exc.filename).parent if exc.filename else src.cfg.output.xml
            self.journal.note_delivery_error(
                e.id,
                "CONN-ENTREGA",
                f"{e.label} está timbrada (UUID {e.uuid}) pero no se pudieron escribir sus "
                f"archivos en {where}: {exc.strerror or exc}. Se reintenta sola.",
                fetched,  # kept: not asked for again on every retry
            )
            raise
        if e.state is State.STAMPED:
            e = self.journal.mark_delivered(e.id, outputs, fetched, acuse_missing=missing)
        log.info(
            "delivered", file=e.source_file, invoice=e.label, uuid=e.uuid, xml=outputs.get("xml")
        )
        return e

    # --- files that change after they were claimed ------------------------------------------

    def _settle(self, rec: FileRecord) -> None:
        """A claimed file still being written (or changed after it was read) is watched, and
        read again once it stayed unchanged for ``stable_seconds`` (at least a second) with
        no process holding it open for writing; it is not finished meanwhile."""
        with self._files_lock:
            self._open_files.setdefault(rec.id, (rec.source, Path(rec.work_path)))
            self._settling[rec.id] = _Settling(rec.source, Path(rec.work_path))
            self._settling_since.setdefault(rec.id, time.monotonic())
        self.wake.set()

    def _read_settled(self) -> None:
        """Read again the files ``_settle`` watches that have settled."""
        now = time.monotonic()
        with self._files_lock:
            watched = list(self._settling.items())
        for file_id, w in watched:
            src = self.sources.get(w.source)
            if src is None:
                continue
            self._note_busy(file_id, w, now)
            try:
                st = os.stat(w.work)
                seen: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
            except OSError:
                seen = None  # gone: read now, its read error is reported
            if seen is not None and seen != w.seen:
                w.seen, w.since = seen, now
                continue
            if seen is not None and now - w.since < max(src.cfg.stable_seconds, 1.0):
                continue
            with self._files_lock:
                self._settling.pop(file_id, None)
            try:
                self.process_file(src, w.work)
            except Exception:
                log.exception("file_failed_internal", file=w.work.name)

    def _note_busy(self, file_id: int, w: _Settling, now: float) -> None:
        """A claimed file still written (or held open) ``busy_note_seconds`` after it was
        first watched is listed by ``status`` (CONN-ARCHIVO-ABIERTO), once."""
        assert self.journal is not None
        since = self._settling_since.get(file_id, now)
        once = f"busy:{file_id}"
        if now - since < self.busy_note_seconds or once in self._noted:
            return
        self._noted.add(once)
        name = self._original_name(w.work)
        minutes = max(1, round((now - since) / 60))
        message = (
            f"{name} ya tomado por el conector sigue cambiando o abierto para escritura por otro "
            f"proceso desde hace {minutes} min; no se termina (ni se archiva) hasta que quede "
            "estable y cerrado. Si el ERP ya terminó de escribirlo, revise qué programa lo "
            "mantiene abierto; si lo escribe por partes con pausas largas, configure "
            "done_marker en la fuente."
        )
        if self.journal.note_failure(w.source, name, "CONN-ARCHIVO-ABIERTO", message,
                                     location=str(w.work), once=once):  # fmt: skip
            log.error("file_busy_too_long", code="CONN-ARCHIVO-ABIERTO", file=name,
                      source=w.source, minutes=minutes)  # fmt: skip

    def _changed(self, rec: FileRecord, reason: str) -> bool:
        """A file found changed after it was read: True when it is to be read again (its
        invoices already stamped are recognised, the new ones stamped); False after
        ``max_changes`` times, when it fails with CONN-ARCHIVO-CAMBIO."""
        n = self._changes[rec.id] = self._changes.get(rec.id, 0) + 1
        if n > self.max_changes:
            log.error("file_keeps_changing", code="CONN-ARCHIVO-CAMBIO", file=rec.name,
                      source=rec.source, times=n - 1, reason=reason)  # fmt: skip
            return False
        log.warning("file_changed_after_read", file=rec.name, source=rec.source, times=n,
                    reason=reason)  # fmt: skip
        self._settle(rec)
        return True

    # --- finishing files --------------------------------------------------------------------

    def _after_invoice(self, invoice_id: int) -> None:
        """An invoice reached a final state: finish the open files that carry it."""
        with self._files_lock:
            files = list(self._files_of.get(invoice_id, ()))
        for file_id in files:
            self._maybe_finish(file_id)

    def _maybe_finish(self, file_id: int) -> FileOutcome | None:
        assert self.journal is not None
        with self._files_lock:
            rec = self.journal.get_file(file_id)
            if rec.state is not FileState.CLAIMED or file_id in self._settling:
                return None
            if self.journal.file_pending(file_id):
                return None
            errors, delivered, final = self._report_of(file_id)
            if not final:
                return None
            # never archived (nor failed) as done if it is not what was read: read it again
            fp = self._parsed.get(file_id)
            changed = _changed_since(fp) if fp is not None else None
            if changed is not None:
                if self._changed(rec, changed):
                    return None
                gave_up = _keeps_changing(rec.name, changed, self.max_changes)
                errors.append(gave_up)
                self.journal.note_failure(rec.source, rec.name, gave_up.code, gave_up.message,
                                          location=rec.name, once=f"changed:{rec.id}")  # fmt: skip
                fp = None  # moved as it is: the error file says why
            src = self.sources[rec.source]
            report = {
                "errors": [x.to_dict() for x in errors],
                "delivered": delivered,
                "fingerprint": fp,
            }
            if errors:
                dest = free_name(src.cfg.failed, rec.name)
                state = FileState.FAILING
            else:
                dest = free_name(archive_folder(src.cfg.archive, self.now().date()), rec.name)
                state = FileState.ARCHIVING
            self.journal.file_deciding(file_id, state, str(dest), len(errors), report)
            return self._finish_file(
                self.journal.get_file(file_id), errors, delivered, writers_checked=True
            )

    def _finish_file(
        self,
        rec: FileRecord,
        errors: list[ItemError],
        delivered: list[dict[str, str]],
        *,
        writers_checked: bool = False,
    ) -> FileOutcome | None:
        """Move a decided file (ARCHIVING/FAILING) to its place and record its outcome; None
        when it changed since it was read (it is read again). ``writers_checked``: the
        decision just looked for open writers (one /proc pass per file, not two)."""
        assert self.journal is not None
        try:
            self._complete_move(
                rec, errors=errors, delivered=delivered, writers=not writers_checked
            )
        except _Changed as exc:  # changed since it was decided: undecided, and read again
            self.journal.file_reopened(rec.id)
            with self._files_lock:
                self._open_files.setdefault(rec.id, (rec.source, Path(rec.work_path)))
                self._parsed[rec.id] = exc.fingerprint
            return self._maybe_finish(rec.id)
        outcome = FileOutcome(
            rec.id,
            rec.name,
            self.journal.get_file(rec.id).state,
            str(rec.final_path),
            delivered,
            errors,
        )
        self.finished.append(outcome)
        self._forget_file(rec.id, self.journal.file_items(rec.id))
        log.info(
            "file_finished",
            file=rec.name,
            place=rec.final_path,
            delivered=len(delivered),
            errors=len(errors),
        )
        return outcome

    def _forget_file(self, file_id: int, items: list[FileItem]) -> None:
        """A finished file is no longer open nor waiting for its invoices."""
        with self._files_lock:
            self._open_files.pop(file_id, None)
            self._reread.discard(file_id)
            self._settling.pop(file_id, None)
            self._settling_since.pop(file_id, None)
            self._parsed.pop(file_id, None)
            self._changes.pop(file_id, None)
            for it in items:
                if it.invoice_id is not None:
                    owners = self._files_of.get(it.invoice_id)
                    if owners is not None:
                        owners.discard(file_id)
                        if not owners:
                            del self._files_of[it.invoice_id]

    def _complete_move(
        self,
        rec: FileRecord,
        *,
        errors: list[ItemError] | None = None,
        delivered: list[dict[str, str]] | None = None,
        writers: bool = True,
    ) -> None:
        """Write error files (failed) and move the original to the recorded final place; the
        bytes are compared with what was read right before the move (``writers``: and open
        writers looked for, see ``_changed_since``)."""
        assert self.journal is not None and rec.final_path
        dest = Path(rec.final_path)
        work = Path(rec.work_path)
        src = self.sources.get(rec.source)
        report = self.journal.file_report(rec.id) or {}
        if report.get("fingerprint") and work.exists():  # what was read, right before the move
            fp: Fingerprint = tuple(tuple(f) for f in report["fingerprint"])  # type: ignore[misc]
            changed = _changed_since(fp, writers=writers)
            if changed is not None:
                raise _Changed(changed, fp)
        if rec.state is FileState.FAILING:
            if errors is None:  # resumed after a crash
                errors, delivered = self._decided_report(rec)
            labels = [d["invoice"] for d in delivered or []]
            when = datetime.now()
            write_error_files(dest.parent, dest.name, errors, labels, when)
            if src is not None and src.cfg.output.errors and src.cfg.output.errors != dest.parent:
                write_error_files(src.cfg.output.errors, dest.name, errors, labels, when)
        if work.exists():
            if dest.exists() and os.path.samefile(work, dest):
                os.unlink(work)  # a crash between link and unlink: the move is complete
            else:
                if dest.exists():  # taken by someone else meanwhile: never overwrite
                    dest = free_name(dest.parent, dest.name)
                move_file(work, dest)
        marker = src.cfg.done_marker if src is not None else None
        if marker and work.with_name(work.name + marker).exists():
            mdest = dest.with_name(fit_name(dest.name + marker))  # a name renamed longer
            if not mdest.exists():
                move_file(work.with_name(work.name + marker), mdest)
        other = getattr(src.folder, "partner_in_work", _none)(work) if src is not None else None
        if other is not None:  # the other file of a pair goes to the same place
            from connector.adapters.folder import beside

            odest = beside(dest, rec.name, self._original_name(other))
            if odest.exists() and os.path.samefile(other, odest):
                os.unlink(other)
            else:
                move_file(
                    other, odest if not odest.exists() else free_name(odest.parent, odest.name)
                )
            if marker and other.with_name(other.name + marker).exists():
                mdest = odest.with_name(fit_name(odest.name + marker))
                if not mdest.exists():
                    move_file(other.with_name(other.name + marker), mdest)
        self.journal.file_done(rec.id)

    def _decided_report(self, rec: FileRecord) -> tuple[list[ItemError], list[dict[str, str]]]:
        """The report a decided file was decided on (its invoices may have changed since:
        one re-exported and stamped must not show as delivered in the old file's error
        file); rebuilt from the journal for a file decided by an older version."""
        assert self.journal is not None
        stored = self.journal.file_report(rec.id)
        if stored is None:
            errors, delivered, _ = self._report_of(rec.id)
            return errors, delivered
        known = {f.name for f in fields(ItemError)}
        errors = [ItemError(**{k: str(x.get(k) or "") for k in known}) for x in stored["errors"]]
        return errors, stored["delivered"]

    def _report_of(self, file_id: int) -> tuple[list[ItemError], list[dict[str, str]], bool]:
        """A file's errors and delivered invoices (with their outputs), and whether every one
        of its invoices has reached a final state."""
        assert self.journal is not None
        errors: list[ItemError] = []
        delivered: list[dict[str, str]] = []
        final = True
        for it in self.journal.file_items(file_id):
            if it.invoice_id is None:
                errors.extend(_item_errors(it.problems, it.location, ""))
                continue
            e = self.journal.get_id(it.invoice_id)
            if e.state not in FINAL_STATES:
                final = False
            elif e.state is State.DELIVERED:
                delivered.append({"invoice": e.label, "uuid": e.uuid or "", **e.outputs})
            else:
                probs = e.problems or [
                    {"code": e.error_code, "path": "", "message": e.error_message}
                ]
                errors.extend(_item_errors(probs, it.location, e.label))
        return errors, delivered, final

    # --- status -----------------------------------------------------------------------------

    def status_path(self) -> Path:
        return self.cfg.daemon.journal.with_name(self.cfg.daemon.journal.name + ".status.json")

    def write_status(self) -> None:
        self._last_status = time.monotonic()
        doc = {
            "pid": os.getpid(),
            "at": datetime.now().isoformat(timespec="seconds"),
            "pacs": {name: rt.state() for name, rt in self.pacs.items()},
            "in_flight": len(self._inflight),
            **self.status_more(),
        }
        with contextlib.suppress(OSError):
            atomic_write(self.status_path(), json.dumps(doc).encode())


def _route(
    entry: Entry | None, action: str | None, dispatch: list[Entry], deliver: list[Entry]
) -> None:
    """Queue an invoice a file yielded: to be sent, or only delivered."""
    if entry is not None and action == "send":
        dispatch.append(entry)
    elif entry is not None and action == "deliver":
        deliver.append(entry)


def _acuse_missing(e: Entry, exc: Exception) -> str:
    """Why an acuse is missing (``ACUSE_MISSING``), for the people reading ``status``."""
    detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return (
        f"{e.label} está timbrada y entregada (UUID {e.uuid}), pero su acuse no se pudo "
        f"obtener del PAC ({getattr(exc, 'code', 'error')}: {detail}). El conector lo vuelve "
        "a pedir solo y lo escribe junto al XML en cuanto lo obtiene."
    )




def _acuse_unwritten(e: Entry, path: Path, exc: Exception) -> str:
    return (
        f"{e.label} está timbrada y entregada (UUID {e.uuid}); su acuse ya se obtuvo pero no "
        f"se pudo escribir en {path.parent}: {getattr(exc, 'strerror', None) or exc}. "
        "Se reintenta sola."
    )


def deliver_outputs(
    src: SourceConfig,
    emisor: EmisorConfig,
    e: Entry,
    *,
    cancelled: bool = False,
    renderer: PdfRenderer | None = None,
) -> dict[str, str]:
    """Write the stamped XML, the PDF (when available) and the acuse; whole or not at all.
    ``cancelled``: the journal knows the UUID was cancelled (the PDF carries the mark).
    ``renderer``: where PDFs are rendered (the daemon's worker processes); default this thread."""
    assert e.stamped_xml is not None and e.uuid
    paths = output_paths(src, e)
    files = {"xml": (paths["xml"], e.stamped_xml)}
    if "pdf" in paths:
        render = renderer.render if renderer is not None else render_pdf_bytes
        pdf = render(e.stamped_xml, emisor, cancelled=cancelled)
        if pdf is not None:
            files["pdf"] = (paths["pdf"], pdf)
    if "acuse" in paths and e.acuse:
        files["acuse"] = (paths["acuse"], e.acuse)
    written = atomic_write_all(list(files.values()))
    return {kind: str(path) for kind, path in zip(files, written, strict=True)}




def _sat_cert(p: PacConfig) -> bytes | None:
    """The DER of ``[[pacs]] sat_cert``, read and checked at start (CONN-CFG-SATCERT)."""
    if p.sat_cert is None:
        return None
    from connector.cfdi.csd import load_certificate

    try:
        der = Path(p.sat_cert).read_bytes()
        load_certificate(der)
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or "no es un certificado DER (.cer)"
        raise PipelineError(
            [Problem("CONN-CFG-SATCERT", f"pacs.{p.name}.sat_cert", f"{p.sat_cert}: {reason}.")]
        ) from None
    return der


def _no_tick() -> None:
    pass


def _none(_: Path) -> None:
    return None


def _own_folder(s: SourceConfig, path: Path) -> bool:
    """``path`` is one of the source's own folders (work, archive, failed/, outputs, the
    cancellation inbox) placed inside its inbox: not an ERP file, not reported."""
    o = s.output
    own = [s.work, s.archive, s.failed, o.xml, o.pdf, o.acuse, o.errors, s.cancel_inbox]
    for folder in own:
        with contextlib.suppress(OSError):
            if folder is not None and path.samefile(folder):
                return True
    return False


def _lines_of_a_claimed_pair(src: SourceRuntime, work: Path) -> bool:
    """A lines file in work/ whose header file is there too (the header carries the pair)."""
    pair = getattr(src.folder, "pair", None)
    if pair is None or pair.role(original_name(work)) != "lines":
        return False
    return src.folder.partner_in_work(work) is not None


def _located(inp: Any, problems: list[Problem]) -> list[Problem]:
    """Problems pointed at the source file:line:field when the adapter knows where."""
    locate = getattr(inp, "locate", None)
    if locate is None:
        return problems
    out = []
    for p in problems:
        try:
            out.append(locate(p))
        except Exception:
            out.append(p)
    return out


def _norm_key(key: tuple[str, str, str]) -> tuple[str, str, str]:
    """A business key as the journal keeps it (RFC upper case)."""
    return (key[0].upper(), key[1], key[2])


def _has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def _dicts(problems: list[Problem], location: str, invoice: str = "") -> list[dict[str, Any]]:
    out = [problem_dict(p, location) for p in problems]
    if invoice:
        for d in out:
            d["invoice"] = invoice
    return out


def _item_errors(problems: list[dict[str, Any]], location: str, invoice: str) -> list[ItemError]:
    out = []
    for p in problems:
        if p.get("severity", "error") != "error":
            continue
        out.append(
            ItemError(
                location=p.get("location") or location,
                invoice=invoice or str(p.get("invoice") or ""),
                code=str(p.get("code") or "CONN-ERROR"),
                path=str(p.get("path") or ""),
                message=str(p.get("message") or ""),
            )
        )
    return out


def _as_problem(exc: BaseException, path: str, default_code: str) -> Problem:
    problems = getattr(exc, "problems", None)
    if problems:
        p = problems[0]
        return Problem(p.code, path, p.message)
    code = getattr(exc, "code", default_code)
    msg = getattr(exc, "message", None) or str(exc)
    return Problem(code if isinstance(code, str) else default_code, path, msg)
