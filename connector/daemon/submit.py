"""``submit``: one file through a folder source's pipeline now, beside or without the daemon."""

from __future__ import annotations

import argparse
import os
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.config import Config

from .common import _load, _lock_journal, configure_logging

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


def _set_members(scfg: Any, file: Path, name: str | None = None) -> list[tuple[str, Path]]:
    """The other files of a set (a pair and its complements' files) beside ``file`` (whose
    ERP name is ``name``) with their roles, if the source reads sets and they are there
    (matched without regard to case)."""
    pair = _pair_spec(scfg)
    if pair is None:
        return []
    from connector.adapters.folder import beside

    name = name or file.name
    try:
        here = {n.lower(): n for n in os.listdir(file.parent)}
    except OSError:
        return []
    wanted = [(pair.role(m), beside(file, name, m).name.lower()) for m in pair.members(name)]
    return [(role, file.with_name(here[w])) for role, w in wanted if w in here]


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
        # the source's work folder as the pipeline runs it (this instance's own, when the
        # journal is shared: never ``<work>/`` itself, which a takeover sweeps)
        assert src.cfg.work is not None
        # a copy goes through the pipeline (archived or failed); the given file stays put
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        work = src.cfg.work / f"{stamp}-{secrets.token_hex(4)}--{file.name}"
        atomic_write(work, file.read_bytes())
        for _, member in _set_members(scfg, file):  # a set: its other files go along (same prefix)
            atomic_write(work.with_name(f"{work.name.split('--', 1)[0]}--{member.name}"),
                         member.read_bytes())  # fmt: skip
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
