"""DAT adapter: line-type, delimited records whose types and fields a layout file declares.

One adapter serves many ERPs' DAT formats: the layout (TOML, see ``layouts/default.toml`` and
``docs/layouts.md``) names the record types, the order of their fields, which record starts an
invoice and which records nest under which. Many invoices per file; an error in one record
affects only the invoice it belongs to.

Errors (each with location "file:line"):

- ``CONN-DAT-RECORD``: unknown record type;
- ``CONN-DAT-FIELDS``: wrong number of fields for the record type;
- ``CONN-DAT-ORDER``: a record out of place (its parent record is not open, or before any
  invoice).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.cfdi.errors import Problem

from .base import Adapter, orphan_record
from .records import ParsedRecord, decode_text, problem

if TYPE_CHECKING:
    from connector.mappers import Mapping

LAYOUTS_DIR = Path(__file__).parent / "layouts"


def _campos(n: int) -> str:
    return "1 campo" if n == 1 else f"{n} campos"


DEFAULT_LAYOUT = LAYOUTS_DIR / "default.toml"
DEFAULT_MAPPING = LAYOUTS_DIR / "default.mapping.toml"


class LayoutError(ValueError):
    """A layout file that cannot be used; ``problems`` lists every error with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class RecordType:
    name: str
    fields: tuple[str, ...]
    parent: str | None = None
    repeat: bool = False  # the last field repeats: one record per extra value


@dataclass(frozen=True)
class DatLayout:
    name: str
    start: str
    records: dict[str, RecordType]
    delimiter: str = "|"
    comment: str | None = "#"
    ignore: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_toml(cls, path: str | Path) -> DatLayout:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LayoutError(
                [Problem("CONN-LAYOUT", "", f"No se puede leer el layout: {exc}", str(path))]
            ) from exc
        return cls.from_dict(data, source=path.name)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "layout.toml") -> DatLayout:
        errors: list[Problem] = []

        def err(place: str, message: str) -> None:
            errors.append(Problem("CONN-LAYOUT", place, message, f"{source}: {place}"))

        head = data.get("layout", {})
        if not isinstance(head, dict):
            err("[layout]", "debe ser una tabla")
            head = {}
        for k in head:
            if k not in ("name", "delimiter", "start", "comment", "ignore", "description"):
                err(f"[layout] {k}", f"'{k}' no es una opción de [layout]")
        delimiter = head.get("delimiter", "|")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            err("[layout] delimiter", 'debe ser un solo carácter (p. ej. "|")')
            delimiter = "|"
        comment = head.get("comment", "#")
        if comment is not None and not isinstance(comment, str):
            err("[layout] comment", "debe ser texto")
            comment = "#"
        ignore = head.get("ignore", [])
        if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
            err("[layout] ignore", "debe ser una lista de tipos de registro")
            ignore = []
        raw_records = data.get("records", {})
        if not isinstance(raw_records, dict) or not raw_records:
            err("[records]", "faltan los tipos de registro ([records.COMPROBANTE] …)")
            raw_records = {}
        records: dict[str, RecordType] = {}
        for name, spec in raw_records.items():
            place = f"[records.{name}]"
            if not isinstance(spec, dict):
                err(place, "debe ser una tabla con fields")
                continue
            for k in spec:
                if k not in ("fields", "parent", "repeat", "description"):
                    err(
                        f"{place} {k}",
                        f"'{k}' no es una opción de registro (fields, parent, repeat)",
                    )
            fields = spec.get("fields")
            if (
                not isinstance(fields, list)
                or not fields
                or not all(isinstance(f, str) and f for f in fields)
            ):
                err(f"{place} fields", "debe ser la lista ordenada de nombres de campo")
                continue
            if len(set(fields)) != len(fields):
                err(f"{place} fields", "tiene nombres de campo repetidos")
            parent = spec.get("parent")
            if parent is not None and not isinstance(parent, str):
                err(f"{place} parent", "debe ser el nombre de otro tipo de registro")
                parent = None
            records[name] = RecordType(name, tuple(fields), parent, bool(spec.get("repeat", False)))
        start = head.get("start")
        if not isinstance(start, str) or start not in records:
            err(
                "[layout] start",
                f"debe nombrar el registro que inicia cada factura (no existe '{start}')",
            )
        for rt in records.values():
            if rt.parent is not None and rt.parent not in records:
                err(
                    f"[records.{rt.name}] parent",
                    f"el registro padre '{rt.parent}' no está declarado",
                )
            if rt.parent is None and rt.name != start and isinstance(start, str):
                err(f"[records.{rt.name}] parent", f"falta parent (sólo {start} va sin padre)")
            seen = {rt.name}
            p = rt.parent
            while p is not None and p in records:
                if p in seen:
                    err(f"[records.{rt.name}] parent", "la cadena de padres forma un ciclo")
                    break
                seen.add(p)
                p = records[p].parent
        if errors:
            raise LayoutError(errors)
        return cls(
            name=str(head.get("name", source)),
            start=str(start),
            records=records,
            delimiter=delimiter,
            comment=comment or None,
            ignore=frozenset(ignore),
        )


@cache
def _layout_cached(path: str, mtime_ns: int) -> DatLayout:
    return DatLayout.from_toml(path)


def load_layout(path: str | Path) -> DatLayout:
    p = Path(path)
    return _layout_cached(str(p.resolve()), p.stat().st_mtime_ns)


@cache
def _default_mapping_cached(mtime_ns: int) -> Mapping:
    from connector.mappers import Mapping

    return Mapping.from_toml(DEFAULT_MAPPING)


class DatAdapter(Adapter):
    """Options: ``layout`` (path of a layout TOML; default: the shipped ``default.toml``),
    ``encoding`` (default ``auto``: UTF-8 or UTF-16, else cp1252; see ``base.decode_text``)."""

    name = "dat"

    def __init__(
        self, layout: str | Path | DatLayout | None = None, encoding: str = "auto", **options: Any
    ) -> None:
        super().__init__(layout=layout, encoding=encoding, **options)
        if options:
            raise ValueError(
                f"opciones desconocidas para el adaptador dat: {', '.join(sorted(options))}"
            )
        if isinstance(layout, DatLayout):
            self.layout = layout
            self._is_default = False
        else:
            path = Path(layout) if layout else DEFAULT_LAYOUT
            self.layout = load_layout(path)
            self._is_default = path.resolve() == DEFAULT_LAYOUT.resolve()
        self.encoding = encoding

    def default_mapping(self) -> Mapping | None:
        if not self._is_default:
            return None
        return _default_mapping_cached(DEFAULT_MAPPING.stat().st_mtime_ns)

    def parse(self, data: bytes, filename: str) -> Iterator[ParsedRecord]:
        text, decode_problem = decode_text(data, filename, self.encoding)
        if text is None:
            rec = orphan_record(filename, 1)
            rec.problems.append(decode_problem)  # type: ignore[arg-type]
            yield rec
            return
        layout = self.layout
        current: ParsedRecord | None = None
        orphan: ParsedRecord | None = None
        stack: list[ParsedRecord] = []
        for lineno, raw_line in enumerate(text.splitlines(), start=1):
            line = raw_line.lstrip(" \t").rstrip("\r\n")
            if not line.strip() or (layout.comment and line.startswith(layout.comment)):
                continue
            parts = line.split(layout.delimiter)
            rtype = parts[0].strip().upper()
            values = parts[1:]
            where = f"{filename}:{lineno}"

            if rtype == layout.start:
                if orphan is not None:
                    yield orphan
                    orphan = None
                if current is not None:
                    yield current
                current = ParsedRecord(rtype, {}, lineno, filename)
                stack = [current]
                fields = self._fields(layout.records[rtype], values, where, current)
                current.fields = fields[0] if fields else {}
                continue

            if rtype in layout.ignore:
                continue
            target = current
            if target is None:
                if orphan is None:
                    orphan = orphan_record(filename, lineno)
                target = orphan
            rt = layout.records.get(rtype)
            if rt is None:
                target.problems.append(
                    problem(
                        "CONN-DAT-RECORD",
                        f"Tipo de registro desconocido '{parts[0].strip()}' "
                        f"(el layout {layout.name} no lo declara).",
                        where,
                    )
                )
                continue
            if current is None:
                target.problems.append(
                    problem(
                        "CONN-DAT-ORDER",
                        f"El registro {rtype} aparece antes de cualquier {layout.start}: "
                        "no pertenece a ninguna factura.",
                        where,
                    )
                )
                continue
            while stack and stack[-1].type != rt.parent:
                stack.pop()
            if not stack:
                current.problems.append(
                    problem(
                        "CONN-DAT-ORDER",
                        f"El registro {rtype} está fuera de lugar: debe ir después de un registro "
                        f"{rt.parent} de la misma factura.",
                        where,
                    )
                )
                stack = [current]
                continue
            parent = stack[-1]
            added = [
                parent.add(ParsedRecord(rtype, fields, lineno, filename))
                for fields in self._fields(rt, values, where, current)
            ]
            # a record with bad fields stays open as a detached placeholder: its children are
            # dropped with it instead of landing under the previous record of its type
            stack.append(added[-1] if added else ParsedRecord(rtype, {}, lineno, filename))
        if orphan is not None:
            yield orphan
        if current is not None:
            yield current

    @staticmethod
    def _fields(
        rt: RecordType, values: list[str], where: str, invoice: ParsedRecord
    ) -> list[dict[str, str]]:
        n = len(rt.fields)
        if rt.repeat:
            fixed = n - 1
            while len(values) > fixed + 1 and values[-1].strip() == "":
                values = values[:-1]
            if len(values) < n:
                invoice.problems.append(
                    problem(
                        "CONN-DAT-FIELDS",
                        f"El registro {rt.name} necesita al menos {_campos(n)} y trae "
                        f"{len(values)}.",
                        where,
                    )
                )
                return []
            head = dict(zip(rt.fields[:fixed], values[:fixed], strict=True))
            return [{**head, rt.fields[-1]: v} for v in values[fixed:] if v.strip()]
        if len(values) == n + 1 and values[-1].strip() == "":
            values = values[:-1]
        if len(values) != n:
            invoice.problems.append(
                problem(
                    "CONN-DAT-FIELDS",
                    f"El registro {rt.name} debe tener {_campos(n)} ({'|'.join(rt.fields)}) "
                    f"y trae {len(values)}.",
                    where,
                )
            )
            return []
        return [dict(zip(rt.fields, values, strict=True))]
