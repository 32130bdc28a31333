"""The daemon's commands: run, submit, replay, status, check-config (``connector.cli`` wires them).

Each ``cmd_*`` takes the parsed arguments and returns the process exit code:
0 done, 1 some invoice or file failed, 2 configuration/usage error, 3 still pending.
Human output goes to stdout in Spanish; structured logs (structlog) go to stderr or the log file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import structlog

from connector.config import Config, check_config, csd_expiry_problems, source_defaults

_SECRET_WORDS = ("password", "contrasena", "contraseña", "secret", "token")


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for k in list(event):
        if any(w in k.lower() for w in _SECRET_WORDS):
            event[k] = "***"
    return event


def configure_logging(
    level: str = "info", fmt: str = "json", file: Path | None = None, stream: TextIO | None = None
) -> None:
    """structlog: one line per event (JSON by default), never a password."""
    out: TextIO = stream or sys.stderr
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        out = open(file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def _load(
    path: Path,
    out: TextIO | None = None,
    *,
    deep: bool = True,
    warnings_out: TextIO | None = None,
    collect: list[Any] | None = None,
) -> Config | None:
    """The configuration, or None after printing every problem (errors, then warnings).
    ``deep=False`` skips the checks of folders, CSD and mappings (``status`` must answer while
    a folder is missing). Warnings alone do not stop it; they go to ``warnings_out``
    (stderr unless given, so ``status --json`` stays JSON), or into ``collect`` when given
    (``run`` logs them, one event each)."""
    out = out or sys.stdout  # read now: tests and callers may replace sys.stdout
    cfg, problems = check_config(path, deep=deep)
    errors = [p for p in problems if p.severity != "warning"]
    warnings = [p for p in problems if p.severity == "warning"]
    if cfg is None:
        print(f"La configuración {path} tiene {len(errors)} error(es):", file=out)
        for p in errors:
            print(f"  {p.code} [{p.location or p.path}] {p.message}", file=out)
    if cfg is not None and collect is not None:
        collect.extend(warnings)
        return cfg
    if warnings:
        wout = out if cfg is None else (warnings_out or sys.stderr)
        print(f"La configuración {path} tiene {len(warnings)} aviso(s):", file=wout)
        for p in warnings:
            print(f"  AVISO {p.code} [{p.location or p.path}] {p.message}", file=wout)
    return cfg


def _open_journal(cfg: Config) -> Any:
    """The journal, or None after printing a coded error (never a traceback)."""
    import sqlite3

    from connector.journal import open_journal

    try:
        return open_journal(cfg.daemon)
    except (sqlite3.Error, OSError) as exc:
        print(f"CONN-DIARIO No se puede abrir el diario {cfg.daemon.journal}: {exc}.")
        return None


# --- one process per journal ------------------------------------------------------------------

_WIN_LOCK_AT = 1 << 20  # Windows locks a byte past the pid, so the pid stays readable


class JournalLock:
    """``<journal>.lock``, held by ``run`` (and by ``submit`` while it works) so a second
    process on the same journal refuses instead of taking the first one's files, its
    temporary files or its invoices (``replay`` and ``status`` need no lock). An OS lock (``flock``; ``msvcrt.locking`` on Windows):
    the kernel releases it when the holder dies, even by SIGKILL, so a stale file never
    blocks a restart. The file holds the holder's pid, for the message."""

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_name(journal.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """None when held now; else the pid of the holder (``"?"`` when unreadable)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.name == "nt":
                import msvcrt

                os.lseek(fd, _WIN_LOCK_AT, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0) if hasattr(os, "pread") else b""
                if not holder:
                    os.lseek(fd, 0, os.SEEK_SET)
                    holder = os.read(fd, 32)
            except OSError:
                holder = b""
            os.close(fd)
            return holder.decode("ascii", "replace").strip() or "?"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        if os.name == "nt":
            import msvcrt

            with contextlib.suppress(OSError):
                os.lseek(fd, _WIN_LOCK_AT, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        os.close(fd)  # closing releases flock too


def _lock_journal(cfg: Config, what: str, out: TextIO | None = None) -> JournalLock | None:
    """The journal's lock, or None after printing CONN-DIARIO-EN-USO with the holder's pid."""
    lock = JournalLock(cfg.daemon.journal)
    try:
        holder = lock.acquire()
    except OSError as exc:
        print(f"CONN-DIARIO [{lock.path}] No se puede crear el candado del diario: {exc}.",
              file=out or sys.stdout)  # fmt: skip
        return None
    if holder is not None:
        print(
            f"CONN-DIARIO-EN-USO [{lock.path}] El diario {cfg.daemon.journal} está en uso por "
            f"otro proceso del conector (pid {holder}); {what} no puede trabajar a la vez. "
            "Detenga ese proceso o espere a que termine.",
            file=out or sys.stdout,
        )
        return None
    return lock


# --- check-config -----------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(Path(args.config), warnings_out=sys.stdout)
    if cfg is None:
        return 2
    print(
        f"Configuración correcta: {len(cfg.sources)} fuente(s), {len(cfg.emisores)} emisor(es), "
        f"{len(cfg.pacs)} PAC(s)."
    )
    for s in cfg.sources:  # the values the connector puts in fields the ERP leaves empty
        defaults = source_defaults(s)
        if defaults:
            shown = ", ".join(f"{k} = {v!r}" for k, v in defaults.items())
            print(f"Fuente {s.name!r}: un campo vacío toma su valor por omisión: {shown}.")
    return 0


# --- run --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    warnings: list[Any] = []
    cfg = _load(Path(args.config), collect=warnings)
    if cfg is None:
        return 2
    if getattr(args, "http", None):
        from connector.service.http import parse_address

        try:
            parse_address(args.http)
        except ValueError as exc:
            print(f"CONN-HTTP {exc}")
            return 2
        cfg = cfg.model_copy(update={"daemon": cfg.daemon.model_copy(update={"http": args.http})})
    if getattr(args, "instance", None):
        cfg = cfg.model_copy(
            update={"daemon": cfg.daemon.model_copy(update={"instance": args.instance})}
        )
    d = cfg.daemon
    configure_logging(d.log_level, d.log_format, d.log_file)
    log = structlog.get_logger("connector.daemon")
    for p in warnings:  # in the log, one event each (a service has no terminal)
        log.warning("config_warning", code=p.code, location=p.location or p.path,
                    message=p.message)  # fmt: skip
    if getattr(args, "once", False):
        return run_once(cfg, timeout=args.timeout)
    return run_daemon(cfg, config_path=Path(args.config))


def run_once(cfg: Config, *, timeout: float = 3600.0) -> int:
    """``run --once``: everything waiting in every source (files and rows) processed, then
    exit: 0 when all were delivered, 1 when some failed or did not finish within ``timeout``
    (what is unfinished is resumed by the next run), 2 when it could not start."""
    from connector.pipeline import Pipeline, PipelineError

    lock = _lock_journal(cfg, "run --once", sys.stderr)
    if lock is None:
        return 2
    try:
        pipe = Pipeline(cfg)
        try:
            pipe.start(watch=False)
        except PipelineError as exc:
            for p in exc.problems:
                print(f"{p.code} [{p.path}] {p.message}", file=sys.stderr)
            return 2
        try:
            done = pipe.run_until_idle(timeout)
        finally:
            pipe.close(wait=True)
        files = pipe.finished
        failed_files = [o for o in files if o.errors]
        delivered = sum(len(o.delivered) for o in files)
        print(
            f"{len(files)} archivo(s): {delivered} factura(s) entregada(s), "
            f"{len(failed_files)} archivo(s) con errores; "
            f"{pipe.tables.rows_written} fila(s) timbrada(s), "
            f"{pipe.tables.errors_written} fila(s) con error."
        )
        for name, exc in pipe.tables.paused():  # its rows were not (all) read: not done
            done = False
            print(f"{exc.code} [fuente {name}] {exc.message} Sus filas se procesan en la "
                  "siguiente ejecución.")  # fmt: skip
        if not done:
            print(
                f"CONN-UNA-VEZ No se terminó todo (en {timeout:g} s como máximo; el PAC o la "
                "base de datos no responden); lo pendiente se reanuda en la siguiente ejecución."
            )
        return 0 if done and not failed_files and not pipe.tables.errors_written else 1
    finally:
        lock.release()


def _reload(pipe: Any, path: Path, log: Any) -> None:
    """SIGHUP: the configuration is checked first; with errors the running one stays and every
    error is logged; without, its sources are applied (``Pipeline.reload``)."""
    from connector.pipeline import PipelineError

    log.info("reload_requested", config=str(path))
    cfg, problems = check_config(path)
    errors = [p for p in problems if p.severity != "warning"]
    if cfg is None or errors:
        for p in errors:
            log.error("reload_error", code=p.code, location=p.location or p.path,
                      message=p.message)  # fmt: skip
        log.error("reload_failed", errors=len(errors),
                  message="La configuración nueva tiene errores: se sigue con la anterior.")  # fmt: skip
        return
    # the HTTP endpoints stay where they are (run --http may have set them): not a change
    cfg = cfg.model_copy(
        update={"daemon": cfg.daemon.model_copy(update={"http": pipe.cfg.daemon.http})}
    )
    try:
        changes = pipe.reload(cfg)
    except PipelineError as exc:
        for p in exc.problems:
            log.error("reload_error", code=p.code, location=p.path, message=p.message)
        log.error("reload_failed", errors=len(exc.problems),
                  message="La configuración nueva no se pudo aplicar: se sigue con la anterior.")  # fmt: skip
        return
    log.info("reloaded", **changes)
    if changes["restart"]:
        log.warning("reload_needs_restart", sections=changes["restart"],
                    message="Estos cambios se aplican al reiniciar el servicio.")  # fmt: skip


def stop_signals() -> list[signal.Signals]:
    """The signals that ask for a clean stop: SIGINT, SIGTERM and, on Windows, SIGBREAK
    (the Ctrl-Break a service wrapper such as WinSW sends to stop the service)."""
    names = ("SIGINT", "SIGTERM", "SIGBREAK")
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


def _status_line(pipe: Any, credits: Any = None) -> str:
    """systemd's ``STATUS=``: one current line, e.g. "12 en proceso, 3 fallidas, PAC fel:
    cerrado"."""
    from connector.journal import FINAL_STATES, State

    counts = pipe.journal.counts() if pipe.journal is not None else {}
    waiting = sum(n for s, n in counts.items() if s not in FINAL_STATES and s != State.STAMPED)
    parts = [f"{waiting} en proceso", f"{counts.get(State.FAILED, 0)} fallidas"]
    for name, rt in pipe.pacs.items():
        snap = rt.state()
        state = _CIRCUIT_SHORT.get(str(snap.get("state")), str(snap.get("state")))
        if snap.get("paused"):
            state = f"en pausa ({snap['paused'].get('code')})"
        parts.append(f"PAC {name}: {state}")
        left = credits.levels.get(name) if credits is not None else None
        if left is not None:
            low = rt.cfg.credits_warning is not None and left < rt.cfg.credits_warning
            parts.append(f"{left} timbres{' (POCOS)' if low else ''}")
    return ", ".join(parts)


_CIRCUIT_SHORT = {"closed": "cerrado", "open": "abierto", "half_open": "semiabierto"}


def run_daemon(
    cfg: Config, stop: threading.Event | None = None, config_path: Path | None = None
) -> int:
    """Run until SIGINT/SIGTERM (or ``stop``): stop taking work, let the PAC requests in flight
    finish (or reach their timeout), leave the rest resumable, exit 0. A second signal exits
    at once (the journal is written first, so that is as safe as a crash). Under systemd it
    speaks the notify protocol (``connector.service.notify``): READY=1 once recovery is done
    and every source is watched, WATCHDOG=1 from this loop, STATUS=, STOPPING=1. SIGHUP
    reloads ``config_path`` (``_reload``)."""
    from connector.pipeline import Pipeline, PipelineError
    from connector.service.notify import Heartbeat

    stop = stop or threading.Event()
    log = structlog.get_logger("connector.daemon")
    pac_timeout = max((p.timeout_seconds for p in cfg.pacs), default=30.0)
    beat = Heartbeat(extend_seconds=pac_timeout + 30.0)

    reload = threading.Event()

    def _hangup(_signum: int, _frame: Any) -> None:
        reload.set()
        pipe.wake.set()

    def _reload_if_asked() -> None:
        if reload.is_set() and config_path is not None:
            reload.clear()
            now_us = time.monotonic_ns() // 1000  # CLOCK_MONOTONIC, as systemd wants
            beat.notifier.send("RELOADING=1", f"MONOTONIC_USEC={now_us}")
            _reload(pipe, config_path, log)
            beat.notifier.send("READY=1")

    def _signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():  # the second one: now (what is not finished is resumable)
            log.warning("shutdown_forced", signal=name)
            os._exit(128 + signum)
        log.info("shutdown_requested", signal=name)
        stop.set()
        pipe.stopping.set()  # no more claims, even inside a long scan
        pipe.wake.set()

    lock = _lock_journal(cfg, "el daemon", sys.stderr)
    if lock is None:
        return 2
    http = None
    try:
        pipe = Pipeline(cfg)
        credits = None
        if cfg.daemon.http or any(p.credits_warning is not None for p in cfg.pacs):
            from connector.service.credits import CreditsWatch

            credits = CreditsWatch(pipe, cfg.daemon.credits_seconds)
            pipe.status_more = lambda: {"credits": credits.snapshot()}

        def tick() -> None:
            beat.tick()
            if credits is not None:
                credits.tick()

        pipe.tick = tick
        beat.status = lambda: _status_line(pipe, credits)
        max_wait = beat.watchdog_interval
        if cfg.daemon.http:
            http = _serve_http(cfg.daemon.http, pipe, beat, credits)
            if http is None:
                return 2
            max_wait = min(max_wait or 1.0, 1.0)  # /healthz sees the loop turn every second
        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals():
                signal.signal(sig, _signal)
            if hasattr(signal, "SIGHUP") and config_path is not None:
                signal.signal(signal.SIGHUP, _hangup)
        try:
            pipe.start(watch=True)
        except PipelineError as exc:
            for p in exc.problems:
                print(f"{p.code} [{p.path}] {p.message}", file=sys.stderr)
            return 2
        try:
            if not stop.is_set():
                beat.ready()
                log.info("ready", watchdog_seconds=beat.notifier.watchdog_seconds)
                pipe.run(stop, max_wait=max_wait, between=_reload_if_asked)
        finally:
            beat.stopping()
            running = pipe.stop_taking_work()
            log.info("draining", in_flight=running)
            drain_until = time.monotonic() + beat.extend_seconds
            while running:  # each send ends by itself or at the PAC's timeout
                if time.monotonic() < drain_until:  # more time only while it can still end
                    beat.tick()  # WATCHDOG=1 and EXTEND_TIMEOUT_USEC=
                time.sleep(0.2)
                running = pipe.in_flight()
            pipe.close(wait=True)
            beat.notifier.close()
            log.info("stopped")
        return 0
    finally:
        if http is not None:
            http.close()
        lock.release()


def _serve_http(address: str, pipe: Any, beat: Any, credits: Any) -> Any:
    """/healthz, /readyz and /metrics on ``address``; None after a coded error (the port is
    taken, the address is not this machine's)."""
    from connector.service.http import HealthServer
    from connector.service.metrics import Metrics

    metrics = Metrics()
    pipe.metrics = metrics  # before start(): the PAC's operations are counted from the first
    metrics.attach(pipe, last_tick=lambda: beat.last_tick)
    credits.on_level = metrics.credits.__setitem__
    watchdog = beat.notifier.watchdog_seconds
    server = HealthServer(
        address,
        pipe,
        metrics,
        last_tick=lambda: beat.last_tick,
        alive_within=watchdog if watchdog is not None else _ALIVE_SECONDS,
        warnings=credits.warnings,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"CONN-HTTP No se puede escuchar en {address}: {exc.strerror or exc}.",
              file=sys.stderr)  # fmt: skip
        return None
    return server


_ALIVE_SECONDS = 10.0  # /healthz: a loop that has not turned for this long is stuck


# --- submit -----------------------------------------------------------------------------------


def _pick_source(cfg: Config, name: str | None, file: Path) -> Any:
    import fnmatch

    folders = [s for s in cfg.sources if s.kind == "folder"]  # a table source takes no file
    if name:
        s = cfg.source(name)
        if s.kind != "folder":
            raise KeyError(name)
        return s
    if len(folders) == 1:
        return folders[0]
    low = file.name.lower()
    for s in folders:
        if any(fnmatch.fnmatchcase(low, p.lower()) for p in s.include) and not any(
            fnmatch.fnmatchcase(low, p.lower()) for p in s.exclude
        ):
            return s
    raise KeyError(file.name)


def _pair_spec(scfg: Any) -> Any:
    """The source's ``PairSpec`` when it reads header + lines pairs, else None."""
    return scfg.pair.spec() if getattr(scfg, "pair", None) is not None else None


def _marker_back(scfg: Any, final: Path, dest: Path) -> None:
    """A replayed file of a source with ``done_marker`` needs its marker in the inbox (after
    the file, as the ERP does): the one that went to failed/ with it, or a new one."""
    from connector.sinks import atomic_write, move_file

    marker = getattr(scfg, "done_marker", None)
    if not marker:
        return
    mdest = dest.with_name(dest.name + marker)
    old = final.with_name(final.name + marker)
    if mdest.exists():
        return
    if old.is_file():
        move_file(old, mdest)
    else:
        atomic_write(mdest, b"")


def _pair_partner(scfg: Any, file: Path, name: str | None = None) -> Path | None:
    """The other file of a pair beside ``file`` (whose ERP name is ``name``), if the source
    reads pairs and it is there (matched without regard to case)."""
    pair = _pair_spec(scfg)
    if pair is None:
        return None
    from connector.adapters.folder import beside

    name = name or file.name
    partner = pair.partner(name)
    if partner is None:
        return None
    want = beside(file, name, partner).name.lower()
    try:
        found = next((n for n in os.listdir(file.parent) if n.lower() == want), None)
    except OSError:
        return None
    return file.with_name(found) if found is not None else None


def cmd_submit(args: argparse.Namespace) -> int:
    cfg = _load(Path(args.config))
    if cfg is None:
        return 2
    d = cfg.daemon
    if d.log_file is not None:  # the same log as the daemon's: what was stamped, and when
        configure_logging(d.log_level, d.log_format, d.log_file)
    else:
        configure_logging("warning", "console")
    file = Path(args.file)
    if not file.is_file():
        print(f"CONN-ARCHIVO El archivo {file} no existe.")
        return 2
    try:
        scfg = _pick_source(cfg, args.source, file)
    except KeyError:
        print(
            f"CONN-FUENTE No hay una fuente que acepte {file.name}; indique --source "
            f"({', '.join(s.name for s in cfg.sources)})."
        )
        return 2
    lock = _lock_journal(cfg, "submit")
    if lock is None:
        return 2
    try:
        return _submit(cfg, scfg, file, args)
    finally:
        lock.release()


def _submit(cfg: Config, scfg: Any, file: Path, args: argparse.Namespace) -> int:
    from connector.pipeline import Pipeline, PipelineError
    from connector.sinks import atomic_write

    pipe = Pipeline(cfg)
    try:
        pipe.start(watch=False)
    except PipelineError as exc:
        for p in exc.problems:
            print(f"{p.code} [{p.path}] {p.message}")
        return 2
    try:
        src = pipe.sources[scfg.name]
        assert scfg.work is not None
        # a copy goes through the pipeline (archived or failed); the given file stays put
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        work = scfg.work / f"{stamp}-{secrets.token_hex(4)}--{file.name}"
        atomic_write(work, file.read_bytes())
        partner = _pair_partner(scfg, file)
        if partner is not None:  # a pair: its other file goes along (same prefix)
            atomic_write(work.with_name(f"{work.name.split('--', 1)[0]}--{partner.name}"),
                         partner.read_bytes())  # fmt: skip
        rec = pipe.process_file(src, work)
        deadline = time.monotonic() + args.timeout
        outcome = None
        while time.monotonic() < deadline:
            outcome = next((o for o in pipe.finished if o.file_id == rec.id), None)
            if outcome is not None:
                break
            pipe.poll_retries()
            time.sleep(0.05)
    finally:
        pipe.close(wait=True)
    if outcome is None:
        print(
            f"{file.name}: aún hay facturas esperando al PAC; el daemon (cfdi-connector run) "
            "las terminará. Consulte cfdi-connector status."
        )
        return 3
    for d in outcome.delivered:
        print(f"TIMBRADA {d['invoice']} UUID {d['uuid']} → {d.get('xml', '')}")
        if d.get("pdf"):
            print(f"         PDF → {d['pdf']}")
        if d.get("acuse"):
            print(f"         acuse → {d['acuse']}")
    for e in outcome.errors:
        who = f"{e.invoice} " if e.invoice else ""
        print(f"ERROR {who}{e.code} [{e.location}] {e.path}: {e.message}")
    print(f"Archivo {file.name} → {outcome.final_path}")
    return 1 if outcome.errors else 0


# --- replay -----------------------------------------------------------------------------------


def parse_item_key(text: str, cfg: Config) -> tuple[str, str, str] | None:
    """``RFC/SERIE/FOLIO`` or ``SERIE/FOLIO`` (with a single emisor)."""
    parts = text.split("/")
    if len(parts) == 3:
        return (parts[0].upper(), parts[1], parts[2])
    if len(parts) == 2 and len(cfg.emisores) == 1:
        return (cfg.emisores[0].rfc, parts[0], parts[1])
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    """No journal lock: support staff replay while the service runs (replay only resets
    journal rows and moves files back into the inbox; the daemon takes them like any other
    file)."""
    from connector.adapters.folder import free_pair_name
    from connector.journal import FileState, JournalError, State
    from connector.sinks import free_name, move_file

    cfg = _load(Path(args.config))
    if cfg is None:
        return 2
    dry = args.dry_run
    j = _open_journal(cfg)
    if j is None:
        return 2
    try:
        files = []
        reset_ids: set[int] | None = None  # None: every non-delivered invoice of the files
        if args.item:
            key = parse_item_key(args.item, cfg)
            e = j.get(key) if key else None
            if e is None:
                print(f"CONN-REPLAY No hay ninguna factura {args.item} en el diario.")
                return 2
            if e.state in (State.STAMPED, State.DELIVERED):
                print(f"La factura {e.label} ya está timbrada (UUID {e.uuid}); no se reprocesa.")
                return 0
            if e.uuid:  # stamped, but the PAC's reply failed our checks (CONN-PAC-XML)
                print(
                    f"CONN-REPLAY La factura {e.label} ya tiene el UUID {e.uuid} en el SAT; "
                    "reprocesarla la timbraría dos veces. Revise el XML del PAC en la carpeta "
                    "de errores con su proveedor."
                )
                return 1
            reset_ids = {e.id}
            files = [f for f in j.files_of_invoice(e.id) if f.state is FileState.FAILED]
            files = files[-1:]
            if not dry:
                j.reset(e.id)
            print(f"{'[simulación] ' if dry else ''}Factura {e.label} reiniciada ({e.state}).")
            with contextlib.suppress(KeyError):
                if cfg.source(e.source).kind == "table" and not dry:
                    from connector.adapters.table.odbc import TableError
                    from connector.adapters.table.rows import reset_row

                    try:
                        print(f"Tabla: {reset_row(cfg.source(e.source), e.location)}.")
                    except TableError as exc:
                        print(f"{exc.code} {exc.message}")
                        return 1
        elif args.file:
            failed = j.files(FileState.FAILED)
            # the file as it is in failed/ (exact name); else the ERP's name, if only one
            files = [f for f in failed if Path(f.final_path or "").name == args.file]
            others = [f for f in failed if f.name == args.file and f not in files and f.final_path]
            if files and others:
                print(
                    f"Se reprocesa solo {args.file}; otros archivos fallidos con el mismo nombre "
                    f"original quedan en la carpeta de errores: "
                    f"{', '.join(Path(f.final_path or '').name for f in others)}."
                )
            if not files:
                files = [f for f in failed if f.name == args.file]
                present = [f for f in files if Path(f.final_path or "").is_file()]
                if len(present) > 1:
                    print(
                        f"CONN-REPLAY-AMBIGUO [replay --file {args.file}] Hay {len(present)} "
                        f"archivos fallidos que se llamaban {args.file}; indique con --file el "
                        "nombre exacto en la carpeta de errores del que quiere reprocesar:"
                    )
                    for f in present:
                        print(f"  {Path(f.final_path or '').name}  ({f.final_path})")
                    return 2
                files = present or files[-1:]
            if not files:
                print(f"CONN-REPLAY No hay ningún archivo fallido llamado {args.file}.")
                return 2
        else:
            files = j.files(FileState.FAILED)
        for rec in files:
            final = Path(rec.final_path or "")
            if not final.is_file():
                print(f"CONN-REPLAY {rec.name}: ya no está en {final}; se omite.")
                continue
            try:
                src = cfg.source(rec.source)
            except KeyError:
                print(f"CONN-REPLAY {rec.name}: la fuente {rec.source!r} ya no existe; se omite.")
                continue
            pair = _pair_spec(src)
            dest = (
                free_pair_name(src.inbox, rec.name, pair)
                if pair is not None and pair.role(rec.name)
                else free_name(src.inbox, rec.name)
            )
            for it in j.file_items(rec.id):
                if it.invoice_id is None or reset_ids is not None:
                    continue  # --item: only that invoice was reset
                e = j.get_id(it.invoice_id)
                if e.state in (State.STAMPED, State.DELIVERED):
                    continue
                if not dry:
                    try:
                        j.reset(e.id)
                    except JournalError:
                        continue
                print(f"{'[simulación] ' if dry else ''}  factura {e.label} reiniciada")
            partner = _pair_partner(src, final, rec.name)
            if not dry:
                move_file(final, dest)
                _marker_back(src, final, dest)
                j.file_replayed(rec.id, str(dest))
                _retire_reports(src, final)
            print(f"{'[simulación] ' if dry else ''}{final} → {dest}")
            if partner is not None:  # the other file of the pair goes back with it,
                assert pair is not None  # under the name that matches the first one's
                pdest = src.inbox / (pair.partner(dest.name) or partner.name)
                if not dry:
                    move_file(partner, pdest)
                    _marker_back(src, partner, pdest)
                print(f"{'[simulación] ' if dry else ''}{partner} → {pdest}")
        if not files:
            print("No hay archivos que reprocesar.")
    finally:
        j.close()
    return 0


def _retire_reports(src: Any, final: Path) -> None:
    """The error files of a replayed file go to ``replayed/`` beside them (in failed/ and in
    the errors folder): what is left there is what still fails; a new failure writes anew."""
    from connector.sinks import error_file_base, free_name, move_file

    for folder in dict.fromkeys(f for f in (final.parent, src.output.errors) if f is not None):
        for suffix in (".error.txt", ".error.json"):
            report = folder / f"{error_file_base(final.name)}{suffix}"
            if report.is_file():
                moved = move_file(report, free_name(folder / "replayed", report.name))
                print(f"  {report} → {moved}")


# --- status -----------------------------------------------------------------------------------

_STATE_ES = {
    "received": "recibidas",
    "validated": "validadas",
    "sealed": "selladas",
    "sending": "enviándose",
    "retry_wait": "esperando reintento",
    "stamped": "timbradas (sin entregar)",
    "delivered": "entregadas",
    "failed": "con error",
}
_FILE_STATE_ES = {
    "claimed": "en proceso (work/)",
    "archiving": "archivándose",
    "failing": "pasando a failed/",
    "archived": "archivados",
    "failed": "en failed/",
    "replayed": "devueltos a la entrada (replay)",
}
_CIRCUIT_ES = {
    "closed": "cerrado (normal)",
    "open": "abierto (no se le llama)",
    "half_open": "semiabierto (probando)",
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_cancellation(
    cfg: Config,
    uuid: str,
    motivo: str,
    folio_sustitucion: str | None,
    *,
    code: str | None,
    acuse: bytes | None,
    outcome: Any,
    out: TextIO | None = None,
) -> int:
    """After the PAC accepted a cancellation request: the journal first (the request and
    where it stands, ``outcome``: ``connector.pac.cancellation.CancelOutcome``; a cancellation
    only when it took effect), then, only when SAT says Cancelado, the PDF with the CANCELADO
    mark in place of the delivered one and the acuse de cancelación. Safe to repeat (a second
    run updates the request and rewrites the same files). Exit code: 0 recorded, 1 a file
    could not be written (the cancellation is recorded: run it again)."""
    from connector.journal import CancelState, State
    from connector.outputs import deliver_cancellation

    out = out or sys.stdout
    j = _open_journal(cfg)
    if j is None:
        return 1
    cancelled = outcome.state is CancelState.CANCELLED
    try:
        j.record_cancel_request(
            uuid,
            motivo,
            folio_sustitucion,
            state=outcome.state,
            code=code,
            es_cancelable=outcome.es_cancelable,
            estatus_cancelacion=outcome.estatus_cancelacion,
            acuse=acuse,
        )
        if cancelled:
            estatus = outcome.estatus_cancelacion or outcome.es_cancelable
            j.mark_cancelled(uuid, motivo, folio_sustitucion, code=code, estatus=estatus,
                             acuse=acuse)  # fmt: skip
        e = j.find_uuid(uuid)
    finally:
        j.close()
    what = "Cancelación" if cancelled else "Solicitud de cancelación"
    if e is None:
        print(f"{what} registrada en el diario; el UUID {uuid} no lo timbró este conector: no "
              "hay PDF que marcar.", file=out)  # fmt: skip
        return 0
    print(f"{what} de {e.label} registrada en el diario {cfg.daemon.journal} "
          f"({outcome.state}).", file=out)  # fmt: skip
    if not outcome.sat_cancelled:
        print(f"El PDF de {e.label} no lleva la marca CANCELADO: el SAT no lo muestra "
              "Cancelado.", file=out)  # fmt: skip
        return 0
    if e.state not in (State.STAMPED, State.DELIVERED) or e.stamped_xml is None:
        return 0
    try:
        src, emisor = cfg.source(e.source), cfg.emisor(e.emisor_rfc)
    except KeyError:
        print(f"CONN-CFG El origen {e.source!r} de {e.label} ya no está en la configuración: "
              "el PDF no se volvió a generar.", file=out)  # fmt: skip
        return 1
    try:
        written = deliver_cancellation(src, emisor, e, acuse)
    except OSError as exc:
        print(f"CONN-FILE No se pudo escribir la salida de {e.label} ({exc}); la cancelación "
              "sí quedó registrada: repita el comando.", file=out)  # fmt: skip
        return 1
    if "pdf" in written:
        print(f"PDF con la marca CANCELADO: {written['pdf']}", file=out)
    if "acuse_cancelacion" in written:
        print(f"Acuse de cancelación: {written['acuse_cancelacion']}", file=out)
    return 0


_CANCEL_REQUEST_ES = {  # cancellation requests not (yet) cancelled: never counted as such
    "solicitada": "cancelaciones sin respuesta",  # sent without answer: SAT asked first
    "enviada": "cancelaciones enviadas",  # the PAC took them, SAT does not show them yet
    "en_proceso": "cancelaciones en proceso",  # waiting for the receptor's acceptance
    "rechazada": "cancelaciones rechazadas",  # the receptor said no: still vigente
    "no_cancelable": "no cancelables",  # SAT: No cancelable (related documents)
    "invalida": "cancelaciones rechazadas por el PAC",
}


def cmd_status(args: argparse.Namespace) -> int:
    from connector.cancellations import status_lines
    from connector.service.metrics import journal_figures

    cfg = _load(Path(args.config), deep=False)
    if cfg is None:
        return 2
    csd_notes = csd_expiry_problems(cfg)  # an expired or expiring CSD: before anything else
    if not args.json:
        for p in csd_notes:
            print(f"{'ERROR' if p.severity == 'error' else 'AVISO'} {p.code} {p.message}")
    from connector.journal import journal_exists

    if not journal_exists(cfg.daemon):
        if args.json:  # scripts read JSON whatever the state: nothing processed yet
            doc = {
                "journal": None,
                "message": f"Aún no hay diario en {cfg.daemon.journal}: el daemon no ha "
                "procesado nada.",
                "csd": [
                    {"severity": p.severity, "code": p.code, "message": p.message}
                    for p in csd_notes
                ],
                "recent_failures": [],
            }
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        else:
            print(f"Aún no hay diario en {cfg.daemon.journal}: el daemon no ha procesado nada.")
        return 0
    j = _open_journal(cfg)
    if j is None:
        return 2
    try:
        counts = j.counts()
        cancelled = j.cancelled_count()
        cancel_requests = j.cancel_request_counts()
        cancel_open = status_lines(j)
        files = j.file_counts()
        failures = j.recent_failures(args.limit)
        figures = journal_figures(cfg, j) if args.json else None
    finally:
        j.close()
    status_file = cfg.daemon.journal.with_name(cfg.daemon.journal.name + ".status.json")
    daemon_doc: dict[str, Any] | None = None
    if status_file.exists():
        try:
            daemon_doc = json.loads(status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            daemon_doc = None
    if args.json:
        print(
            json.dumps(
                {
                    "invoices": counts,
                    "cancelled": cancelled,
                    "cancel_requests": cancel_requests,
                    "cancellations_open": cancel_open,
                    "files": files,
                    "daemon": daemon_doc,
                    # the figures /metrics serves (connector.service.metrics)
                    "figures": figures,
                    "csd": [
                        {"severity": p.severity, "code": p.code, "message": p.message}
                        for p in csd_notes
                    ],
                    "recent_failures": [
                        {
                            "at": datetime.fromtimestamp(f.at).isoformat(timespec="seconds"),
                            "invoice": f.invoice,
                            "state": f.state,
                            "code": f.code,
                            "message": f.message,
                            "file": f.file,
                            "location": f.location,
                            "source": f.source,
                        }
                        for f in failures
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    print("Facturas por estado:")
    for state, n in counts.items():
        print(f"  {_STATE_ES.get(state, state):28} {n}")
    print(f"  {'canceladas (de las entregadas)':28} {cancelled}")
    pending = {k: n for k, n in cancel_requests.items() if k != "cancelada"}
    for state, n in sorted(pending.items()):
        label = _CANCEL_REQUEST_ES.get(state, state)
        print(f"  {label:28} {n}")
    if cancel_open:
        print("Cancelaciones en seguimiento (el daemon consulta al SAT):")
    for c in cancel_open:
        said = f"; SAT: {c['sat_estatus_cancelacion']}" if c["sat_estatus_cancelacion"] else ""
        print(f"  {c['uuid']} {c['estado']} desde hace {c['edad']} (solicitudes: "
              f"{c['solicitudes']}, consultas al SAT: {c['consultas']}{said}; siguiente "
              f"consulta: {c['proxima_consulta']})"
              f"{' ' + c['error'] if c['error'] else ''}")  # fmt: skip
    print("Archivos:")
    for state, n in files.items():
        print(f"  {_FILE_STATE_ES.get(state, state):28} {n}")
    if daemon_doc and _pid_alive(int(daemon_doc.get("pid", 0))):
        print(f"Daemon en marcha (pid {daemon_doc['pid']}, {daemon_doc.get('at')}):")
        for name, snap in (daemon_doc.get("pacs") or {}).items():
            state = snap.get("state") if isinstance(snap, dict) else snap
            extra = ""
            if isinstance(snap, dict) and snap.get("last_error"):
                extra = f" (último error {snap['last_error']})"
            print(f"  PAC {name}: circuito {_CIRCUIT_ES.get(str(state), state)}{extra}")
            credit = (daemon_doc.get("credits") or {}).get(name)
            if credit:
                low = " (por debajo del aviso: compre más timbres)" if credit.get("bajo") else ""
                print(f"    timbres restantes: {credit.get('restantes')}{low}")
            paused = snap.get("paused") if isinstance(snap, dict) else None
            if paused:
                print(
                    f"    EN PAUSA: el PAC rechazó la cuenta: {paused.get('code')} "
                    f"{paused.get('message')} Las facturas esperan (no fallan); se vuelve a "
                    f"probar en {paused.get('probe_in_seconds')} s. Corrija el usuario o la "
                    "contraseña y reinicie el servicio, o revise la cuenta en el portal del PAC."
                )
    else:
        print("El daemon no está en marcha: estado del circuito de los PAC desconocido.")
    if failures:
        print("Errores recientes (el más reciente primero):")
        for f in failures:
            when = datetime.fromtimestamp(f.at).strftime("%Y-%m-%d %H:%M:%S")
            what = f.invoice or "(archivo)"
            state = _STATE_ES.get(f.state, f.state) if f.state else "rechazado"
            print(f"  {when}  {what:12} {state:20} {f.code}  {f.message}  ({f.location or f.file})")
    return 0
