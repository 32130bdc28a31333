"""CSV adapter: one row per invoice line, the invoice's header columns repeated on every row.

Consecutive rows with the same values in the ``group_by`` columns (default ``SERIE`` and
``FOLIO``) form one invoice — the shape of flat "TXT/CSV" exports (see
the reference layout ``layouts/solucionfactible_txt51_cfdi40_fields.txt`` of the project's shared data). Each invoice is a record
``FACTURA`` (the columns of its first row) with one child ``LINEA`` per row; the mapping reads
header columns and line columns by their names (``"FOLIO"``, ``"LINEA.CANTIDAD"``).

Options (all optional): ``delimiter`` (","), ``quotechar`` ('"'), ``encoding`` ("auto": UTF-8
or UTF-16, else cp1252; see ``base.decode_text``), ``header`` (true: the first row names the columns),
``columns`` (the column names when the file has no header row), ``group_by`` (list of column
names; empty: one invoice per row). Number and date formats (decimal comma, "%d/%m/%Y") belong
to the mapping, which knows which column is an amount or a date.

**Header file + lines file** (``parse_pair``, a source with ``pair``): one row per invoice in
the header file, its lines in the lines file, joined by the ``key`` columns (default: the
``group_by`` columns; ``lines_key`` when the lines file names them differently; ``lines_columns``
for a lines file without a header row). The result is the same tree (``FACTURA`` with its
``LINEA`` rows, each located in its own file), so the same mapping serves both forms. A line
whose key has no invoice, a header row without lines and a repeated key are ``CONN-CSV-KEY``.

Errors: ``CONN-CSV-COLUMNS`` (a row with a different number of columns than the header),
``CONN-CSV-FORMAT`` (broken quoting), ``CONN-CSV-HEADER`` (missing header / group columns).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from connector.cfdi.errors import Problem

from .base import Adapter, orphan_record
from .records import ParsedRecord, decode_text, problem

_JOIN = "unir encabezado y líneas"
HEADER_TYPE = "FACTURA"
LINE_TYPE = "LINEA"


class CsvAdapter(Adapter):
    name = "csv"

    def __init__(
        self,
        delimiter: str = ",",
        quotechar: str = '"',
        encoding: str = "auto",
        header: bool = True,
        columns: list[str] | None = None,
        group_by: list[str] | str | None = None,
        key: list[str] | str | None = None,
        lines_key: list[str] | str | None = None,
        lines_columns: list[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            delimiter=delimiter,
            quotechar=quotechar,
            encoding=encoding,
            header=header,
            columns=columns,
            group_by=group_by,
            key=key,
            lines_key=lines_key,
            lines_columns=lines_columns,
            **options,
        )
        if options:
            raise ValueError(
                f"opciones desconocidas para el adaptador csv: {', '.join(sorted(options))}"
            )
        if delimiter in ("\\t", "tab"):
            delimiter = "\t"
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ValueError("delimiter debe ser un solo carácter")
        if not isinstance(quotechar, str) or len(quotechar) != 1:
            raise ValueError("quotechar debe ser un solo carácter")
        if not header and not columns:
            raise ValueError("sin fila de encabezado (header = false) hay que dar columns")
        self.delimiter = delimiter
        self.quotechar = quotechar
        self.encoding = encoding
        self.header = header
        self.columns = [c.strip() for c in columns] if columns else None
        if group_by is None:
            group_by = ["SERIE", "FOLIO"]
        self.group_by = [group_by] if isinstance(group_by, str) else list(group_by)
        # header file + lines file: the columns joining a line to its invoice
        self.key = _names(key, "key") if key is not None else list(self.group_by)
        self.lines_key = _names(lines_key, "lines_key") if lines_key is not None else self.key
        if len(self.lines_key) != len(self.key):
            raise ValueError("lines_key debe tener tantas columnas como key")
        self.lines_columns = [c.strip() for c in lines_columns] if lines_columns else None

    # --- reading rows ---------------------------------------------------------------------

    def _rows(
        self,
        text: str,
        filename: str,
        columns: list[str] | None,
        required: list[str],
        purpose: str = "agrupar facturas",
    ) -> Iterator[_Row]:
        """The data rows of one CSV text: ``(line, fields, problem)``; a row with ``fields``
        ``None`` carries a problem that stops the reading (broken quoting, missing columns)."""
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=self.delimiter, quotechar=self.quotechar
        )
        while True:
            start_line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _Row(
                    start_line,
                    None,
                    problem(
                        "CONN-CSV-FORMAT",
                        f"La fila no es CSV válido: {exc}.",
                        f"{filename}:{start_line}",
                    ),
                )
                return  # the reader cannot resume reliably after a quoting error
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = [c.strip() for c in row]
                if columns and columns[0].startswith("\ufeff"):
                    columns[0] = columns[0][1:]
                missing = [g for g in required if g not in columns]
                if missing:
                    yield _Row(
                        start_line,
                        None,
                        problem(
                            "CONN-CSV-HEADER",
                            f"El encabezado no tiene {'la columna' if len(missing) == 1 else 'las columnas'} "
                            f"para {purpose}: {', '.join(missing)} (trae: {', '.join(columns)}).",
                            f"{filename}:{start_line}",
                        ),
                    )
                    return
                continue
            values = row
            row_problem = None
            if len(values) > len(columns) and not "".join(values[len(columns) :]).strip():
                values = values[: len(columns)]  # trailing delimiters / empty padding
            if len(values) != len(columns):
                row_problem = problem(
                    "CONN-CSV-COLUMNS",
                    f"La fila tiene {len(values)} columnas y el encabezado {len(columns)}.",
                    f"{filename}:{start_line}",
                )
                values = (values + [""] * len(columns))[: len(columns)]
            yield _Row(start_line, dict(zip(columns, values, strict=True)), row_problem)

    def parse(self, data: bytes, filename: str) -> Iterator[ParsedRecord]:
        text, decode_problem = decode_text(data, filename, self.encoding)
        if text is None:
            rec = orphan_record(filename, 1)
            rec.problems.append(decode_problem)  # type: ignore[arg-type]
            yield rec
            return
        current: ParsedRecord | None = None
        current_key: tuple[str, ...] | None = None
        for row in self._rows(text, filename, self.columns, self.group_by):
            if row.fields is None:
                assert row.problem is not None
                if current is not None and row.problem.code == "CONN-CSV-FORMAT":
                    current.problems.append(row.problem)
                else:
                    rec = orphan_record(filename, row.line)
                    rec.problems.append(row.problem)
                    yield rec
                break
            fields = row.fields
            key = tuple(fields.get(g, "").strip() for g in self.group_by)
            if current is None or not self.group_by or key != current_key:
                if current is not None:
                    yield current
                current = ParsedRecord(HEADER_TYPE, dict(fields), row.line, filename)
                current_key = key
            current.add(ParsedRecord(LINE_TYPE, fields, row.line, filename))
            if row.problem is not None:
                current.problems.append(row.problem)
        if current is not None:
            yield current

    # --- header file + lines file -----------------------------------------------------------

    def check_pair(self) -> list[str]:
        """What keeps this configuration from reading a header file + lines file pair."""
        out = []
        if not self.key:
            out.append("key (las columnas que unen encabezado y líneas) no puede estar vacía")
        if not self.header and not self.lines_columns:
            out.append(
                "sin fila de encabezado (header = false) el archivo de líneas necesita "
                "lines_columns"
            )
        return out

    def parse_pair(
        self,
        header: bytes,
        header_name: str,
        lines: bytes,
        lines_name: str,
        extras: dict[str, tuple[str, bytes]] | None = None,
    ) -> Iterator[ParsedRecord]:
        """One ``FACTURA`` per row of the header file with its ``LINEA`` rows of the lines
        file (joined by ``key`` / ``lines_key``): the same tree as the one-file form. With
        ``extras`` (the complements' files: name → (file name, bytes)), their rows hang under
        their invoices as the tables' do (``csv_complements``)."""
        texts: list[str] = []
        for data, name in ((header, header_name), (lines, lines_name)):
            text, decode_problem = decode_text(data, name, self.encoding)
            if text is None:
                rec = orphan_record(name, 1)
                rec.problems.append(decode_problem)  # type: ignore[arg-type]
                yield rec
                return
            texts.append(text)
        if self.check_pair():
            rec = orphan_record(header_name, 1)
            for message in self.check_pair():
                rec.problems.append(problem("CONN-ADAPTER", f"{message}.", header_name))
            yield rec
            return
        invoices: list[ParsedRecord] = []
        by_key: dict[tuple[str, ...], ParsedRecord] = {}
        fatal: list[Problem] = []
        for row in self._rows(texts[0], header_name, self.columns, self.key, _JOIN):
            if row.fields is None:
                fatal.append(row.problem)  # type: ignore[arg-type]
                break
            rec = ParsedRecord(HEADER_TYPE, row.fields, row.line, header_name)
            if row.problem is not None:
                rec.problems.append(row.problem)
            key = tuple(row.fields.get(k, "").strip() for k in self.key)
            where = f"{header_name}:{row.line}"
            if not any(key):
                rec.problems.append(
                    problem(
                        "CONN-CSV-KEY",
                        f"La fila no tiene valor en las columnas de la clave "
                        f"({', '.join(self.key)}).",
                        where,
                    )
                )
            elif key in by_key:
                first = by_key[key]
                rec.problems.append(
                    problem(
                        "CONN-CSV-KEY",
                        f"La clave {_show(self.key, key)} ya apareció en la línea {first.line} "
                        f"de {header_name}: no se sabe a qué factura van sus líneas.",
                        where,
                    )
                )
                first.problems.append(
                    problem(
                        "CONN-CSV-KEY",
                        f"La clave {_show(self.key, key)} se repite en la línea {row.line} "
                        f"de {header_name}.",
                        first.location,
                    )
                )
            else:
                by_key[key] = rec
            invoices.append(rec)
        orphans: dict[tuple[str, ...], list[int]] = {}
        if not fatal:
            for row in self._rows(texts[1], lines_name, self.lines_columns, self.lines_key, _JOIN):
                if row.fields is None:
                    fatal.append(row.problem)  # type: ignore[arg-type]
                    break
                key = tuple(row.fields.get(k, "").strip() for k in self.lines_key)
                owner = by_key.get(key) if any(key) else None
                if owner is None:
                    orphans.setdefault(key, []).append(row.line)
                    continue
                owner.add(ParsedRecord(LINE_TYPE, row.fields, row.line, lines_name))
                if row.problem is not None:
                    owner.problems.append(row.problem)
        lost: list[ParsedRecord] = []
        if not fatal and extras:
            from .csv_complements import attach_files

            fatal, lost = attach_files(self, by_key, extras, header_name)
        if fatal:  # a broken file: which lines belong to which invoice is not known
            rec = orphan_record(fatal[0].location or header_name, 1)
            rec.problems.extend(fatal)
            yield rec
            return
        for rec in invoices:
            if not rec.children_of_type(LINE_TYPE) and not any(
                p.code == "CONN-CSV-KEY" for p in rec.problems
            ):
                key = tuple(rec.fields.get(k, "").strip() for k in self.key)
                rec.problems.append(
                    problem(
                        "CONN-CSV-KEY",
                        f"La factura {_show(self.key, key)} no tiene líneas en {lines_name} "
                        "(una factura sin conceptos).",
                        rec.location,
                    )
                )
            yield rec
        for key, rows in orphans.items():
            rec = orphan_record(lines_name, rows[0])
            what = f"{len(rows)} líneas" if len(rows) > 1 else "La línea"
            where = f", la primera en la línea {rows[0]}" if len(rows) > 1 else ""
            rec.problems.append(
                problem(
                    "CONN-CSV-KEY",
                    f"{what} con la clave {_show(self.lines_key, key)}{where} no "
                    f"{'tienen' if len(rows) > 1 else 'tiene'} factura en {header_name}.",
                    f"{lines_name}:{rows[0]}",
                )
            )
            yield rec
        yield from lost


@dataclass
class _Row:
    line: int
    fields: dict[str, str] | None  # None: reading stops here (``problem`` says why)
    problem: Problem | None


def _show(columns: list[str], key: tuple[str, ...]) -> str:
    return ", ".join(f"{c}={v!r}" for c, v in zip(columns, key, strict=True))


def _names(value: list[str] | str, option: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"{option} debe ser una lista de nombres de columna")
    return [n.strip() for n in names]
