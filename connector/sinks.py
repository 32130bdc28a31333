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


NAME_MAX = 255  # bytes in one file name (ext4, XFS, NTFS counts 255 UTF-16 units: less strict)


def fit_name(name: str, limit: int = NAME_MAX, *, key: str | None = None, ext: bool = True) -> str:
    """``name`` when it fits in ``limit`` bytes (UTF-8); else a shorter name keeping its start,
    its last 16 characters and its extension (``ext=False``: ``name`` has none), with 8 hex
    digits of the SHA-256 of ``key`` (default ``name``) between them, so that long names that
    differ anywhere stay different: ``<start>~1a2b3c4d~<end>.dat``."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".") if ext else ("", "", "")
    if not dot or not stem or len(suffix.encode()) > 16:
        stem, suffix = name, ""
    else:
        suffix = dot + suffix
    import hashlib

    tag = "~" + hashlib.sha256((key or name).encode()).hexdigest()[:8] + "~"
    tail = stem[-16:]
    room = max(0, limit - len(suffix.encode()) - len(tag) - len(tail.encode()))
    head = stem[: len(stem) - len(tail)].encode()[:room].decode("utf-8", "ignore")
    return head + tag + tail + suffix


def temp_name(final: Path) -> Path:
    mark = f".{secrets.token_hex(4)}{TMP_MARK}"
    return final.with_name(f".{fit_name(final.name, NAME_MAX - 1 - len(mark))}{mark}")


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
        dest = folder / fit_name(f"{stem}-{n}{dot}{ext}")
        if not dest.exists():
            return dest
        n += 1


class SourceChanged(OSError):
    """``move_file`` across file systems found its source written during the copy: the
    source was kept (not unlinked) and the copy removed."""


def move_file(src: Path, dest: Path) -> Path:
    """Move ``src`` to ``dest`` (which must not exist) atomically; never deletes a last copy.
    Across file systems (copy, then unlink) a source that changed during the copy is never
    unlinked: ``SourceChanged``, the copy removed."""
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
        before = os.stat(src)
        try:
            shutil.copy2(src, tmp)
            after, copied = os.stat(src), os.stat(tmp)
            if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
                copied.st_size != after.st_size
            ):  # written during the copy: the source stays, whole; nothing half-copied
                raise SourceChanged(
                    errno.EAGAIN,
                    f"El archivo cambió mientras se copiaba a {dest.parent} (otro sistema de "
                    f"archivos): tenía {before.st_size} bytes, ahora {after.st_size}; se "
                    "conserva donde está y se vuelve a leer",
                    str(src),
                )
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
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


def error_file_base(name: str) -> str:
    """What ``.error.txt`` / ``.error.json`` are appended to for the file ``name``."""
    return fit_name(name, NAME_MAX - len(".error.json"))


def write_error_files(
    folder: Path,
    name: str,
    errors: list[ItemError],
    delivered: list[str],
    when: datetime | None = None,
) -> tuple[Path, Path]:
    """``<name>.error.txt`` (people) and ``<name>.error.json`` (machines), atomically.

    ``when`` is the decision's time: the copies of one report (failed/ and the errors folder)
    carry the same one. A name too long for the suffixes is shortened (``error_file_base``);
    the report inside names the file whole.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = error_file_base(name)
    txt = atomic_write(
        folder / f"{base}.error.txt",
        error_report_text(name, errors, delivered, when).encode("utf-8"),
    )
    doc = {
        "file": name,
        "errors": [e.to_dict() for e in errors],
        "delivered": delivered,
    }
    js = atomic_write(
        folder / f"{base}.error.json",
        json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8"),
    )
    return txt, js
