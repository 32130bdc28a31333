"""The CFDI 4.0 domain, with no I/O of its own: model, amounts, catalogs, SAT rules, XML, seal."""

from .errors import CfdiError, CsdError, Problem, SealError, XmlError
from .model import Comprobante, load_invoice

# Comercio Exterior 2.0 plugs into xmlio (its XML) and rules (its rules) by registering itself,
# so neither imports it back (no import cycle).
from . import rules_cce20, xml_cce20  # noqa: E402, F401  isort: skip

__all__ = [
    "CfdiError",
    "Comprobante",
    "CsdError",
    "Problem",
    "SealError",
    "XmlError",
    "load_invoice",
]
