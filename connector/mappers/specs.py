"""A mapping file compiled: ``MappingError`` (every error of a file, each with its place), the
specs the engine evaluates (``NodeSpec``, ``FieldSpec``, ``WhenSpec``, ``LookupRef``) and the
compiler that checks a ``[Comprobante]`` table against the CFDI model and builds them
(``engine.Mapping.from_string`` runs it). The format is in ``docs/layouts.md``."""

from __future__ import annotations

import contextlib
import types
import typing
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connector.cfdi.errors import Problem

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
