"""Sources (watched folders) and parsers (DAT, CSV, XML) of ERP export files.

The daemon's façade is ``load_invoices(data, filename, adapter=..., options=..., mapping=...)``;
adapters are registered by name in the entry-point group ``connector.adapters``.
"""

from .base import (
    Adapter,
    AdapterNotFound,
    FilePart,
    InvoiceInput,
    ParsedRecord,
    available_adapters,
    check_adapter,
    get_adapter,
    load_invoices,
    load_pair,
)

__all__ = [
    "Adapter",
    "AdapterNotFound",
    "FilePart",
    "InvoiceInput",
    "ParsedRecord",
    "available_adapters",
    "check_adapter",
    "get_adapter",
    "load_invoices",
    "load_pair",
]
