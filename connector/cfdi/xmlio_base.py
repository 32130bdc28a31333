"""What every part of ``xmlio`` shares: safe parsing (``parse_xml_bytes``, the only way bytes
from outside become an lxml tree), the namespaces and schema locations, how a Decimal is
written, and the registry of typed complements (``COMPLEMENTS``) that ``xml_cce20`` and
``xml_cp31`` fill."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from lxml import etree

from .errors import XmlError
from .model import (
    NS_CFDI,
    NS_PAGO20,
    NS_TFD,
    NS_XSI,
    Comprobante,
)

SAT_DIR = Path(__file__).resolve().parent / "sat"
XSD_WRAPPER = SAT_DIR / "cfdi40_validation_wrapper.xsd"

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # a CFDI with thousands of conceptos stays well below

NS_CFDI3 = "http://www.sat.gob.mx/cfd/3"
SCHEMA_CFDI = "http://www.sat.gob.mx/cfd/4 http://www.sat.gob.mx/sitio_internet/cfd/4/cfdv40.xsd"
SCHEMA_PAGOS = (
    "http://www.sat.gob.mx/Pagos20 http://www.sat.gob.mx/sitio_internet/cfd/Pagos/Pagos20.xsd"
)
SCHEMA_TFD = (
    "http://www.sat.gob.mx/TimbreFiscalDigital "
    "http://www.sat.gob.mx/sitio_internet/cfd/TimbreFiscalDigital/TimbreFiscalDigitalv11.xsd"
)

_C = "{" + NS_CFDI + "}"
_P = "{" + NS_PAGO20 + "}"
_T = "{" + NS_TFD + "}"
_XSI_SCHEMA = "{" + NS_XSI + "}schemaLocation"


# --- safe parsing -------------------------------------------------------------------------------


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


class _NoResolver(etree.Resolver):
    """Refuses every external resource: nothing is ever read from disk or the network."""

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        return self.resolve_string("", context)


_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe: one per thread, reused (creating one costs more than
    # parsing a small CFDI).
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _new_parser()
        parser.resolvers.add(_NoResolver())
        _local.parser = parser
    return parser


def parse_xml_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an lxml element, or raise ``XmlError``.

    Refused: empty input, more than ``max_bytes``, anything that is not well-formed XML, and any
    document with a DOCTYPE (which is where entities, entity bombs and external references
    live). Never touches the network or the file system.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise XmlError.one(
            "CONN-XML-MALFORMED", "El contenido XML debe llegar como bytes, no como texto."
        )
    data = bytes(data)
    if not data.strip():
        raise XmlError.one("CONN-XML-EMPTY", "El archivo XML está vacío.")
    if len(data) > max_bytes:
        raise XmlError.one(
            "CONN-XML-TOO-BIG",
            f"El archivo XML mide {len(data)} bytes; el máximo permitido es {max_bytes} bytes.",
        )
    # A DOCTYPE is never legitimate in a CFDI: refuse it before the parser sees it. (Checked
    # again on the parsed tree for encodings where this byte scan cannot see it.)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _dtd_error()
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (getattr(exc, "lineno", 0) or 0, 0)
        where = f"línea {line}, columna {column}" if column else f"línea {line}"
        raise XmlError.one(
            "CONN-XML-MALFORMED",
            f"El archivo no es un XML bien formado ({where}): {_syntax_es(exc)}.",
        ) from None
    except (ValueError, etree.LxmlError) as exc:
        raise XmlError.one(
            "CONN-XML-MALFORMED",
            f"El archivo no es un XML bien formado ({type(exc).__name__}).",
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _dtd_error()
    return root


# libxml2's syntax errors (lxml's ``ErrorTypes`` names) said in Spanish, with the names libxml2
# quotes (tags, prefixes, attributes, entities) taken from its message; others by their name
_SYNTAX_ES: dict[str, tuple[str, str]] = {
    "ERR_DOCUMENT_EMPTY": ("no empieza con una etiqueta '<'", ""),
    "ERR_DOCUMENT_END": ("hay contenido después del elemento raíz", ""),
    "ERR_TAG_NOT_FINISHED": ("el archivo termina antes de cerrar <{0}>", r"in tag (\S+)"),
    "ERR_TAG_NAME_MISMATCH": (
        "<{0}> se cierra con </{1}>",
        r"mismatch: (\S+) line \d+ and ([^\s,]+)",
    ),
    "ERR_GT_REQUIRED": ("a la etiqueta <{0}> le falta su '>'", r"Start Tag (\S+)"),
    "NS_ERR_UNDEFINED_NAMESPACE": (
        "el prefijo {0} no tiene declarado su espacio de nombres (xmlns:{0})",
        r"prefix (\S+) on",
    ),
    "ERR_ATTRIBUTE_NOT_STARTED": ("el valor de un atributo debe ir entre comillas", ""),
    "ERR_ATTRIBUTE_REDEFINED": ("el atributo {0} aparece dos veces", r"Attribute (\S+) redefined"),
    "ERR_ATTRIBUTE_WITHOUT_VALUE": ("un atributo no tiene valor", ""),
    "ERR_LT_IN_ATTRIBUTE": ("un valor de atributo contiene '<' sin escapar (use &lt;)", ""),
    "ERR_UNDECLARED_ENTITY": (
        "la entidad &{0}; no existe (escriba '&' como &amp;)",
        r"Entity '([^']+)'",
    ),
    "ERR_ENTITYREF_SEMICOL_MISSING": (
        "a una referencia '&' le falta el ';' (escriba '&' como &amp;)",
        "",
    ),
    "ERR_NAME_REQUIRED": ("hay un '&' o '<' sin escapar (use &amp; y &lt;)", ""),
    "ERR_INVALID_CHAR": ("hay un carácter que XML no admite (p. ej. un byte de control)", ""),
    "ERR_INVALID_ENCODING": (
        "hay bytes que no son de la codificación declarada (UTF-8 si no declara otra)",
        "",
    ),
    "ERR_UNSUPPORTED_ENCODING": ("la codificación declarada no se reconoce", ""),
}
_ERROR_NAMES = {v: k for k, v in vars(etree.ErrorTypes).items() if isinstance(v, int)}


def _syntax_es(exc: etree.XMLSyntaxError) -> str:
    name = _ERROR_NAMES.get(exc.code, "")
    template, pattern = _SYNTAX_ES.get(name, ("", ""))
    if not template:
        return f"error de sintaxis XML ({name or exc.code})"
    found = re.search(pattern, exc.msg or "") if pattern else None
    if pattern and found is None:
        return template.split("{", 1)[0].rstrip(" <&") + " (ver la línea)"
    return template.format(*found.groups()) if found else template


def _dtd_error() -> XmlError:
    return XmlError.one(
        "CONN-XML-DTD",
        "El XML trae una declaración DOCTYPE/ENTITY; por seguridad no se aceptan DTD ni "
        "entidades en un CFDI.",
    )


def _d(value: Decimal) -> str:
    """A Decimal as SAT wants it: plain notation, keeping the given exponent (0.160000)."""
    text = str(value)
    if "E" in text or "e" in text:
        text = format(value, "f")
    return text


def _attrs(pairs: list[tuple[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, Decimal):
            out[name] = _d(value)
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


class Complement(NamedTuple):
    """A typed complement other than Pagos 2.0, written and read by its own module, which
    registers it in ``COMPLEMENTS`` (Comercio Exterior 2.0: ``xml_cce20``; Carta Porte 3.1:
    ``xml_cp31``)."""

    field: str  # its Comprobante field
    tag: str  # its element's Clark name
    prefix: str
    namespace: str
    schema: str  # its part of xsi:schemaLocation
    write_text: Callable[[Any, list[str], Any], None]  # (out, cadena fields, node)
    build: Callable[[etree._Element, Any], None]  # (cfdi:Complemento, node)
    read: Callable[[etree._Element], dict[str, Any] | None]  # None: keep it verbatim


COMPLEMENTS: list[Complement] = []


def _typed(c: Comprobante) -> list[Complement]:
    """The registered complements ``c`` carries."""
    return [k for k in COMPLEMENTS if getattr(c, k.field) is not None]


# --- characters XML cannot carry ------------------------------------------------------------------

# what lxml refuses in a value: control characters, U+FFFE, U+FFFF and lone surrogates
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _chars_error(c: Comprobante) -> XmlError:
    """CONN-XML-CHARS at the first field whose value has a character XML cannot carry."""
    path, char = _bad_char(c.model_dump(by_alias=True), "")
    what = f"el carácter U+{ord(char):04X}" if char else "un carácter"
    field = f"El valor de {path}" if path else "Un valor del comprobante"
    return XmlError.one(
        "CONN-XML-CHARS",
        f"{field} contiene {what}, que XML no admite (caracteres de control como NUL; "
        "tabulador y saltos de línea sí se admiten): quítelo del dato en el ERP.",
        path,
    )


def _bad_char(value: Any, path: str) -> tuple[str, str]:
    if isinstance(value, str):
        m = _NOT_XML.search(value)
        return (path, m.group()) if m else ("", "")
    items = (
        value.items() if isinstance(value, dict)
        else ((f"[{i}]", v) for i, v in enumerate(value)) if isinstance(value, list)
        else ()
    )  # fmt: skip
    for key, v in items:
        sub = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        found = _bad_char(v, sub)
        if found[1]:
            return found
    return "", ""
