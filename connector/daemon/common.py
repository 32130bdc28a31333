"""What every command of the daemon shares: structured logging without secrets, the
configuration loaded with its problems printed, the journal opened with a coded error, one
process per journal (``JournalLock``); and ``check-config``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from connector.config import Config, check_config, source_defaults

_SECRET_WORDS = ("password", "contrasena", "contraseña", "secret", "token")


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event):
        if any(w in k.lower() for w in _SECRET_WORDS):
            event[k] = "***"
    return event


def _with_instance(
    instance: str, _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event.setdefault("instance", instance)
    return event


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    file: Path | None = None,
    stream: TextIO | None = None,
    *,
    instance: str | None = None,
) -> None:
    """structlog: one line per event (JSON by default), never a password. ``instance``: this
    connector's name, on every line (several sharing a journal may share one log file)."""
    out: TextIO = stream or sys.stderr
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        out = open(file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # psycopg's pool says every failed reconnection on stderr, in English: the daemon says the
    # journal's outage once, coded and in Spanish (CONN-DIARIO-CAIDO, connector.membership)
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            _drop_secrets,
            *([functools.partial(_with_instance, instance)] if instance else []),
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

    def __init__(self, journal: Path, *, path: Path | None = None) -> None:
        # ``path``: the lock file itself (one per instance sharing a PostgreSQL journal)
        self.path = path or journal.with_name(journal.name + ".lock")
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
    lock = JournalLock(cfg.daemon.journal, path=cfg.daemon.local_file(".lock"))
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
