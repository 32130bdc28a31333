"""Results back to the ERP: atomic writers, archive, failed/, error files.

Outputs appear whole: every file is written under a temporary name in the destination folder,
fsynced, then renamed (and the folder fsynced). Inputs are never deleted: they are moved (rename;
copy + fsync + rename + unlink of the source only across file systems) and never overwrite an
existing file — a clash gets a ``-1``, ``-2``… suffix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

TMP_MARK = ".cfdi-tmp"
# outputs (stamped XML, PDF, acuses, error files) carry RFCs and amounts: owner and group
# only; the umask still applies, so a stricter one (077) gives 0600
OUTPUT_MODE = 0o640
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}{TMP_MARK}")


def atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader sees either nothing or the whole file."""
    return atomic_write_all([(path, data)])[0]


def atomic_write_all(files: Sequence[tuple[Path, bytes]]) -> list[Path]:
    """:func:`atomic_write` of several files (an invoice's XML, PDF, acuse): each written and
    fsynced under a temporary name, then renamed; each folder fsynced once at the end, so
    every name is durable when this returns. A failure leaves the files renamed before it
    whole and no temporary file behind."""
    done: list[Path] = []
    for path, data in files:
        path = Path(path)
        tmp = temp_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, OUTPUT_MODE)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        done.append(path)
    for folder in dict.fromkeys(p.parent for p in done):
        _fsync_dir(folder)
    return done


def clean_temp_files(folders: Iterable[Path | None]) -> list[Path]:
    """Remove our own leftover temporary files (a crash between write and rename)."""
    removed = []
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        for p in Path(folder).glob(f".*{TMP_MARK}"):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def safe_part(text: str) -> str:
    """A value usable inside a file name (serie/folio come from ERP data)."""
    return _UNSAFE.sub("_", text)


def output_stem(pattern: str, *, serie: str, folio: str, uuid: str, rfc: str = "") -> str:
    return pattern.format(
        serie=safe_part(serie), folio=safe_part(folio), uuid=safe_part(uuid), rfc=safe_part(rfc)
    )


def free_name(folder: Path, name: str) -> Path:
    """``folder/name`` or, if taken, ``folder/stem-1.ext``, ``-2``…: never overwrite."""
    dest = folder / name
    if not dest.exists():
        return dest
    stem, dot, ext = name.partition(".")
    n = 1
    while True:
        dest = folder / f"{stem}-{n}{dot}{ext}"
        if not dest.exists():
            return dest
        n += 1


def move_file(src: Path, dest: Path) -> Path:
    """Move ``src`` to ``dest`` (which must not exist) atomically; never deletes a last copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise FileExistsError(dest)
    try:
        os.link(src, dest)  # fails if dest exists: no overwrite, even racing
        os.unlink(src)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        if dest.exists():
            raise FileExistsError(dest) from exc
        tmp = temp_name(dest)
        shutil.copy2(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        os.unlink(src)
    _fsync_dir(dest.parent)
    _fsync_dir(src.parent)
    return dest


def archive_folder(archive_root: Path, day: date | None = None) -> Path:
    day = day or datetime.now().date()
    return archive_root / day.isoformat()


@dataclass
class ItemError:
    """One bad invoice (or record) of a file, for the error file."""

    location: str  # file:line (or record index)
    invoice: str  # serie+folio, "" when unknown
    code: str
    path: str  # field path
    message: str  # Spanish

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "invoice": self.invoice,
            "code": self.code,
            "path": self.path,
            "message": self.message,
        }


def error_report_text(
    name: str, errors: list[ItemError], delivered: list[str], when: datetime | None = None
) -> str:
    lines = [
        f"Archivo: {name}",
        f"Fecha: {(when or datetime.now()).isoformat(timespec='seconds')}",
        f"Errores: {len(errors)}",
    ]
    if delivered:
        lines.append(f"Facturas timbradas y entregadas de este archivo: {', '.join(delivered)}")
    lines.append("")
    for e in errors:
        who = f"factura {e.invoice} " if e.invoice else ""
        field = f" campo {e.path}" if e.path else ""
        lines.append(f"{e.code}  {who}[{e.location}]{field}: {e.message}")
    lines.append("")
    return "\n".join(lines)


def write_error_files(
    folder: Path,
    name: str,
    errors: list[ItemError],
    delivered: list[str],
    when: datetime | None = None,
) -> tuple[Path, Path]:
    """``<name>.error.txt`` (people) and ``<name>.error.json`` (machines), atomically.

    ``when`` is the decision's time: the copies of one report (failed/ and the errors folder)
    carry the same one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    txt = atomic_write(
        folder / f"{name}.error.txt",
        error_report_text(name, errors, delivered, when).encode("utf-8"),
    )
    doc = {
        "file": name,
        "errors": [e.to_dict() for e in errors],
        "delivered": delivered,
    }
    js = atomic_write(
        folder / f"{name}.error.json",
        json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8"),
    )
    return txt, js
