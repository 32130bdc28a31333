"""Reading a claimed file whole, and telling whether it is still what was read: a file another
process still writes is never parsed (a record cut at the end of a chunk is not bad data) and
never archived as done if it changed after it was read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.adapters.folder import open_for_writing
from connector.sinks import ItemError

# the files a claimed file's invoices were read from, as read: (path, size, mtime_ns, sha256)
Fingerprint = tuple[tuple[str, int, int, str], ...]


class StillWriting(Exception):
    """A claimed file that another process still writes: read it once it settled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Changed(Exception):
    """A decided file is no longer what was read (``changed_since``)."""

    def __init__(self, reason: str, fingerprint: Fingerprint) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fingerprint = fingerprint


@dataclass
class Settling:
    source: str
    work: Path
    seen: tuple[int, int] | None = None  # (size, mtime_ns) last observed
    since: float = 0.0  # time.monotonic() when ``seen`` was first observed


def read_whole(
    folder: Any, work: Path, *, writers: bool = True
) -> tuple[bytes, list[tuple[Path, bytes]], Fingerprint]:
    """A claimed file's bytes (and, for a set of files, the other files' paths and bytes)
    with their fingerprint. ``StillWriting`` when a process holds one of them open for
    writing or one changed while it was read: a record cut at the end of a chunk is never
    reported as bad data, the file is read again once it settled. ``writers=False``: no look
    for open writers (the scan that just claimed it looked; they are looked for again before
    it is finished)."""
    members = getattr(folder, "members_in_work", None)
    paths = [work, *(members(work) if members is not None else [])]
    if writers and open_for_writing(paths):
        raise StillWriting("otro proceso lo tiene abierto para escritura")
    datas: list[bytes] = []
    fp: list[tuple[str, int, int, str]] = []
    for path in paths:
        before = os.stat(path)
        data = path.read_bytes()
        after = os.stat(path)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(
            data
        ) != after.st_size:
            raise StillWriting("cambió mientras se leía")
        datas.append(data)
        fp.append((str(path), after.st_size, after.st_mtime_ns, hashlib.sha256(data).hexdigest()))
    return datas[0], list(zip(paths[1:], datas[1:], strict=True)), tuple(fp)


def changed_since(fp: Fingerprint, *, writers: bool = True) -> str | None:
    """Why the files a fingerprint describes no longer hold the bytes that were read (a
    process holds one open for writing, its size, mtime or content differ); None when they
    are the same (a file gone from its place is left to the move that follows).
    ``writers=False``: no pass over /proc for open writers (the caller's previous check, a
    journal commit ago, made it); size, mtime and content are compared all the same."""
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


def keeps_changing(name: str, reason: str, times: int) -> ItemError:
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
