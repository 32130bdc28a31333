"""CSV adapter: one row per invoice line, the invoice's header columns repeated on every row.

Consecutive rows with the same values in the ``group_by`` columns (default ``SERIE`` and
``FOLIO``) form one invoice — the shape of flat "TXT/CSV" exports (see
``/work/shared/layouts/solucionfactible_txt51_cfdi40_fields.txt``). Each invoice is a record
``FACTURA`` (the columns of its first row) with one child ``LINEA`` per row; the mapping reads
header columns and line columns by their names (``"FOLIO"``, ``"LINEA.CANTIDAD"``).

Options (all optional): ``delimiter`` (","), ``quotechar`` ('"'), ``encoding`` ("auto": UTF-8,
else cp1252; a UTF-8 BOM is accepted), ``header`` (true: the first row names the columns),
``columns`` (the column names when the file has no header row), ``group_by`` (list of column
names; empty: one invoice per row). Number and date formats (decimal comma, "%d/%m/%Y") belong
to the mapping, which knows which column is an amount or a date.

Errors: ``CONN-CSV-COLUMNS`` (a row with a different number of columns than the header),
``CONN-CSV-FORMAT`` (broken quoting), ``CONN-CSV-HEADER`` (missing header / group columns).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from .base import Adapter, ParsedRecord, decode_text, orphan_record, problem

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
        **options: Any,
    ) -> None:
        super().__init__(
            delimiter=delimiter,
            quotechar=quotechar,
            encoding=encoding,
            header=header,
            columns=columns,
            group_by=group_by,
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

    def parse(self, data: bytes, filename: str) -> Iterator[ParsedRecord]:
        text, decode_problem = decode_text(data, filename, self.encoding)
        if text is None:
            rec = orphan_record(filename, 1)
            rec.problems.append(decode_problem)  # type: ignore[arg-type]
            yield rec
            return
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=self.delimiter, quotechar=self.quotechar
        )
        columns = self.columns
        current: ParsedRecord | None = None
        current_key: tuple[str, ...] | None = None
        while True:
            start_line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                target = current or orphan_record(filename, start_line)
                target.problems.append(
                    problem(
                        "CONN-CSV-FORMAT",
                        f"La fila no es CSV válido: {exc}.",
                        f"{filename}:{start_line}",
                    )
                )
                if current is None:
                    yield target
                # the reader cannot resume reliably after a quoting error
                break
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = [c.strip() for c in row]
                if columns and columns[0].startswith("\ufeff"):
                    columns[0] = columns[0][1:]
                missing = [g for g in self.group_by if g not in columns]
                if missing:
                    rec = orphan_record(filename, start_line)
                    rec.problems.append(
                        problem(
                            "CONN-CSV-HEADER",
                            f"El encabezado no tiene la(s) columna(s) para agrupar facturas: "
                            f"{', '.join(missing)}.",
                            f"{filename}:{start_line}",
                        )
                    )
                    yield rec
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
            fields = dict(zip(columns, values, strict=True))
            key = tuple(fields.get(g, "").strip() for g in self.group_by)
            if current is None or not self.group_by or key != current_key:
                if current is not None:
                    yield current
                current = ParsedRecord(HEADER_TYPE, dict(fields), start_line, filename)
                current_key = key
            current.add(ParsedRecord(LINE_TYPE, fields, start_line, filename))
            if row_problem is not None:
                current.problems.append(row_problem)
        if current is not None:
            yield current
