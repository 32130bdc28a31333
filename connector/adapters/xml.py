"""XML adapter: a CFDI XML the ERP already produces, one document per file.

The invoice keeps the raw bytes (``InvoiceInput.xml``) so the pipeline can seal an unsealed
document (``seal.seal_xml``) or send a sealed one as it is; ``comprobante`` is
``xmlio.from_xml`` of the bytes. Bytes that are not a usable CFDI give the ``XmlError``'s
problems, located at the file. No mapping is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from connector.cfdi.errors import CfdiError, Problem

from .base import Adapter, InvoiceInput, ParsedRecord, problem

if TYPE_CHECKING:
    from connector.mappers import Mapping


class XmlAdapter(Adapter):
    name = "xml"

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(
                f"opciones desconocidas para el adaptador xml: {', '.join(sorted(options))}"
            )
        super().__init__()

    def parse(self, data: bytes, filename: str) -> Iterator[ParsedRecord]:  # pragma: no cover
        raise NotImplementedError("el adaptador xml entrega el documento entero: use load()")

    def load(self, data: bytes, filename: str, mapping: Mapping | None) -> Iterator[InvoiceInput]:
        from connector.cfdi import xmlio

        try:
            comprobante = xmlio.from_xml(data)
        except CfdiError as exc:
            problems = [
                Problem(p.code, p.path, p.message, p.location or filename, p.severity)
                for p in exc.problems
            ] or [problem("CONN-XML", "El archivo no es un CFDI XML válido.", filename)]
            yield InvoiceInput(0, filename, None, data, problems)
            return
        yield InvoiceInput(0, f"{filename}:1", comprobante, data, [])
