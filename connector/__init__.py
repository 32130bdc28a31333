"""ERP ⇄ CFDI 4.0 connector."""

__version__ = "0.1.0"
