"""The complements' files of a CSV set (issue 15): Comercio Exterior 2.0 and Carta Porte 3.1
from CSV files beside the header and lines files (``ventas_0415_CCE.csv``,
``ventas_0415_CCEM.csv``, ``ventas_0415_CP.csv``…), each row joined to its invoice by the key
columns (SERIE and FOLIO, as the lines file names them).

Each file is one of the tables' child tables (``connector.adapters.table.complements``): the
same columns (names compared without regard to case), made into the same records (``CCE``,
``CCE_MERCANCIA``, ``CARTAPORTE``, ``CP_UBICACION``…) by the same parts, so the same mapping
sections map them: the complement sections of the DAT default mapping, renamed to the
columns (``complement_mapping``). The key columns stand for ``factura_id``; a row's place in
its file for ``linea``.

Errors: ``CONN-CSV-KEY`` (a row whose key has no invoice in the header file, at
``file:line``), ``CONN-CSV-COMPLEMENTO`` (a second row of a one-row file for an invoice; rows
of a file whose complement's first file has no row for the invoice), ``CONN-CSV-HEADER`` (a
column that is not one of the file's, a missing key column), ``CONN-CSV-FORMAT`` and
``CONN-DECODE`` (a broken file: no invoice of the set is read).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from connector.cfdi.errors import Problem

from .base import orphan_record
from .records import ParsedRecord, decode_text, problem

if TYPE_CHECKING:
    from connector.mappers import Mapping

    from .table.complements import ChildTable

# the files a set may bring: name (the table's name without ``cfdi_``) → default suffix, in the
# order they are read (a complement's first file before its others)
FILES: dict[str, str] = {
    "cce": "_CCE",
    "cce_propietario": "_CCEP",
    "cce_destinatario": "_CCED",
    "cce_mercancia": "_CCEM",
    "carta_porte": "_CP",
    "cp_ubicacion": "_CPU",
    "cp_mercancia": "_CPM",
    "cp_remolque": "_CPR",
    "cp_figura": "_CPF",
}
_FIRST = {"comercio_exterior": "cce", "carta_porte": "carta_porte"}
_SECTION = {"comercio_exterior": "ComercioExterior", "carta_porte": "CartaPorte"}
DAT_MAPPING = Path(__file__).resolve().parent / "layouts" / "default.mapping.toml"


def child_of(name: str) -> ChildTable:
    """The child table whose columns the complement file ``name`` has."""
    from .table.complements import CHILD_TABLES

    return next(c for c in CHILD_TABLES if c.name == f"cfdi_{name}")


def check_files(files: Iterable[str]) -> list[str]:
    """Why these complement files cannot be read as a set's (unknown names, a file without
    its complement's first file); empty when they can."""
    out = []
    names = list(files)
    for name in names:
        if name not in FILES:
            out.append(f"{name!r} no es un archivo de complemento (se admiten: {', '.join(FILES)})")
            continue
        first = _FIRST[child_of(name).complement]
        if first not in names:
            out.append(
                f"el archivo {name} necesita el archivo {first} (la fila del complemento de "
                "cada factura)"
            )
    return out


class RowReader(Protocol):
    """What is read of the CSV adapter (``csv.CsvAdapter``): its encoding, the key columns of
    the files beside the header file, and its rows."""

    encoding: str
    lines_key: list[str]

    def _rows(
        self, text: str, filename: str, columns: list[str] | None, required: list[str],
        purpose: str = ...,
    ) -> Iterator[Any]: ...  # fmt: skip


@dataclass
class _State:
    """What one invoice got from the complement files: its records that others hang under,
    and where its one-row files' rows were."""

    anchors: dict[str, ParsedRecord]
    first_row: dict[str, int]


def attach_files(
    adapter: RowReader,
    by_key: dict[tuple[str, ...], ParsedRecord],
    extras: dict[str, tuple[str, bytes]],
    header_name: str,
) -> tuple[list[Problem], list[ParsedRecord]]:
    """Hang the rows of the complement files ``extras`` (name → (file name, bytes)) under
    their invoices (``by_key``). Returns the problems that stop the set from being read (a
    broken file) and one record per key that has no invoice."""
    from .table.complements import _records
    from .table.values import _as_text

    states: dict[int, _State] = {}
    orphans: list[ParsedRecord] = []
    for name in [n for n in FILES if n in extras]:
        filename, data = extras[name]
        child = child_of(name)
        text, decode_problem = decode_text(data, filename, adapter.encoding)
        if text is None:
            assert decode_problem is not None
            return [decode_problem], []
        kinds = {c.name: c.kind for c in child.table.columns}
        known = set(kinds) - {"factura_id", "linea"}
        lost: dict[tuple[str, ...], list[int]] = {}
        columns_checked = False
        for row in adapter._rows(text, filename, None, adapter.lines_key, "unir con su factura"):
            if row.fields is None:
                assert row.problem is not None
                return [row.problem], []
            if not columns_checked:
                columns_checked = True
                extra = [
                    c for c in row.fields
                    if c not in adapter.lines_key and c.lower() not in known
                ]  # fmt: skip
                if extra:
                    return [problem(
                        "CONN-CSV-HEADER",
                        f"{filename} tiene {'la columna' if len(extra) == 1 else 'las columnas'} "
                        f"{', '.join(extra)}, que no {'es' if len(extra) == 1 else 'son'} del "
                        f"archivo {name} (columnas de {child.name}: "
                        f"{', '.join(c for c in kinds if c in known)}).",
                        f"{filename}:1",
                    )], []  # fmt: skip
            key = tuple(row.fields.get(k, "").strip() for k in adapter.lines_key)
            owner = by_key.get(key) if any(key) else None
            if owner is None:
                lost.setdefault(key, []).append(row.line)
                continue
            if row.problem is not None:
                owner.problems.append(row.problem)
            state = states.setdefault(id(owner), _State({}, {}))
            where = f"{filename}:{row.line}"
            if child.anchor is None:
                earlier = state.first_row.get(name)
                if earlier is not None:
                    owner.problems.append(problem(
                        "CONN-CSV-COMPLEMENTO",
                        f"La factura {_show(adapter.lines_key, key)} ya tiene su fila en "
                        f"{filename} (línea {earlier}); debe tener una sola.", where,
                    ))  # fmt: skip
                    continue
                state.first_row[name] = row.line
                parent = owner
            else:
                first = _FIRST[child.complement]
                anchor = state.anchors.get(child.anchor) or state.anchors.get(
                    child_of(first).parts[0].type
                )
                if anchor is None:
                    owner.problems.append(problem(
                        "CONN-CSV-COMPLEMENTO",
                        f"La fila es de la factura {_show(adapter.lines_key, key)}, que no tiene "
                        f"su fila en {extras[first][0] if first in extras else first} (la del "
                        "complemento): el ERP debe escribirla junto con estas.", where,
                    ))  # fmt: skip
                    continue
                parent = anchor
            values = {
                c.lower(): _as_text(v.strip(), kinds.get(c.lower(), ""))
                for c, v in row.fields.items()
                if c not in adapter.lines_key and v.strip()
            }
            _records(child, values, row.line, filename, parent, state.anchors)
        for key, rows in lost.items():
            rec = orphan_record(filename, rows[0])
            what = f"{len(rows)} filas" if len(rows) > 1 else "La fila"
            where = f", la primera en la línea {rows[0]}" if len(rows) > 1 else ""
            rec.problems.append(problem(
                "CONN-CSV-KEY",
                f"{what} de {filename} con la clave {_show(adapter.lines_key, key)}{where} no "
                f"{'tienen' if len(rows) > 1 else 'tiene'} factura en {header_name}.",
                f"{filename}:{rows[0]}",
            ))  # fmt: skip
            orphans.append(rec)
    return [], orphans


def _show(columns: list[str], key: tuple[str, ...]) -> str:
    return ", ".join(f"{c}={v!r}" for c, v in zip(columns, key, strict=True))


# --- the mapping ---------------------------------------------------------------------------------


def complement_mapping(path: Path, files: Iterable[str]) -> Mapping:
    """The source's mapping file ``path`` with, for each complement whose files the source
    reads, the complement section of the DAT default mapping renamed to the files' columns
    (``complements.mapping_sections``, as the tables do) — unless the file has its own."""
    complements = tuple(sorted({child_of(n).complement for n in files if n in FILES}))
    return _mapping(Path(path), Path(path).stat().st_mtime_ns, complements)


@cache
def _mapping(path: Path, mtime_ns: int, complements: tuple[str, ...]) -> Mapping:
    import tomllib

    from connector.mappers import Mapping

    from .table.complements import mapping_sections

    Mapping.from_toml(path)  # every error of the file itself, with its place
    data: dict[str, Any] = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    dat = tomllib.loads(DAT_MAPPING.read_text(encoding="utf-8"))
    sections = mapping_sections(dat["Comprobante"])
    comprobante = data.setdefault("Comprobante", {})
    for complement in complements:
        comprobante.setdefault(_SECTION[complement], sections[_SECTION[complement]])
    return Mapping.from_data(data, source=path.name, base_dir=path.resolve().parent)
