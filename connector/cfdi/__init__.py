"""The CFDI 4.0 domain, with no I/O of its own: model, amounts, catalogs, SAT rules, XML, seal."""

from .errors import CfdiError, CsdError, Problem, SealError, XmlError
from .model import Comprobante, load_invoice

__all__ = [
    "CfdiError",
    "Comprobante",
    "CsdError",
    "Problem",
    "SealError",
    "XmlError",
    "load_invoice",
]
