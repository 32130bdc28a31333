"""``run``: the daemon (``run_daemon``: signals, SIGHUP reload, systemd notify, the HTTP
endpoints) and ``run --once`` (``run_once``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from connector.adapters.table.rows import instance_name
from connector.config import Config, check_config, instance_name_problem

from .common import _load, _lock_journal, configure_logging

# --- run --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    # a stop asked for while the configuration is checked (a database connected to, a CSD
    # read) is a clean stop too: nothing is started, exit 0
    early = threading.Event()
    before: dict[Any, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in stop_signals():
            before[sig] = signal.signal(sig, lambda _s, _f: early.set())

    def restore() -> None:  # run_daemon installs its own; run --once keeps the usual ones
        for sig, handler in before.items():
            signal.signal(sig, handler)

    try:
        return _run_checked(args, early, restore)
    finally:
        restore()


def _run_checked(args: argparse.Namespace, early: threading.Event, restore: Any) -> int:
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
        wrong = instance_name_problem(args.instance)
        if wrong:
            print(f"CONN-INSTANCIA [--instance] {wrong[0].upper()}{wrong[1:]}.")
            return 2
        cfg = cfg.model_copy(
            update={"daemon": cfg.daemon.model_copy(update={"instance": args.instance})}
        )
    d = cfg.daemon
    shared = d.journal_url is not None  # several instances may write one log file
    configure_logging(d.log_level, d.log_format, d.log_file,
                      instance=(d.instance or instance_name(cfg.path)) if shared else None)  # fmt: skip
    log = structlog.get_logger("connector.daemon")
    for p in warnings:  # in the log, one event each (a service has no terminal)
        log.warning("config_warning", code=p.code, location=p.location or p.path,
                    message=p.message)  # fmt: skip
    if early.is_set():
        log.info("stopped_before_start")
        return 0
    if getattr(args, "once", False):
        restore()
        return run_once(cfg, timeout=args.timeout)
    return run_daemon(cfg, stop=early, config_path=Path(args.config))


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
        for name, err in pipe.tables.paused():  # its rows were not (all) read: not done
            done = False
            print(f"{err.code} [fuente {name}] {err.message} Sus filas se procesan en la "
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
        # taken over by another instance sharing the journal (this one stalled past its
        # lease): exit at once, as after a crash; the service manager starts it again
        pipe.on_lost = lambda: os._exit(EXIT_TAKEN_OVER)
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

    metrics = Metrics(pipe.instance if pipe.cfg.daemon.journal_url is not None else None)
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


EXIT_TAKEN_OVER = 75  # EX_TEMPFAIL: systemd's Restart=on-failure starts it again
_ALIVE_SECONDS = 10.0  # /healthz: a loop that has not turned for this long is stuck
