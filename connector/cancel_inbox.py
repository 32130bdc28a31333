"""The ``cancel/`` inbox of a folder source (``[[sources]] cancel_inbox``): the ERP asks for
cancellations the way it asks for invoices, with small request files (docs/layouts.md):

- ``*.json``: a list of objects ``{"uuid": …, "motivo": "02", "folio_sustitucion": …}``;
- ``*.csv``: a header with ``uuid``, ``motivo`` and optionally ``folio_sustitucion``;
- anything else: one request a line, ``UUID|motivo|folio_sustitucion`` (the last part only
  with motivo 01); blank lines and lines starting with ``#`` are skipped.

Same rules as invoice files: a file is taken once it has not changed for the source's
``stable_seconds``, claimed by moving it into ``<work>/cancel/`` (a file left there by a crash
is taken again first), and ends, never deleted, in ``archive/<day>/`` when every request was
accepted (or was already asked for: asking again is harmless) or in ``failed/`` with
``<name>.error.txt`` (each refused line: code, file:line, Spanish message; also listed by
``status``). A PAC or SAT that cannot be reached leaves the file claimed: it is taken again on
the next tick, and the requests already recorded are not sent twice. Each request then follows
the tracked flow of ``connector.cancellations`` (the result beside the invoice's outputs).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import structlog

from connector.cfdi.errors import Problem
from connector.config import SourceConfig
from connector.journal import Journal
from connector.sinks import archive_folder, atomic_write, free_name, move_file

log = structlog.get_logger("connector.cancel_inbox")

Request = tuple[str, str, str, str | None]  # (location file:line, uuid, motivo, folio)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_requests(name: str, data: bytes) -> tuple[list[Request], list[Problem]]:
    """The requests of one file and the problems of the lines that are not one."""
    text = _decode(data)
    out: list[Request] = []
    problems: list[Problem] = []

    def bad(where: str, msg: str) -> None:
        problems.append(Problem("CONN-CANCEL-ARCHIVO", where, msg, location=where))

    def add(where: str, uuid: Any, motivo: Any, folio: Any) -> None:
        uuid, motivo = str(uuid or "").strip(), str(motivo or "").strip()
        if not uuid or not motivo:
            bad(where, "Falta el UUID o el motivo de la solicitud de cancelación.")
            return
        out.append((where, uuid, motivo.zfill(2), str(folio or "").strip() or None))

    lower = name.lower()
    if lower.endswith(".json"):
        try:
            items = json.loads(text)
        except ValueError as exc:
            bad(f"{name}:1", f"No es un JSON válido: {exc}.")
            return out, problems
        if not isinstance(items, list):
            bad(f"{name}:1", 'Se esperaba una lista de solicitudes [{"uuid": …, "motivo": …}].')
            return out, problems
        for i, item in enumerate(items, 1):
            if not isinstance(item, dict):
                bad(f"{name}:[{i}]", "Cada solicitud debe ser un objeto con uuid y motivo.")
                continue
            add(f"{name}:[{i}]", item.get("uuid"), item.get("motivo"),
                item.get("folio_sustitucion"))  # fmt: skip
        return out, problems
    if lower.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        header = [h.strip().lower() for h in (rows[0] if rows else [])]
        if "uuid" not in header or "motivo" not in header:
            bad(f"{name}:1", "El CSV debe tener encabezado con las columnas uuid y motivo "
                f"(y folio_sustitucion); tiene: {', '.join(header) or 'nada'}.")  # fmt: skip
            return out, problems
        col = {h: i for i, h in enumerate(header)}
        for n, row in enumerate(rows[1:], 2):
            if not any(c.strip() for c in row):
                continue
            cell = {h: (row[i] if i < len(row) else "") for h, i in col.items()}
            add(f"{name}:{n}", cell["uuid"], cell["motivo"], cell.get("folio_sustitucion"))
        return out, problems
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) > 3:
            bad(f"{name}:{n}", f"Se esperaba UUID|motivo|folio_sustitucion; hay {len(parts)} "
                "partes.")  # fmt: skip
            continue
        add(f"{name}:{n}", *(parts + ["", ""])[:3])
    return out, problems


def claim_all(src: SourceConfig, now: float) -> list[Path]:
    """The files to process now: those left claimed in ``<work>/cancel/`` by an earlier pass,
    then the inbox's settled files, claimed by moving them there."""
    assert src.cancel_inbox is not None and src.work is not None
    work = src.work / "cancel"
    claimed = sorted(p for p in work.iterdir() if p.is_file()) if work.is_dir() else []
    inbox = src.cancel_inbox
    for path in sorted(inbox.iterdir()) if inbox.is_dir() else []:
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            if now - path.stat().st_mtime < src.stable_seconds:
                continue  # still being written
            claimed.append(move_file(path, free_name(work, path.name)))
        except OSError as exc:
            log.warning("cancel_claim_failed", file=path.name, error=str(exc))
    return [p for p in claimed if not p.name.startswith(".")]


def finish(j: Journal, src: SourceConfig, path: Path, problems: list[Problem]) -> Path:
    """To ``archive/<day>/`` when nothing was refused, else to ``failed/`` with its
    ``.error.txt`` (and each problem noted for ``status``)."""
    assert src.archive is not None and src.failed is not None  # only folder sources have one
    if not problems:
        dest = move_file(path, free_name(archive_folder(src.archive), path.name))
        log.info("cancel_file_done", file=path.name)
        return dest
    dest = free_name(src.failed, path.name)
    report = "".join(f"{p.code} [{p.location}] {p.message}\n" for p in problems)
    atomic_write(dest.with_name(dest.name + ".error.txt"), report.encode("utf-8"))
    for p in problems:
        j.note_failure(src.name, path.name, p.code, p.message, location=p.location or "")
    log.warning("cancel_file_failed", file=path.name, errors=len(problems))
    return move_file(path, dest)
