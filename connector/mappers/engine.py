"""The declarative mapping engine: a TOML file says where each Comprobante field comes from.

The ``[Comprobante]`` table mirrors the CFDI model (``connector.cfdi.model``): its keys are SAT
attribute names, sub-tables are child nodes (``[Comprobante.Receptor]``), arrays of tables are
repeated nodes (``[[Comprobante.Conceptos]]`` with ``each = "CONCEPTO"``). A leaf is a source
reference (``"RECEPTOR.Rfc"`` or a CSV column ``"RFC_CLIENTE"``) or a table with ``field``,
``value``, ``default``, ``lookup``/``key``/``column``, ``transform`` and transform shortcuts.
The full format is documented in ``docs/layouts.md``. The file is compiled into specs by
``specs`` (where ``MappingError`` lives); this module evaluates them on a record.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.adapters.records import ParsedRecord
from connector.cfdi.errors import Problem
from connector.cfdi.model import Comprobante, Concepto, load_invoice

from . import transforms as tf
from .lookups import LookupTable
from .specs import (
    FieldSpec,
    LookupRef,
    MappingError,
    NodeSpec,
    WhenSpec,
    _Compiler,
    _LookupSource,
    _with_default,
)

__all__ = ["Mapping", "MappingError"]

# --- evaluation ---------------------------------------------------------------------------------


_Loc = tuple[ParsedRecord, str | None]  # (record, source field name): formatted only when needed


def _fmt(loc: _Loc) -> str:
    rec, name = loc
    return f"{rec.filename}:{rec.line}:{name}" if name else f"{rec.filename}:{rec.line}"


def _locate_in(path: str, locations: dict[str, _Loc], root: ParsedRecord) -> str:
    """The source of a model path ("Conceptos[1].Cantidad"), else of its nearest parent node."""
    probe = path
    while probe:
        if probe in locations:
            return _fmt(locations[probe])
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return root.location


@dataclass
class _Ctx:
    root: ParsedRecord
    problems: list[Problem]
    locations: dict[str, _Loc]
    reported: set[str]
    missed: set[tuple[str, str]]
    tables: dict[str, LookupTable] = field(default_factory=dict)
    rows: dict[tuple[str, str], dict[str, str] | None] = field(default_factory=dict)
    firsts: dict[str, ParsedRecord] | None = None  # built on first use by ``find``

    def find(self, type_: str) -> ParsedRecord | None:
        """``root.find(type_)`` (first record of that type, depth first), from an index of
        the invoice's records built once instead of a walk per call."""
        firsts = self.firsts
        if firsts is None:
            firsts = self.firsts = {}
            todo = [self.root]
            while todo:
                rec = todo.pop()
                firsts.setdefault(rec.type, rec)
                todo.extend(reversed(rec.children))
        return firsts.get(type_)


@functools.lru_cache(maxsize=1024)
def _split_ref(ref: str) -> tuple[str, str] | None:
    """("TYPE", "Field") of a reference "TYPE.Field", None for a bare "Field"."""
    if "." not in ref:
        return None
    type_, fname = ref.split(".", 1)
    return type_, fname


def _resolve(
    ref: str, scope: ParsedRecord, ctx: _Ctx
) -> tuple[str | None, ParsedRecord | None, str]:
    """A source reference in a scope: "TYPE.Field" or "Field" (this record, then its parents)."""
    typed = _split_ref(ref)
    if typed is not None:
        type_, fname = typed
        rec: ParsedRecord | None = scope
        while rec is not None:
            if rec.type == type_:
                return rec.fields.get(fname), rec, fname
            rec = rec.parent
        found = ctx.find(type_)
        if found is not None:
            return found.fields.get(fname), found, fname
    rec = scope
    while rec is not None:
        if ref in rec.fields:
            return rec.fields[ref], rec, ref
        rec = rec.parent
    return None, None, ref


def _elsewhere(found: ParsedRecord | None, scope: ParsedRecord) -> ParsedRecord | None:
    """A node's record found outside its scope, unless it hangs from another record of the
    scope's type: the ACUENTATERCEROS (or CP_DETALLEMERCANCIA) of one CONCEPTO (CP_MERCANCIA) is
    not that of the others."""
    rec = found.parent if found is not None else None
    while rec is not None:
        if rec.type == scope.type and rec is not scope:
            return None
        rec = rec.parent
    return found


class Mapping:
    """A compiled mapping file: ``Mapping.from_toml(path)``, then ``mapping.map(record)``."""

    def __init__(
        self,
        root: NodeSpec,
        lookups: dict[str, _LookupSource],
        *,
        name: str,
        decimal_comma: bool,
        source: str,
    ) -> None:
        self._root = root
        self._lookups = lookups
        self.name = name
        self.decimal_comma = decimal_comma
        self.source = source

    # construction
    @classmethod
    def from_toml(cls, path: str | Path) -> Mapping:
        """Read and check a mapping file; ``MappingError`` lists EVERY error with its place."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            if isinstance(exc, UnicodeDecodeError):
                why = (
                    f"no es texto UTF-8 (byte 0x{exc.object[exc.start]:02X} en la posición "
                    f"{exc.start}); un mapeo es un archivo TOML de texto, no un archivo binario"
                )
            else:
                why = exc.strerror or str(exc)
            raise MappingError(
                [
                    Problem(
                        "CONN-MAPPING",
                        "",
                        f"No se puede leer el archivo de mapeo: {why}.",
                        str(path),
                    )
                ]
            ) from exc
        return cls.from_string(text, source=path.name, base_dir=path.resolve().parent)

    @classmethod
    def from_string(
        cls, text: str, *, source: str = "mapping.toml", base_dir: Path | None = None
    ) -> Mapping:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise MappingError(
                [
                    Problem(
                        "CONN-MAPPING", "", f"El archivo de mapeo no es TOML válido: {exc}", source
                    )
                ]
            ) from exc
        return cls.from_data(data, source=source, base_dir=base_dir)

    @classmethod
    def from_data(
        cls, data: dict[str, Any], *, source: str = "mapping.toml", base_dir: Path | None = None
    ) -> Mapping:
        """A mapping from a TOML file's parsed tables (one put together from several files)."""
        comp = _Compiler(source, (base_dir or Path.cwd()).resolve())
        options = data.get("mapping", {})
        name, decimal_comma = source, False
        if not isinstance(options, dict):
            comp.err("[mapping]", "debe ser una tabla")
            options = {}
        for k, v in options.items():
            if k == "name":
                name = str(v)
            elif k == "decimal":
                if v not in ("point", "comma"):
                    comp.err(
                        "[mapping] decimal", 'debe ser "point" (1,234.56) o "comma" (1.234,56)'
                    )
                decimal_comma = v == "comma"
            elif k != "description":
                comp.err(
                    f"[mapping] {k}",
                    f"'{k}' no es una opción de [mapping] (name, description, decimal)",
                )
        for k in data:
            if k not in ("mapping", "lookups", "Comprobante"):
                comp.err(
                    f"[{k}]",
                    f"sección desconocida '{k}' (use [mapping], [lookups.*] y [Comprobante])",
                )
        comp.compile_lookups(data.get("lookups", {}))
        root_table = data.get("Comprobante")
        if not isinstance(root_table, dict):
            comp.err("[Comprobante]", "falta la tabla [Comprobante] con los campos del comprobante")
            root_table = {}
        root = comp.compile_node(root_table, Comprobante, "[Comprobante]", False)
        if comp.errors:
            raise MappingError(comp.errors)
        return cls(root, comp.lookups, name=name, decimal_comma=decimal_comma, source=source)

    # defaults
    def defaults(self) -> dict[str, str]:
        """Model path (``Exportacion``, ``Receptor.UsoCFDI``, ``Conceptos.ObjetoImp``) → the
        value a field takes when the source leaves it empty."""
        out: dict[str, str] = {}

        def walk(spec: NodeSpec, prefix: str) -> None:
            for name, (_, fs) in spec.leaves.items():
                if fs.default is not None:
                    out[prefix + name] = fs.default
            for name, sub in spec.nodes.items():
                walk(sub, f"{prefix}{name}.")
            for name, subs in spec.lists.items():
                for sub in subs:
                    walk(sub, f"{prefix}{name}.")

        walk(self._root, "")
        return out

    def with_defaults(self, defaults: dict[str, str], *, place: str = "defaults") -> Mapping:
        """A copy of this mapping where the fields named in ``defaults`` (model paths, as
        ``defaults()`` gives them) take that value when the source leaves them empty;
        ``MappingError`` listing every path the mapping does not read."""
        root = self._root
        problems: list[Problem] = []
        for path, value in defaults.items():
            new = _with_default(root, path.split("."), value)
            if new is None:
                problems.append(
                    Problem(
                        "CONN-MAPPING",
                        f"{place}.{path}",
                        f"El mapeo {self.name} no lee ningún campo {path!r}: un valor por "
                        "omisión solo se da a un campo que el mapeo llena desde el archivo "
                        "(atributos del SAT, p. ej. Exportacion o Receptor.UsoCFDI).",
                    )
                )
            else:
                root = new
        if problems:
            raise MappingError(problems)
        return Mapping(
            root,
            self._lookups,
            name=self.name,
            decimal_comma=self.decimal_comma,
            source=self.source,
        )

    # mapping
    def map(self, record: ParsedRecord) -> tuple[Comprobante | None, list[Problem]]:
        """One invoice's records → (Comprobante or None, problems located "file:line:Field")."""
        comprobante, problems, _ = self.map_located(record)
        return comprobante, problems

    def map_located(
        self, record: ParsedRecord
    ) -> tuple[Comprobante | None, list[Problem], Callable[[str], str]]:
        """Like ``map``, plus ``locate(model_path) -> "file:line:Field"``: where the value of a
        model field came from, so later problems (SAT rules) can point at the source too."""
        comprobante, problems, locate, _ = self.map_labeled(record)
        return comprobante, problems, locate

    def map_labeled(
        self, record: ParsedRecord
    ) -> tuple[Comprobante | None, list[Problem], Callable[[str], str], str]:
        """Like ``map_located``, plus the invoice's serie and folio as read (``""`` when
        neither is): what its errors are labelled with when it could not be mapped."""
        ctx = _Ctx(record, [], {}, set(), set())
        data = self._node(self._root, record, "", ctx)
        comprobante, shape_problems = load_invoice(data)
        for p in shape_problems:
            if p.path in ctx.reported:
                continue
            ctx.problems.append(
                Problem(
                    p.code, p.path, p.message, _locate_in(p.path, ctx.locations, record), p.severity
                )
            )
        locations = ctx.locations
        root = record
        label = f"{data.get('Serie') or ''}{data.get('Folio') or ''}"
        return comprobante, ctx.problems, lambda path: _locate_in(path, locations, root), label

    def _node(self, spec: NodeSpec, scope: ParsedRecord, path: str, ctx: _Ctx) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if path:
            ctx.locations.setdefault(path, (scope, None))
        for name, (kind, fspec) in spec.leaves.items():
            fpath = f"{path}.{name}" if path else name
            if kind == "str":  # most leaves: the text itself
                value = self._text(fspec, scope, fpath, ctx, name)[0]
            else:
                value = self._leaf(kind, fspec, scope, fpath, name, ctx)
            if value is not None:
                out[name] = value
        for name, sub in spec.nodes.items():
            fpath = f"{path}.{name}" if path else name
            sub_scope = self._single_scope(sub, scope, ctx)
            if sub_scope is None:
                continue
            child = self._node(sub, sub_scope, fpath, ctx)
            if child or sub.required or sub.record or sub.when:
                out[name] = child
        for name, subs in spec.lists.items():
            items: list[dict[str, Any]] = []
            fpath = f"{path}.{name}" if path else name
            for sub in subs:
                scopes = (
                    scope.children_of_type(sub.each)
                    if sub.each
                    else ([scope] if self._when(sub.when, scope, ctx) else [])
                )
                for item_scope in scopes:
                    if sub.each and sub.when and not self._when(sub.when, item_scope, ctx):
                        continue
                    items.append(self._node(sub, item_scope, f"{fpath}[{len(items)}]", ctx))
            if items:
                out[name] = items
        if spec.model is Concepto:
            self._drop_empty_impuestos(out)
        return out

    def _single_scope(self, sub: NodeSpec, scope: ParsedRecord, ctx: _Ctx) -> ParsedRecord | None:
        target = scope
        if sub.record:
            found = scope.children_of_type(sub.record)
            elsewhere = found[0] if found else _elsewhere(ctx.find(sub.record), scope)
            if elsewhere is None:
                return None
            target = elsewhere
        if sub.when and not self._when(sub.when, target, ctx):
            return None
        return target

    def _when(self, when: WhenSpec | None, scope: ParsedRecord, ctx: _Ctx) -> bool:
        if when is None:
            return True
        value, _ = self._text(when.spec, scope, when.spec.place, ctx)
        value = value or ""
        if when.equals is not None:
            return value in when.equals
        if when.not_in is not None:
            return value not in when.not_in
        return value != ""

    @staticmethod
    def _drop_empty_impuestos(concepto: dict[str, Any]) -> None:
        """Drop an empty Impuestos node. A tax without Base stays None: amounts.complete derives
        it (Importe − Descuento, rounded by SAT's rules)."""
        if not concepto.get("Impuestos"):
            concepto.pop("Impuestos", None)

    def _text(
        self, spec: FieldSpec, scope: ParsedRecord, fpath: str, ctx: _Ctx, name: str | None = None
    ) -> tuple[str | None, bool]:
        """The text of a field after transforms (None when empty). Second value: from a lookup.
        ``name``: the last part of ``fpath``, when the caller has it."""
        if name is None:
            name = fpath.rsplit(".", 1)[-1]
        if spec.value is not None:
            ctx.locations[fpath] = (scope, name)
            return spec.value, False
        raw: str | None = None
        from_lookup = False
        location: _Loc = (scope, name)
        if spec.ref is not None:
            raw, rec, fname = _resolve(spec.ref, scope, ctx)
            location = (rec, fname) if rec is not None else (scope, spec.ref)
            raw = raw.strip() if raw else None
        if not raw and spec.lookup is not None:
            raw, location = self._lookup(spec.lookup, scope, fpath, ctx)
            from_lookup = raw is not None
        ctx.locations[fpath] = location
        if not raw:
            return spec.default, False
        for transform in spec.transforms:
            try:
                raw = transform(raw)
            except tf.TransformError as exc:
                self._report(ctx, exc.code, fpath, exc.message, location)
                return None, False
        return (raw or None), from_lookup

    def _lookup(
        self, ref: LookupRef, scope: ParsedRecord, fpath: str, ctx: _Ctx
    ) -> tuple[str | None, _Loc]:
        key, rec, fname = _resolve(ref.key, scope, ctx)
        location: _Loc = (rec, fname) if rec is not None else (scope, ref.key)
        key = (key or "").strip()
        if not key:
            return None, location
        cache_key = (ref.table, key)
        if cache_key in ctx.rows:
            row = ctx.rows[cache_key]
        else:
            table = ctx.tables.get(ref.table)
            if table is None:
                table = ctx.tables[ref.table] = self._lookups[ref.table].current()
            row = ctx.rows[cache_key] = table.get(key)
        if row is None:
            if cache_key not in ctx.missed:
                ctx.missed.add(cache_key)
                label = self._lookups[ref.table].label
                label = label[0].upper() + label[1:]
                ctx.problems.append(
                    Problem(
                        "CONN-MAP-LOOKUP",
                        fpath,
                        f"{label} '{key}' no está en la tabla {ctx.tables[ref.table].path.name}.",
                        _fmt(location),
                    )
                )
            ctx.reported.add(fpath)
            return None, location
        value = row.get(ref.column, "").strip()
        return (value or None), location

    def _leaf(
        self, kind: str, spec: FieldSpec, scope: ParsedRecord, fpath: str, name: str, ctx: _Ctx
    ) -> Any:
        if kind == "strs":
            return self._strs(spec, scope, fpath, ctx)
        text, from_lookup = self._text(spec, scope, fpath, ctx, name)
        if text is None:
            return None
        if kind == "decimal":
            try:
                comma = self.decimal_comma and not (spec.explicit_decimal or from_lookup)
                if spec.value is not None or (text == spec.default):
                    comma = False
                return tf.parse_decimal(text, comma)
            except tf.TransformError as exc:
                self._report(ctx, exc.code, fpath, exc.message, ctx.locations[fpath])
                return None
        if kind == "int":
            try:
                number = tf.parse_decimal(text)
                if number != number.to_integral():
                    raise tf.TransformError("CONN-MAP-NUMBER", f"'{text}' no es un número entero")
                return int(number)
            except tf.TransformError as exc:
                self._report(ctx, exc.code, fpath, exc.message, ctx.locations[fpath])
                return None
        return text

    def _strs(
        self, spec: FieldSpec, scope: ParsedRecord, fpath: str, ctx: _Ctx
    ) -> list[str] | None:
        values: list[str] = []
        if spec.each:
            fname = spec.ref or ""
            ctx.locations[fpath] = (scope, None)
            for rec in scope.children_of_type(spec.each):
                v = (rec.fields.get(fname) or "").strip()
                try:
                    for transform in spec.transforms:
                        v = transform(v) if v else v
                except tf.TransformError as exc:
                    self._report(ctx, exc.code, fpath, exc.message, (rec, fname))
                    continue
                if v:
                    values.append(v)
        else:
            text, _ = self._text(spec, scope, fpath, ctx)
            if text:
                values = [v.strip() for v in text.split(spec.split or ",") if v.strip()]
        return values or None

    @staticmethod
    def _report(ctx: _Ctx, code: str, fpath: str, detail: str, location: _Loc) -> None:
        """A field's value refused: the message names the source field and its record (the
        model path, e.g. ``Conceptos[0]``, counts only the records that could be read)."""
        ctx.reported.add(fpath)
        rec, name = location
        field = name or fpath.rsplit(".", 1)[-1]
        message = f"El campo {field} del registro {rec.type} (línea {rec.line}): {detail}."
        ctx.problems.append(Problem(code, fpath, message, _fmt(location)))
