"""Declarative mappings from parsed ERP records to the CFDI model (see docs/layouts.md)."""

from .engine import Mapping, MappingError
from .lookups import LookupTable, load_table
from .transforms import TransformError, parse_decimal

__all__ = [
    "LookupTable",
    "Mapping",
    "MappingError",
    "TransformError",
    "load_table",
    "parse_decimal",
]
