"""The CFDI 4.0 domain, with no I/O of its own: model, amounts, catalogs, SAT rules, XML, seal."""

from .errors import CfdiError, CsdError, Problem, SealError, XmlError
from .model import Comprobante, load_invoice

# Comercio Exterior 2.0 and Carta Porte 3.1 plug into xmlio (their XML) and rules (their rules)
# by registering themselves, so neither imports them back (no import cycle).
from . import rules_cce20, rules_cp31, xml_cce20, xml_cp31  # noqa: E402, F401  isort: skip

__all__ = [
    "CfdiError",
    "Comprobante",
    "CsdError",
    "Problem",
    "SealError",
    "XmlError",
    "load_invoice",
]
