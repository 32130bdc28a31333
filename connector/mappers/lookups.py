"""Lookup tables (CSV) for what a legacy ERP does not know about CFDI 4.0.

``articulos.csv``: ERP article code → ClaveProdServ, ClaveUnidad, Unidad, ObjetoImp, tax rates.
``clientes.csv``: ERP customer code → RFC, Nombre, DomicilioFiscalReceptor, RegimenFiscalReceptor,
UsoCFDI. Any columns work: the mapping names them. A table is read once and cached by path,
modification time and size, so editing the file takes effect on the next invoice.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass
from pathlib import Path

from connector.adapters.records import decode_text


class LookupError_(ValueError):  # noqa: N801 - avoid shadowing the builtin LookupError
    """A lookup table that cannot be used (missing file, no key column…), Spanish message."""


@dataclass(frozen=True)
class LookupTable:
    path: Path
    key: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, str]]

    def get(self, key: str) -> dict[str, str] | None:
        row = self.rows.get(key.strip())
        if row is None:
            row = self.rows.get(key.strip().upper())
        return row


_cache: dict[tuple[str, str, str, str], tuple[int, int, LookupTable]] = {}
_lock = threading.Lock()


def load_table(
    path: Path, key: str, *, delimiter: str = ",", encoding: str = "auto"
) -> LookupTable:
    """The table at ``path`` indexed by column ``key`` (cached by path + mtime + size)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise LookupError_(f"no se encuentra la tabla {path}: {exc.strerror}") from exc
    cache_key = (str(path), key, delimiter, encoding)
    with _lock:
        hit = _cache.get(cache_key)
        if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            return hit[2]
    table = _read(path, key, delimiter, encoding)
    with _lock:
        _cache[cache_key] = (st.st_mtime_ns, st.st_size, table)
    return table


def _read(path: Path, key: str, delimiter: str, encoding: str) -> LookupTable:
    text, prob = decode_text(path.read_bytes(), path.name, encoding)
    if text is None:
        raise LookupError_(f"la tabla {path.name} no se puede leer: {prob.message if prob else ''}")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = tuple((c or "").strip() for c in (reader.fieldnames or []))
    if key not in columns:
        raise LookupError_(
            f"la tabla {path.name} no tiene la columna clave '{key}' "
            f"(columnas: {', '.join(columns) or 'ninguna'})"
        )
    rows: dict[str, dict[str, str]] = {}
    try:
        for raw in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            k = row.get(key, "")
            if not k:
                continue
            rows.setdefault(k, row)
            rows.setdefault(k.upper(), row)
    except csv.Error as exc:
        raise LookupError_(
            f"la tabla {path.name} no es un CSV válido (línea {reader.line_num}): {exc}"
        ) from exc
    return LookupTable(path, key, columns, rows)
