"""What the operating system says of an inbox entry that the folder source does not take (yet):
not a regular file (``_not_a_file``: links, folders, FIFOs), held open for writing by a process
(``open_for_writing``: Linux ``/proc``; the empty set elsewhere) or refused to a rename by a
Windows sharing violation (``sharing_violation``). ``connector.adapters.folder`` uses them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path


def open_for_writing(paths: Iterable[Path]) -> set[Path]:
    """Of ``paths``, those another process (or this one) holds open for writing: a writer that
    keeps an export open between chunks. Linux only (``/proc/<pid>/fd`` and ``fdinfo``); only
    the processes this user may inspect are seen (root sees all). Elsewhere, or when ``/proc``
    cannot be read, the empty set: the OS cannot tell, stability and the done-marker decide.

    One pass over the open file descriptors of every process (a few milliseconds), so callers
    ask for all their candidates at once."""
    wanted: dict[str, Path] = {}
    for p in paths:
        with contextlib.suppress(OSError):
            wanted[os.path.realpath(p)] = Path(p)
    found: set[Path] = set()
    if not wanted or not os.path.isdir("/proc/self/fdinfo"):
        return found
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")  # never touches the file itself
            except OSError:
                continue
            if target not in wanted or wanted[target] in found:
                continue
            if _writable_fd(pid, fd):
                found.add(wanted[target])
        if len(found) == len(wanted):
            break
    return found


def _writable_fd(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("flags:"):
                    flags = int(line.split()[1], 8)
                    return (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError):
        pass
    return False


def sharing_violation(exc: OSError) -> bool:
    """A Windows rename refused because another process has the file open without sharing
    (ERROR_SHARING_VIOLATION 32, ERROR_LOCK_VIOLATION 33): the ERP is still writing it."""
    return getattr(exc, "winerror", None) in (32, 33)


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _not_a_file(entry: os.DirEntry[str]) -> tuple[str, str]:
    """Why an inbox entry whose name matches is not taken: (code, Spanish message)."""
    name = entry.name
    if entry.is_symlink():
        try:
            target = os.readlink(entry.path)
        except OSError:
            target = "?"
        return (
            "CONN-BANDEJA-ENLACE",
            f"{name} es un enlace simbólico (apunta a {target}), no un archivo: el conector no "
            "sigue enlaces, ni a archivos dentro de la bandeja ni fuera de ella, y no lo "
            "procesa. Ponga en la bandeja el archivo mismo (cópielo o muévalo).",
        )
    if entry.is_dir(follow_symlinks=False):
        return (
            "CONN-BANDEJA-CARPETA",
            f"{name} es una carpeta, no un archivo: el conector solo toma archivos de la "
            "bandeja y no entra en subcarpetas. Ponga los archivos directamente en la bandeja.",
        )
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    kind = (
        "una tubería (FIFO)"
        if stat.S_ISFIFO(mode)
        else "un socket"
        if stat.S_ISSOCK(mode)
        else "un dispositivo"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "un tipo de entrada desconocido"
    )
    return (
        "CONN-BANDEJA-ESPECIAL",
        f"{name} no es un archivo regular sino {kind}: el conector no lo lee. Ponga en la "
        "bandeja solo archivos exportados por el ERP.",
    )
