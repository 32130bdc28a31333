"""CFDI 4.0 XML: safe parsing, building from the model, reading into the model, XSD validation.

* ``parse_xml_bytes`` is the only way bytes from outside become an lxml tree: no DTD, no
  entities, no network, no file system, a size limit; anything else is an ``XmlError``.
* ``to_xml`` writes attributes in the order SAT's XSD declares them, and each ``Decimal`` as it
  was given (``Decimal("0.160000")`` stays ``0.160000``). It writes text straight from the model
  (``xml_and_cadena``, which also gives the cadena original in the same walk: what sealing
  uses); ``build_tree`` builds the same document element by element.
* ``from_xml`` reads any CFDI 4.0 (stamped or not, Pagos 2.0, other software's output); the
  complements the model does not type are kept verbatim in ``OtrosComplementos``.
* ``validate_xsd`` validates against SAT's schemas (compiled once per process).

The parts live in their own modules, this one is the face the rest of the connector imports:
``xmlio_base`` (safe parsing, namespaces, the registry of typed complements), ``xmlio_build``
(lxml elements), ``xmlio_text`` (the text fast path), ``xmlio_read`` (XML → model) and
``xmlio_xsd`` (SAT's schemas and the XSD's limits).
"""

from __future__ import annotations

from .xmlio_base import (
    COMPLEMENTS,
    DEFAULT_MAX_BYTES,
    NS_CFDI3,
    SAT_DIR,
    SCHEMA_CFDI,
    SCHEMA_PAGOS,
    SCHEMA_TFD,
    XSD_WRAPPER,
    Complement,
    parse_xml_bytes,
)
from .xmlio_build import build_tree
from .xmlio_read import check_root, from_element, from_xml
from .xmlio_text import parse_own, serialize, to_xml, xml_and_cadena, xml_text
from .xmlio_xsd import validate_limits, validate_xsd

__all__ = [
    "COMPLEMENTS",
    "DEFAULT_MAX_BYTES",
    "NS_CFDI3",
    "SAT_DIR",
    "SCHEMA_CFDI",
    "SCHEMA_PAGOS",
    "SCHEMA_TFD",
    "XSD_WRAPPER",
    "Complement",
    "build_tree",
    "check_root",
    "from_element",
    "from_xml",
    "parse_own",
    "parse_xml_bytes",
    "serialize",
    "to_xml",
    "validate_limits",
    "validate_xsd",
    "xml_and_cadena",
    "xml_text",
]
