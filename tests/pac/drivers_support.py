"""The one invoice factory of the PAC tests (drivers and sandbox): a valid one-concepto Ingreso
sealed with SAT's test CSD, Fecha = a minute ago (the sandbox, like SAT, refuses a Fecha older
than 72 h or in the future)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.cfdi.amounts import complete
from connector.cfdi.csd import Csd
from connector.cfdi.model import Comprobante, load_invoice
from connector.cfdi.seal import seal_invoice

EMISOR = "EKU9003173C9"
RECEPTOR = "CACX7605101P8"


def invoice(
    folio: str,
    *,
    serie: str = "PAC",
    fecha: datetime | None = None,
    rfc: str = EMISOR,
    receptor: str = RECEPTOR,
    uso: str = "G03",
) -> Comprobante:
    when = (fecha or datetime.now() - timedelta(minutes=1)).replace(microsecond=0)
    c, problems = load_invoice(
        {
            "Serie": serie,
            "Folio": folio,
            "Fecha": when.isoformat(),
            "FormaPago": "03",
            "Moneda": "MXN",
            "TipoDeComprobante": "I",
            "Exportacion": "01",
            "MetodoPago": "PUE",
            "LugarExpedicion": "86000",
            "Emisor": {"Rfc": rfc, "Nombre": "ESCUELA KEMPER URGATE", "RegimenFiscal": "601"},
            "Receptor": {
                "Rfc": receptor,
                "Nombre": "XOCHILT CASAS CHAVEZ",
                "DomicilioFiscalReceptor": "36257",
                "RegimenFiscalReceptor": "612",
                "UsoCFDI": uso,
            },
            "Conceptos": [
                {
                    "ClaveProdServ": "52161557",
                    "Cantidad": "2",
                    "ClaveUnidad": "H87",
                    "Unidad": "PIEZA",
                    "Descripcion": f"Artículo de prueba {folio}",
                    "ValorUnitario": "150.00",
                    "ObjetoImp": "02",
                    "Impuestos": {
                        "Traslados": [
                            {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}
                        ]
                    },
                }
            ],
        }
    )
    assert c is not None, problems
    return complete(c)


def load_csd(csd_files: tuple[bytes, bytes, str]) -> Csd:
    cer, key, password = csd_files
    return Csd.load(cer, key, password)


def sealed(csd: Csd, folio: str, **kw: Any) -> bytes:
    return seal_invoice(invoice(folio, **kw), csd)


def total_of(c: Comprobante) -> Decimal:
    assert c.Total is not None
    return c.Total
