"""The one invoice factory of the PAC tests (drivers and sandbox): a valid one-concepto Ingreso
sealed with SAT's test CSD, Fecha = a minute ago (the sandbox, like SAT, refuses a Fecha older
than 72 h or in the future); and the self-signed certificate the HTTPS tests use."""

from __future__ import annotations

import datetime as dt
import ipaddress
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
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


def self_signed_for_localhost(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files in
    ``folder``: what the HTTPS tests serve and trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = folder / "cert.pem", folder / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem, key_pem
