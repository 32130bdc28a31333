"""The declarative mapping engine: a TOML file says where each Comprobante field comes from.

The ``[Comprobante]`` table mirrors the CFDI model (``connector.cfdi.model``): its keys are SAT
attribute names, sub-tables are child nodes (``[Comprobante.Receptor]``), arrays of tables are
repeated nodes (``[[Comprobante.Conceptos]]`` with ``each = "CONCEPTO"``). A leaf is a source
reference (``"RECEPTOR.Rfc"`` or a CSV column ``"RFC_CLIENTE"``) or a table with ``field``,
``value``, ``default``, ``lookup``/``key``/``column``, ``transform`` and transform shortcuts.
The full format is documented in ``docs/layouts.md``.
"""

from __future__ import annotations

import contextlib
import functools
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connector.adapters.records import ParsedRecord
from connector.cfdi.errors import Problem
from connector.cfdi.model import Comprobante, Concepto, load_invoice

from . import transforms as tf
from .lookups import LookupError_, LookupTable, load_table

_NODE_KEYS = {"each", "record", "when"}
_CONDITION_KEYS = {"equals", "not_equals", "in", "not_in"}
_ALIASES = {"Año": "Anio"}
_UNMAPPABLE = {"OtrosComplementos"}


class MappingError(ValueError):
    """A mapping file that cannot be used; ``problems`` lists every error with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def code(self) -> str:
        return "CONN-MAPPING"


# --- specs --------------------------------------------------------------------------------------


@dataclass
class LookupRef:
    table: str
    key: str  # source reference of the key
    column: str


@dataclass
class _LookupSource:
    """A lookup table of the mapping; re-read when its file changes (cached by mtime)."""

    table: LookupTable
    delimiter: str
    encoding: str
    label: str

    def current(self) -> LookupTable:
        # a file being replaced or gone keeps the last good version
        with contextlib.suppress(LookupError_, OSError):
            self.table = load_table(
                self.table.path, self.table.key, delimiter=self.delimiter, encoding=self.encoding
            )
        return self.table


@dataclass
class FieldSpec:
    place: str
    ref: str | None = None
    value: str | None = None
    default: str | None = None
    lookup: LookupRef | None = None
    transforms: list[tf.Transform] = field(default_factory=list)
    explicit_decimal: bool = False
    each: str | None = None  # list[str] targets: one value per child record of this type
    split: str | None = None  # list[str] targets: split one value


@dataclass
class WhenSpec:
    spec: FieldSpec
    equals: list[str] | None = None
    not_in: list[str] | None = None


@dataclass
class NodeSpec:
    model: type[BaseModel]
    place: str
    each: str | None = None
    record: str | None = None
    when: WhenSpec | None = None
    leaves: dict[str, tuple[str, FieldSpec]] = field(default_factory=dict)  # name -> (kind, spec)
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    lists: dict[str, list[NodeSpec]] = field(default_factory=dict)
    required: bool = False  # a required child node of its parent (Emisor, Receptor)


def _classify(annotation: Any) -> tuple[str, Any]:
    """('model', M) | ('models', M) | ('strs', None) | ('decimal'|'int'|'str', None)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _classify(inner[0])
    if origin is list:
        (item,) = args
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "models", item
        if item is str:
            return "strs", None
        return "unsupported", None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if annotation is Decimal:
        return "decimal", None
    if annotation is int:
        return "int", None
    if annotation is str:
        return "str", None
    return "unsupported", None


class _Compiler:
    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.errors: list[Problem] = []
        self.lookups: dict[str, _LookupSource] = {}

    def err(self, place: str, message: str) -> None:
        self.errors.append(
            Problem(
                code="CONN-MAPPING", path=place, message=message, location=f"{self.source}: {place}"
            )
        )

    # lookups
    def compile_lookups(self, table: Any) -> None:
        if not isinstance(table, dict):
            self.err("[lookups]", "debe ser una tabla de tablas ([lookups.articulos] …)")
            return
        for name, spec in table.items():
            place = f"[lookups.{name}]"
            if not isinstance(spec, dict):
                self.err(place, "debe ser una tabla con file y key")
                continue
            unknown = set(spec) - {"file", "key", "delimiter", "encoding", "label"}
            for k in sorted(unknown):
                self.err(
                    f"{place} {k}",
                    f"'{k}' no es una opción de tabla (file, key, delimiter, encoding, label)",
                )
            file_, key = spec.get("file"), spec.get("key")
            if not isinstance(file_, str) or not file_:
                self.err(
                    f"{place} file", 'falta el archivo CSV de la tabla (file = "articulos.csv")'
                )
                continue
            if not isinstance(key, str) or not key:
                self.err(f"{place} key", 'falta la columna clave de la tabla (key = "codigo")')
                continue
            path = Path(file_)
            if not path.is_absolute():
                path = self.base_dir / path
            try:
                loaded = load_table(
                    path,
                    key,
                    delimiter=str(spec.get("delimiter", ",")),
                    encoding=str(spec.get("encoding", "auto")),
                )
            except LookupError_ as exc:
                self.err(f"{place} file", str(exc))
                continue
            self.lookups[name] = _LookupSource(
                loaded,
                str(spec.get("delimiter", ",")),
                str(spec.get("encoding", "auto")),
                str(spec.get("label", "la clave")),
            )

    # leaves
    def compile_field(
        self, raw: Any, place: str, kind: str, *, condition: bool = False
    ) -> FieldSpec | None:
        if isinstance(raw, str):
            return FieldSpec(place=place, ref=raw)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            self.err(place, f'use texto para los valores fijos: {{ value = "{raw}" }}')
            return None
        if not isinstance(raw, dict):
            self.err(place, 'debe ser una referencia ("REGISTRO.Campo" o columna) o una tabla')
            return None
        spec = FieldSpec(place=place)
        ok = True
        for k, v in raw.items():
            if k in ("field", "each", "split"):
                if not isinstance(v, str) or not v:
                    self.err(f"{place}.{k}", "debe ser texto")
                    ok = False
                    continue
                if k == "field":
                    spec.ref = v
                else:
                    setattr(spec, k, v)
            elif k in ("value", "default"):
                if isinstance(v, bool) or not isinstance(v, str | int):
                    self.err(f"{place}.{k}", 'debe ser texto (p. ej. "01")')
                    ok = False
                    continue
                setattr(spec, k, str(v))
            elif k == "lookup":
                if v not in self.lookups:
                    self.err(
                        f"{place}.lookup",
                        f"la tabla '{v}' no está declarada en [lookups] o no se pudo cargar",
                    )
                    ok = False
                    continue
                key, column = raw.get("key"), raw.get("column")
                if not isinstance(key, str) or not isinstance(column, str):
                    self.err(
                        place,
                        "una búsqueda necesita key (campo origen) y column (columna de la tabla)",
                    )
                    ok = False
                    continue
                table = self.lookups[v].table
                if column not in table.columns:
                    self.err(
                        f"{place}.column",
                        f"la tabla {table.path.name} no tiene la columna '{column}' "
                        f"(columnas: {', '.join(table.columns)})",
                    )
                    ok = False
                    continue
                spec.lookup = LookupRef(v, key, column)
            elif k in ("key", "column"):
                if "lookup" not in raw:
                    self.err(f"{place}.{k}", f"'{k}' sólo se usa junto con lookup")
                    ok = False
            elif k == "transform":
                items = v if isinstance(v, list) else [v]
                for item in items:
                    ok &= self._add_transform(spec, item, f"{place}.transform")
            elif k in tf.FACTORIES:
                ok &= self._add_transform(spec, {k: v}, f"{place}.{k}")
            elif k in _CONDITION_KEYS and condition:
                continue  # handled by compile_when
            else:
                self.err(f"{place}.{k}", f"'{k}' no es una opción de campo")
                ok = False
        if kind == "strs":
            if spec.each is None and spec.split is None and spec.value is None:
                self.err(
                    place, 'una lista de valores necesita each = "REGISTRO" (con field) o split'
                )
                ok = False
        elif spec.each is not None or spec.split is not None:
            self.err(
                place, "each/split sólo sirven para listas de valores (UUIDs, InformacionAduanera…)"
            )
            ok = False
        if spec.ref is None and spec.value is None and spec.default is None and spec.lookup is None:
            self.err(place, "no dice de dónde sale el valor (field, value, default o lookup)")
            ok = False
        return spec if ok else None

    def _add_transform(self, spec: FieldSpec, item: Any, place: str) -> bool:
        if isinstance(item, str):
            name, arg = item, None
        elif isinstance(item, dict) and len(item) == 1:
            ((name, arg),) = item.items()
        else:
            self.err(place, 'cada transformación es un nombre ("upper") o { nombre = argumento }')
            return False
        try:
            spec.transforms.append(tf.build(name, arg))
        except ValueError as exc:
            self.err(place, str(exc))
            return False
        if name == "decimal":
            spec.explicit_decimal = True
        return True

    def compile_when(self, raw: Any, place: str) -> WhenSpec | None:
        spec = self.compile_field(raw, place, "str", condition=True)
        if spec is None:
            return None
        when = WhenSpec(spec)
        if isinstance(raw, dict):
            if "equals" in raw:
                when.equals = [str(raw["equals"])]
            if "in" in raw:
                when.equals = [str(x) for x in raw["in"]] if isinstance(raw["in"], list) else None
                if when.equals is None:
                    self.err(f"{place}.in", "debe ser una lista de valores")
            if "not_equals" in raw:
                when.not_in = [str(raw["not_equals"])]
            if "not_in" in raw:
                when.not_in = (
                    [str(x) for x in raw["not_in"]] if isinstance(raw["not_in"], list) else None
                )
                if when.not_in is None:
                    self.err(f"{place}.not_in", "debe ser una lista de valores")
        return when

    # nodes
    def compile_node(
        self, table: dict[str, Any], model: type[BaseModel], place: str, in_list: bool
    ) -> NodeSpec:
        node = NodeSpec(model=model, place=place)
        fields = model.model_fields
        for key, raw in table.items():
            kplace = f"{place} {key}"
            if key in _NODE_KEYS:
                if key == "when":
                    node.when = self.compile_when(raw, kplace)
                elif not isinstance(raw, str) or not raw:
                    self.err(kplace, "debe ser el nombre de un tipo de registro")
                elif key == "each" and not in_list:
                    self.err(
                        kplace, "each sólo sirve en listas ([[…]]); en un nodo único use record"
                    )
                elif key == "record" and in_list:
                    self.err(
                        kplace, "record sólo sirve en nodos únicos; en listas ([[…]]) use each"
                    )
                else:
                    setattr(node, key, raw)
                continue
            name = _ALIASES.get(key, key)
            if name not in fields or name in _UNMAPPABLE:
                self.err(kplace, f"'{key}' no es un campo de {model.__name__} en CFDI 4.0")
                continue
            kind, sub = _classify(fields[name].annotation)
            if kind == "model":
                if not isinstance(raw, dict):
                    self.err(kplace, f"{key} es un nodo: use una tabla [{place.strip('[]')}.{key}]")
                    continue
                node.nodes[name] = self.compile_node(
                    raw, sub, f"[{place.strip('[]')}.{key}]", False
                )
                node.nodes[name].required = fields[name].is_required()
            elif kind == "models":
                items = raw if isinstance(raw, list) else [raw]
                specs = []
                for i, item in enumerate(items):
                    if not isinstance(item, dict):
                        self.err(
                            kplace,
                            f"{key} es una lista de nodos: use [[{place.strip('[]')}.{key}]]",
                        )
                        continue
                    specs.append(
                        self.compile_node(
                            item, sub, f"[[{place.strip('[]')}.{key}]] #{i + 1}", True
                        )
                    )
                node.lists[name] = specs
            elif kind == "unsupported":
                self.err(kplace, f"'{key}' no se puede mapear")
            else:
                spec = self.compile_field(raw, kplace, kind)
                if spec is not None:
                    node.leaves[name] = (kind, spec)
        given = {_ALIASES.get(k, k) for k in table}
        for name, info in fields.items():
            if info.is_required() and name not in given:
                self.err(
                    f"{place} {name}",
                    f"falta el campo obligatorio {name} de {model.__name__} "
                    "(una referencia, un valor fijo o un default)",
                )
        return node


def _with_default(spec: NodeSpec, parts: list[str], value: str) -> NodeSpec | None:
    """``spec`` with the leaf at ``parts`` defaulting to ``value`` (only the nodes on the path
    are copied), or None when the mapping has no such leaf."""
    name, rest = parts[0], parts[1:]
    if not rest:
        leaf = spec.leaves.get(name)
        if leaf is None:
            return None
        kind, fs = leaf
        return replace(spec, leaves={**spec.leaves, name: (kind, replace(fs, default=value))})
    if name in spec.nodes:
        sub = _with_default(spec.nodes[name], rest, value)
        return None if sub is None else replace(spec, nodes={**spec.nodes, name: sub})
    subs = spec.lists.get(name) or []
    news = [_with_default(sub, rest, value) for sub in subs]
    if all(n is None for n in news):
        return None
    items = [new or old for new, old in zip(news, subs, strict=True)]
    return replace(spec, lists={**spec.lists, name: items})


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
