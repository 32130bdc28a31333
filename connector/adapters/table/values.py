"""What a table source reads and writes, value by value: a row's values as the text the
mapping reads (NULLs, floats and binary values as coded problems), text the source's legacy
encoding can carry, timestamps per engine; and a cursor that counts its round trips."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connector.adapters.base import problem
from connector.cfdi.errors import Problem

from .dialects import Dialect


class _Counted:
    """A cursor whose statements and commits are counted (``TableSource.round_trips``)."""

    def __init__(self, cur: Any, counts: dict[str, int]) -> None:
        self._cur, self._counts = cur, counts

    def execute(self, *args: Any) -> Any:
        self._counts["statements"] = self._counts.get("statements", 0) + 1
        return self._cur.execute(*args)

    @property
    def connection(self) -> Any:
        return _CountedConnection(self._cur.connection, self._counts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class _CountedConnection:
    def __init__(self, conn: Any, counts: dict[str, int]) -> None:
        self._conn, self._counts = conn, counts

    def commit(self) -> None:
        self._counts["commits"] = self._counts.get("commits", 0) + 1
        self._conn.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _fields(
    row: dict[str, Any], table: Any, location: str, problems: list[Problem], required: bool
) -> dict[str, str]:
    """A row's values as the text the mapping reads; NULL required values, floats and binary
    values become coded problems at ``table:id:column``."""
    known = {c.name: c for c in table.columns}
    out: dict[str, str] = {}
    for name, value in row.items():
        col = known.get(name)
        where = f"{location}:{name}"
        if value is None or (isinstance(value, str) and not value.strip()):
            if required and col is not None and col.required:
                problems.append(
                    problem(
                        "CONN-BD-NULO",
                        f"La columna {name} está vacía (NULL) y la factura la necesita.",
                        where,
                    )
                )
            continue
        if isinstance(value, float):
            problems.append(
                problem(
                    "CONN-BD-FLOTANTE",
                    f"La columna {name} trae un número de punto flotante ({value!r}); los "
                    "importes y cantidades deben guardarse como DECIMAL/NUMERIC (o texto en "
                    "SQLite) para leerse exactos.",
                    where,
                )
            )
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            problems.append(
                problem(
                    "CONN-BD-TIPO",
                    f"La columna {name} es binaria; se esperaba texto, número o fecha.",
                    where,
                )
            )
            continue
        out[name] = _as_text(value, col.kind if col is not None else "")
    return out


def _as_text(value: Any, kind: str) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.replace(microsecond=0, tzinfo=None).isoformat()
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00"
    text = str(value)
    if kind == "timestamp" and len(text) >= 19 and text[10] == " ":
        return f"{text[:10]}T{text[11:19]}"  # SQLite's 'YYYY-MM-DD HH:MM:SS[.fff]'
    return text


def _decode_problem(exc: UnicodeError, where: str, encoding: str | None) -> Problem:
    enc = encoding or "la del controlador (UTF-8/UTF-16)"
    return problem(
        "CONN-BD-CODIFICACION",
        f"La fila tiene texto que no se puede leer con la codificación {enc}: {exc}. "
        "Revise la codificación (encoding) configurada para la fuente.",
        where,
    )


def _timestamp(value: str | datetime | None, d: Dialect) -> datetime | str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return d.timestamp_param(value.replace(tzinfo=None))


def _text(value: bytes | str | None) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _fit(text: str | None, encoding: str | None, errors: str) -> str | None:
    """Text the source's legacy encoding can carry (pyodbc refuses the rest): the XML with
    character references for what it lacks (the same XML once read), a message with '?'."""
    if text is None or not encoding:
        return text
    return text.encode(encoding, errors).decode(encoding)


def _cut(text: str | None, size: int) -> str | None:
    if text is None or len(text) <= size:
        return text
    return text[: size - 1] + "…"
