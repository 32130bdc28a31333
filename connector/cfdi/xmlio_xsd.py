"""XSD validation against SAT's schemas (``validate_xsd``, compiled once per process, the three
big catalogs checked as sets) and the XSD's limits on a model (``validate_limits``)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from . import xsd_messages as _xm
from .cce20 import NS_CCE20
from .errors import Problem, XmlError
from .model import (
    Comprobante,
)
from .xmlio_base import _C, SAT_DIR, XSD_WRAPPER, parse_xml_bytes
from .xmlio_build import build_tree
from .xmlio_text import parse_own, xml_text

# --- XSD validation -----------------------------------------------------------------------------
#
# libxml2 checks an xs:enumeration facet by walking the whole list, and SAT's catalogs put
# ~52,000 codes in c_ClaveProdServ, ~96,000 in c_CodigoPostal and ~2,400 in c_ClaveUnidad: that
# alone costs tens of milliseconds per invoice. The schema is therefore compiled with those three
# enumerations taken out (everything else exactly SAT's), and the same membership check is done
# here against the very same code lists, as sets. Errors read like libxml2's.

_UNKNOWN_COMPLEMENT = "No matching global element declaration available, but demanded by the strict"
_BIG_CATALOGS = ("c_ClaveProdServ", "c_CodigoPostal", "c_ClaveUnidad")
# catComExt.xsd's ~26,000 fracciones arancelarias: ~1.3 ms per Mercancia walked by libxml2
_BIG_COMEXT = ("c_FraccionArancelaria",)
# catCartaPorte.xsd's ~48,700 c_ClaveProdServCP, ~4,700 c_MaterialPeligroso and ~8,400
# c_Estaciones: ~2 ms per Mercancia walked by libxml2
_BIG_CP = ("c_ClaveProdServCP", "c_MaterialPeligroso", "c_Estaciones")
_XS = "{http://www.w3.org/2001/XMLSchema}"
_CP31 = "{http://www.sat.gob.mx/CartaPorte31}"
_CCE20 = "{" + NS_CCE20 + "}"
_CAT_CFDI = SAT_DIR / "cfd" / "catalogos" / "catCFDI.xsd"
_CAT_COMEXT = SAT_DIR / "cfd" / "catalogos" / "ComExt" / "catComExt.xsd"
_CAT_CP = SAT_DIR / "cfd" / "catalogos" / "CartaPorte" / "catCartaPorte.xsd"
_LIGHTENED = {_CAT_CFDI: _BIG_CATALOGS, _CAT_COMEXT: _BIG_COMEXT, _CAT_CP: _BIG_CP}
_catalog_values: dict[str, frozenset[str]] = {}
_schema: etree.XMLSchema | None = None
_schema_lock = threading.Lock()


def _light_schema_files(tmp: Path) -> Path:
    """Write to ``tmp`` the schema documents that lead to catCFDI.xsd, catComExt.xsd or
    catCartaPorte.xsd, with their big enumerations (``_LIGHTENED``) taken out (their codes go to
    ``_catalog_values``) and every schemaLocation made absolute; returns the wrapper to compile. Files, not an lxml resolver: libxml2 may
    load a schema's imports without asking the resolver while another thread parses a file,
    and the full catalogs would then come back silently."""
    written: dict[Path, Path] = {}

    def light(src: Path) -> bool:
        """True when ``src`` is, or imports, a lightened catalog (then its copy is in
        ``written``)."""
        if src in written:
            return True
        tree = etree.parse(str(src), etree.XMLParser(no_network=True))
        if src in _LIGHTENED:
            for st in tree.getroot().iterchildren(_XS + "simpleType"):
                if st.get("name") in _LIGHTENED[src]:
                    values = []
                    for enum in list(st.iter(_XS + "enumeration")):
                        values.append(enum.get("value", ""))
                        enum.getparent().remove(enum)
                    _catalog_values[st.get("name", "")] = frozenset(values)
        else:
            changed = False
            for ref in tree.getroot().iterchildren(_XS + "import", _XS + "include"):
                location = ref.get("schemaLocation", "")
                if not location or "://" in location:
                    continue
                target = (src.parent / location).resolve()
                if light(target):
                    ref.set("schemaLocation", written[target].as_uri())
                    changed = True
                else:
                    ref.set("schemaLocation", target.as_uri())
            if not changed:
                return False
        written[src] = tmp / f"{len(written)}-{src.name}"
        tree.write(str(written[src]), xml_declaration=True, encoding="UTF-8")
        return True

    if not light(XSD_WRAPPER.resolve()):  # pragma: no cover - only if SAT's files were changed
        raise RuntimeError("catCFDI.xsd no se encuentra entre los esquemas del SAT")
    return written[XSD_WRAPPER.resolve()]


def preload_schema() -> None:
    """Compile SAT's schema now (~0.3 s, once per process): a daemon does it at start, not
    inside its first invoice."""
    _get_schema()


def _get_schema() -> etree.XMLSchema:
    global _schema
    if _schema is None:
        with _schema_lock:
            if _schema is None:
                # SAT's schemas are package files: trusted, imports made absolute above.
                with tempfile.TemporaryDirectory(prefix="cfdi-xsd-") as tmp:
                    wrapper = _light_schema_files(Path(tmp))
                    parser = etree.XMLParser(no_network=True)
                    schema = etree.XMLSchema(etree.parse(str(wrapper), parser))
                missing = [
                    n for n in _BIG_CATALOGS + _BIG_COMEXT + _BIG_CP if not _catalog_values.get(n)
                ]
                if missing:  # pragma: no cover - only if SAT's files were changed
                    raise RuntimeError(f"catálogos no encontrados en catCFDI.xsd: {missing}")
                _schema = schema
    return _schema


def _collapse(value: str) -> str:
    """XSD whiteSpace="collapse" (the catalogs' facet)."""
    spaced = value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return " ".join(part for part in spaced.split(" ") if part)


def _catalog_problems(root: etree._Element, lines: bool) -> list[Problem]:
    if root.tag != _C + "Comprobante":
        return []
    problems: list[Problem] = []
    values = _catalog_values

    def check(el: etree._Element, attr: str, catalog: str) -> None:
        v = el.get(attr)
        if v is None or v in values[catalog] or _collapse(v) in values[catalog]:
            return
        where = f" (línea {el.sourceline})" if lines and el.sourceline else ""
        xpath = el.getroottree().getpath(el)
        tag = etree.QName(el).localname
        detail = _xm.facet_detail("enumeration", f"{attr} de {tag}", v, {"type": catalog})
        problems.append(
            Problem("CONN-XSD", _xm.model_path(xpath, attr), f"{_xm.PREFIX}{where}: {detail}.")
        )

    check(root, "LugarExpedicion", "c_CodigoPostal")
    for conceptos in root.iterchildren(_C + "Conceptos"):
        for k in conceptos.iterchildren(_C + "Concepto"):
            check(k, "ClaveProdServ", "c_ClaveProdServ")
            check(k, "ClaveUnidad", "c_ClaveUnidad")
            for parte in k.iterchildren(_C + "Parte"):
                check(parte, "ClaveProdServ", "c_ClaveProdServ")
    for comp in root.iterchildren(_C + "Complemento"):
        for m in comp.iter(_CP31 + "Mercancia"):
            check(m, "ClaveUnidad", "c_ClaveUnidad")
            check(m, "BienesTransp", "c_ClaveProdServCP")
            check(m, "CveMaterialPeligroso", "c_MaterialPeligroso")
        for u in comp.iter(_CP31 + "Ubicacion"):
            check(u, "NumEstacion", "c_Estaciones")
        for d in comp.iterfind(f"{_CCE20}ComercioExterior/{_CCE20}Emisor/{_CCE20}Domicilio"):
            check(d, "CodigoPostal", "c_CodigoPostal")
        for m in comp.iterfind(f"{_CCE20}ComercioExterior/{_CCE20}Mercancias/{_CCE20}Mercancia"):
            check(m, "FraccionArancelaria", "c_FraccionArancelaria")
    return problems


def validate_xsd(
    xml: bytes | etree._Element | etree._ElementTree, *, lines: bool = True
) -> list[Problem]:
    """Validate against SAT's CFDI 4.0 XSD (with TFD 1.1, Pagos 2.0, Carta Porte 3.1,
    Comercio Exterior 2.0 and Nómina 1.2).

    Returns one ``Problem`` (code ``CONN-XSD``) per schema error and attribute, with its model
    path and a Spanish message naming the field, SAT's limit and the value cut short
    (``xsd_messages``), and the line in the document unless ``lines`` is false; bytes
    that are not XML give the parsing problem instead. A complement whose XSD is not shipped
    gives a ``CONN-XSD-COMPLEMENTO`` warning.
    """
    if isinstance(xml, bytes | bytearray | memoryview):
        try:
            doc: Any = parse_xml_bytes(bytes(xml))
        except XmlError as exc:
            return list(exc.problems)
    else:
        doc = xml
    schema = _get_schema()
    # XMLSchema objects are not safe to share between threads while validating.
    with _schema_lock:
        ok = schema.validate(doc)
        errors = [] if ok else list(schema.error_log)
    root = doc.getroot() if isinstance(doc, etree._ElementTree) else doc
    problems = []
    reported: set[tuple[str, str]] = set()
    for err in errors:
        if _UNKNOWN_COMPLEMENT in err.message:
            # A complement whose XSD is not shipped: it cannot be checked here (the PAC will).
            where = f" (línea {err.line})" if err.line else ""
            problems.append(
                Problem(
                    code="CONN-XSD-COMPLEMENTO",
                    path=err.path or "",
                    message=f"No se validó el complemento{where}: su esquema XSD no se incluye "
                    f"en este conector ({err.message})",
                    severity="warning",
                )
            )
            continue
        problem, about = _xm.xsd_problem(err, root, XSD_WRAPPER, lines=lines)
        if about[1] and about in reported:
            continue  # libxml2 reports a value once per facet and again for its type
        reported.add(about)
        problems.append(problem)
    problems.extend(_catalog_problems(root, lines))
    return problems


_SEAL_PLACEHOLDERS = {"NoCertificado": "0" * 20, "Certificado": "-", "Sello": "-"}


def validate_limits(doc: Comprobante | bytes) -> list[Problem]:
    """SAT's schema checked on an invoice before it is sealed or sent (the document a
    Comprobante builds, or an ERP's unsealed XML): every length, pattern and catalog of the
    XSD, so an invoice the PAC would reject (301) is never sent. Seal attributes not there yet
    get valid placeholders."""
    if isinstance(doc, bytes):
        try:
            root = parse_xml_bytes(doc)
        except XmlError as exc:
            return list(exc.problems)
        for name, placeholder in _SEAL_PLACEHOLDERS.items():
            if not root.get(name):
                root.set(name, placeholder)
        return validate_xsd(root)
    unsealed = {k: v for k, v in _SEAL_PLACEHOLDERS.items() if not getattr(doc, k, None)}
    c = doc.model_copy(update=unsealed) if unsealed else doc
    try:
        text = xml_text(c)
    except XmlError as exc:
        return list(exc.problems)
    return validate_xsd(parse_own(text) if text is not None else build_tree(c), lines=False)
