"""libxml2's schema errors in Spanish, with the field, the limit and the value (cut).

libxml2 reports a broken facet in English (``[facet 'maxLength'] The value '…1 MB…' has a
length of …``) and cuts its message at 64 KB, limit included. ``xsd_problem`` turns one such
error into a ``Problem`` for the people who fix the ERP data: its path is the model path
(``Conceptos[1].Descripcion``, which adapters turn into file:line:Field), its message names the
field, SAT's limit (read from the schema documents themselves, ``facets``) and the value cut to
``VALUE_CHARS`` characters, so an error file stays small whatever the input.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from lxml import etree

from .errors import Problem

_XS_NS = "http://www.w3.org/2001/XMLSchema"
_XS = "{" + _XS_NS + "}"
VALUE_CHARS = 60
LISTED_VALUES = 30  # an enumeration longer than this is named by its catalog, not listed
PREFIX = "El XML no cumple el esquema XSD del SAT"

# model fields that are lists of the element itself (no plural container element)
_LISTS = frozenset(
    {
        "Parte",
        "Pago",
        "DoctoRelacionado",
        "CfdiRelacionados",
        "InformacionAduanera",
        "CuentaPredial",
    }
)
_SKIP = frozenset({"Comprobante", "Complemento"})
# Carta Porte 3.1 (cp31): its lists, and the wrapper elements the model has as lists
_CP_LISTS = frozenset(
    {"Mercancia", "DocumentacionAduanera", "GuiasIdentificacion", "CantidadTransporta",
     "PartesTransporte"}
)  # fmt: skip
_CP_WRAPPERS = frozenset(
    {("FiguraTransporte", "TiposFigura"), ("RegimenesAduaneros", "RegimenAduaneroCCP")}
)

_ERROR = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'(?:, attribute '([^']+)')?: (.*)", re.S)
_FACET = re.compile(r"\[facet '(\w+)'\]")
_VALUE = re.compile(r"The value '(.*)", re.S)
_ATOMIC = re.compile(r"'(.*)' is not a valid value of the (?:local )?(?:atomic|union) type", re.S)
_EXPECTED = re.compile(r"Expected is(?: one of)? \( (.*?) \)")


def cut(value: str, limit: int = VALUE_CHARS) -> str:
    """``value`` as a message shows it: at most ``limit`` characters."""
    return value if len(value) <= limit else f"{value[:limit]}…"


def _chars(n: int) -> str:
    return "1 carácter" if n == 1 else f"{n} caracteres"


# --- SAT's facets, read from the schema documents -----------------------------------------------


@functools.cache
def facets(wrapper: Path) -> dict[tuple[tuple[str, ...], str], dict[str, Any]]:
    """(element local-name path from a top-level element, attribute) → its facets
    (``maxLength``, ``pattern``, ``enumeration`` … and ``type``, the named type if any), for
    every schema document reachable from ``wrapper``."""
    docs: list[etree._ElementTree] = []
    seen: set[Path] = set()
    todo = [wrapper.resolve()]
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        tree = etree.parse(str(path), etree.XMLParser(no_network=True))
        docs.append(tree)
        for ref in tree.getroot().iterchildren(_XS + "import", _XS + "include"):
            location = ref.get("schemaLocation", "")
            if location and "://" not in location:
                todo.append((path.parent / location).resolve())
    types: dict[str, etree._Element] = {}
    for tree in docs:
        for st in tree.getroot().iterchildren(_XS + "simpleType"):
            types.setdefault(st.get("name", ""), st)

    def of_type(st: etree._Element | None, depth: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {}
        restriction = st.find(_XS + "restriction") if st is not None else None
        if restriction is None or depth > 5:
            return out
        base = restriction.get("base", "")
        if base and not base.startswith("xs:"):
            out.update(of_type(types.get(base.split(":")[-1]), depth + 1))
        local: dict[str, Any] = {}
        for f in restriction:
            if not isinstance(f.tag, str) or f.tag in (_XS + "annotation", _XS + "whiteSpace"):
                continue
            name = etree.QName(f).localname
            if name in ("pattern", "enumeration"):
                local.setdefault(name, []).append(f.get("value", ""))
            else:
                local[name] = f.get("value", "")
        if len(local.get("enumeration", ())) > LISTED_VALUES:
            local["enumeration"] = []  # a big catalog: named, never listed
        out.update(local)
        return out

    index: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
    for tree in docs:
        for attr in tree.getroot().iter(_XS + "attribute"):
            name = attr.get("name")
            if not name:
                continue
            elements = tuple(
                a.get("name", "")
                for a in reversed(list(attr.iterancestors(_XS + "element")))
                if a.get("name")
            )
            type_name = attr.get("type", "").split(":")[-1]
            st = types.get(type_name) if type_name else attr.find(_XS + "simpleType")
            found = of_type(st)
            if type_name:
                found["type"] = type_name
            index.setdefault((elements, name), found)
    return index


def _facets_of(wrapper: Path, elements: list[str], attr: str) -> dict[str, Any]:
    index = facets(wrapper)
    for start in range(len(elements)):
        found = index.get((tuple(elements[start:]), attr))
        if found is not None:
            return found
    return {}


# --- paths --------------------------------------------------------------------------------------


def _steps(xpath: str) -> list[tuple[str, int]]:
    out = []
    for step in xpath.split("/"):
        if not step:
            continue
        name, _, index = step.partition("[")
        out.append((name.split(":")[-1], int(index.rstrip("]") or 1) if index else 1))
    return out


def _plural(container: str, name: str) -> bool:
    for suffix in ("DR", "P", ""):
        if container.endswith(suffix) and name.endswith(suffix):
            c, n = container[: len(container) - len(suffix)], name[: len(name) - len(suffix)]
            if c in (n + "s", n + "es"):
                return True
    return False


def model_path(xpath: str, attr: str | None = None) -> str:
    """The model path of an element path as libxml2 writes it
    (``/cfdi:Comprobante/cfdi:Conceptos/cfdi:Concepto[2]`` + ``Descripcion`` →
    ``Conceptos[1].Descripcion``)."""
    out: list[str] = []
    prev = ""
    steps = _steps(xpath)
    lists = _LISTS | _CP_LISTS if any(n == "CartaPorte" for n, _ in steps) else _LISTS
    for name, index in steps:
        if name in _SKIP:
            continue
        if (prev, name) in _CP_WRAPPERS and lists is not _LISTS:
            out[-1] = f"{prev}[{index - 1}]"
            prev = ""
            continue
        if prev and prev not in lists and _plural(prev, name) and name not in lists:
            out[-1] = f"{prev}[{index - 1}]"
            prev = ""
            continue
        out.append(f"{name}[{index - 1}]" if name in lists else name)
        prev = name
    if attr:
        out.append(attr)
    return ".".join(out)


# --- messages -----------------------------------------------------------------------------------


def _enumeration(values: list[str], type_name: str) -> str:
    if values and len(values) <= LISTED_VALUES:
        return f"no es uno de los valores permitidos por el SAT ({', '.join(values)})"
    catalog = f"el catálogo {type_name}" if type_name else "la lista"
    return f"no está en {catalog} del SAT"


def facet_detail(facet: str, field: str, value: str, found: dict[str, Any]) -> str:
    """The Spanish sentence for ``value`` of ``field`` breaking SAT's ``facet``."""
    shown = f"'{cut(value)}'"
    n = len(value)
    limit = found.get(facet)
    if facet == "maxLength" and limit:
        return f"{field} tiene {_chars(n)} y el SAT admite como máximo {limit}: {shown}"
    if facet == "minLength" and limit:
        return f"{field} tiene {_chars(n)} y el SAT pide al menos {limit}: {shown}"
    if facet == "length" and limit:
        return f"{field} tiene {_chars(n)} y el SAT pide exactamente {limit}: {shown}"
    if facet == "pattern":
        patterns = " o ".join(cut(p) for p in found.get("pattern") or []) or "del SAT"
        return f"el valor {shown} de {field} no cumple el patrón del SAT {patterns}"
    if facet == "enumeration":
        detail = _enumeration(found.get("enumeration") or [], found.get("type", ""))
        return f"el valor {shown} de {field} {detail}"
    bounds = {
        "minInclusive": "es menor que el mínimo del SAT",
        "maxInclusive": "es mayor que el máximo del SAT",
        "minExclusive": "debe ser mayor que",
        "maxExclusive": "debe ser menor que",
        "fractionDigits": "tiene más decimales que los que admite el SAT",
        "totalDigits": "tiene más dígitos que los que admite el SAT",
    }
    if facet in bounds and limit:
        return f"el valor {shown} de {field} {bounds[facet]} ({limit})"
    return f"el valor {shown} de {field} no cumple la restricción {facet} del SAT"


def _element_of(root: etree._Element | None, xpath: str) -> etree._Element | None:
    if root is None or not xpath:
        return None
    namespaces = {k: v for el in (root, *root.iter()) for k, v in el.nsmap.items() if k}
    try:
        found = root.getroottree().xpath(xpath, namespaces=namespaces)
    except etree.XPathError:
        return None
    return found[0] if found and isinstance(found[0], etree._Element) else None


def xsd_problem(
    err: Any, root: etree._Element | None, wrapper: Path, *, lines: bool = True
) -> tuple[Problem, tuple[str, str]]:
    """``Problem`` (code ``CONN-XSD``) for one libxml2 schema error of the document ``root``,
    and the (element path, attribute) it is about (one problem per attribute is enough)."""
    where = f" (línea {err.line})" if lines and err.line else ""
    xpath = err.path or ""
    m = _ERROR.search(err.message)
    if m is None:
        return Problem("CONN-XSD", xpath, f"{PREFIX}{where}: {cut(err.message, 300)}"), (xpath, "")
    elem, attr, rest = m.group(1), m.group(2), m.group(3)
    path = model_path(xpath, attr)
    field = f"{attr} de {elem}" if attr else elem
    facet = _FACET.match(rest)
    el = _element_of(root, xpath)
    if attr:
        value = el.get(attr) if el is not None else None
        if value is None:
            raw = _VALUE.search(rest) or _ATOMIC.search(rest)
            value = raw.group(1).split("' ", 1)[0] if raw else ""
        names = (
            [etree.QName(a).localname for a in reversed([el, *el.iterancestors()])]
            if (el is not None)
            else [name for name, _ in _steps(xpath)]
        )
        found = _facets_of(wrapper, names, attr)
        if facet:
            detail = facet_detail(facet.group(1), field, value, found)
        elif _ATOMIC.search(rest):
            kind = found.get("type") or "del atributo"
            detail = f"el valor '{cut(value)}' de {field} no es válido para el tipo {kind} del SAT"
        elif "is not allowed" in rest:
            detail = f"el atributo {attr} no existe en {elem} según el esquema del SAT"
        elif fixed := re.search(r"fixed value constraint '([^']*)'", rest):
            detail = f"{field} debe ser '{cut(fixed.group(1))}' (no '{cut(value)}')"
        else:
            detail = f"{field}: {cut(rest, 300)}"
    else:
        missing = re.search(r"The attribute '([^']+)' is required but missing", rest)
        expected = _EXPECTED.search(rest)
        names_expected = ""
        if expected:
            names_expected = ", ".join(
                re.sub(r"\{[^}]*\}", "", n).strip() for n in expected.group(1).split(",")
            )
        if missing:
            attr = missing.group(1)
            path = model_path(xpath, attr)
            detail = f"falta {attr} en {elem}, obligatorio en el esquema del SAT"
        elif "Missing child element" in rest:
            detail = f"a {elem} le falta un elemento obligatorio ({names_expected})"
        elif "This element is not expected" in rest:
            tail = f"; se esperaba: {names_expected}" if names_expected else ""
            detail = f"el elemento {elem} no va en ese lugar{tail}"
        else:
            detail = f"{elem}: {cut(rest, 300)}"
    return Problem("CONN-XSD", path, f"{PREFIX}{where}: {detail}."), (xpath, attr or "")
