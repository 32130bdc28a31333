"""What the sandbox PAC reads and writes in a document, apart from deciding (``stamping``): its
own certificate (``PacCertificate``, which signs every SelloSAT), the Fecha window, the
certificate embedded in a CFDI, the TFD put in place, the acuses of stamping and cancellation,
and SAT's expresión impresa read back."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from connector.cfdi.model import NS_CFDI, NS_TFD, NS_XSI

from .store import StampRecord

RFC_PROV_CERTIF = "SPR190613I52"
HOURS_72 = timedelta(hours=72)
FUTURE_TOLERANCE = timedelta(minutes=2)
_C = "{" + NS_CFDI + "}"
_T = "{" + NS_TFD + "}"
_X500_UNIQUE_ID = x509.ObjectIdentifier("2.5.4.45")


# --- the sandbox's own certificate ------------------------------------------------------------


class PacCertificate:
    """The certificate whose key signs SelloSAT: RSA 2048, self-signed, SAT-style serial
    (the serial's bytes are the ASCII digits of the 20-digit NoCertificadoSAT)."""

    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self.certificate = cert
        self.certificate_der = cert.public_bytes(serialization.Encoding.DER)
        self.no_certificado = bytes.fromhex(f"{cert.serial_number:x}").decode("ascii")

    @classmethod
    def generate(cls) -> PacCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        number = "20001000000" + "".join(str(secrets.randbelow(10)) for _ in range(9))
        serial = int(number.encode("ascii").hex(), 16)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "SANDBOX PAC CFDI-CONNECTOR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SANDBOX PAC"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "MX"),
                x509.NameAttribute(_X500_UNIQUE_ID, RFC_PROV_CERTIF),
            ]
        )
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=4 * 365))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, base: Path) -> PacCertificate:
        """Keep ``<base>.cer`` (DER) and ``<base>.key`` (PEM) beside the database."""
        cer_path = base.with_name(base.name + ".cer")
        key_path = base.with_name(base.name + ".key")
        if cer_path.exists() and key_path.exists():
            cert = x509.load_der_x509_certificate(cer_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls(key, cert)
        made = cls.generate()
        key_pem = made._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cer_path.write_bytes(made.certificate_der)
        key_path.write_bytes(key_pem)
        return made

    def sign(self, text: str) -> str:
        signature = self._key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")


# --- helpers ----------------------------------------------------------------------------------


def now_local() -> datetime:
    return datetime.now().replace(microsecond=0)


EASTERNMOST_MEXICO = timedelta(hours=-5)  # Quintana Roo: the latest local time in Mexico


def fecha_out_of_window(fecha: datetime) -> bool:
    """True when ``fecha`` (local, naive) is more than 72 h old by the machine's clock, or in
    the future both by the machine's clock and in every Mexican zone."""
    machine = now_local()
    mexico = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + EASTERNMOST_MEXICO
    return fecha < machine - HOURS_72 or fecha > max(machine, mexico) + FUTURE_TOLERANCE


def _parse_fecha(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


@dataclass(frozen=True)
class _CertInfo:
    rfc: str
    not_before: datetime
    not_after: datetime


def _embedded_certificate(b64: str) -> _CertInfo | None:
    """RFC and validity (local naive times) of the certificate inside a CFDI, or None."""
    from connector.cfdi.csd import CsdCertificate, load_certificate
    from connector.cfdi.errors import CsdError

    try:
        cert = CsdCertificate.from_cert(load_certificate(base64.b64decode(b64, validate=False)))
    except (ValueError, TypeError, CsdError):
        return None
    to_local = datetime.now().astimezone().tzinfo
    return _CertInfo(
        rfc=cert.rfc,
        not_before=cert.not_before.astimezone(to_local).replace(tzinfo=None),
        not_after=cert.not_after.astimezone(to_local).replace(tzinfo=None),
    )


def _without_addenda(root: etree._Element) -> etree._Element:
    """What SAT validates: the document without its Addenda (free-form ERP data, not part
    of the CFDI's schema nor of its seal)."""
    if root.find(_C + "Addenda") is None:
        return root
    import copy

    clone = copy.deepcopy(root)
    for addenda in clone.findall(_C + "Addenda"):
        clone.remove(addenda)
    return clone


def _problems_text(problems: list[Any]) -> str:
    return "; ".join(str(p) for p in problems[:20])


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def insert_tfd(root: etree._Element, attrs: dict[str, str]) -> None:
    """Add tfd:TimbreFiscalDigital to cfdi:Complemento (created before any Addenda when
    missing). The sealed attributes are untouched, so the seal still verifies."""
    from connector.cfdi.xmlio import SCHEMA_TFD

    complemento = root.find(_C + "Complemento")
    if complemento is None:
        complemento = etree.Element(_C + "Complemento")
        addenda = root.find(_C + "Addenda")
        if addenda is not None:
            addenda.addprevious(complemento)
        else:
            root.append(complemento)
    tfd = etree.SubElement(complemento, _T + "TimbreFiscalDigital", nsmap={"tfd": NS_TFD})
    tfd.set("{" + NS_XSI + "}schemaLocation", SCHEMA_TFD)
    for name in (
        "Version",
        "UUID",
        "FechaTimbrado",
        "RfcProvCertif",
        "Leyenda",
        "SelloCFD",
        "NoCertificadoSAT",
        "SelloSAT",
    ):
        if attrs.get(name) is not None:
            tfd.set(name, attrs[name])


def parse_expresion_impresa(expresion: str | None) -> dict[str, str]:
    """``?re=…&rr=…&tt=…&id=…`` (or SAT's full verification URL) → its fields."""
    text = (expresion or "").strip().replace("&amp;", "&")
    if "?" in text:
        text = text.split("?", 1)[1]
    fields = parse_qs(text, keep_blank_values=True)
    return {k.lower(): v[0].strip() for k, v in fields.items() if v}


def _same_total(given: str | None, stored: Decimal) -> bool:
    try:
        return Decimal((given or "").strip()) == stored
    except InvalidOperation:
        return False


# --- acuses -------------------------------------------------------------------------------------

NS_ACUSE_ENVIO = "http://sandbox.cfdi-connector/AcuseRecepcion"
NS_CANCELACION = "http://cancelacfd.sat.gob.mx"


def _with_acuse_envio(record: StampRecord, tfd: Any) -> StampRecord:
    root = etree.Element("{" + NS_ACUSE_ENVIO + "}AcuseRecepcion", nsmap={None: NS_ACUSE_ENVIO})
    root.set("UUID", record.uuid)
    root.set("FechaTimbrado", record.fecha_timbrado)
    root.set("RfcEmisor", record.rfc_emisor)
    root.set("RfcReceptor", record.rfc_receptor)
    root.set("Total", str(record.total))
    root.set("NoCertificadoSAT", tfd.NoCertificadoSAT)
    root.set("RfcProvCertif", tfd.RfcProvCertif)
    root.set("CodEstatus", "Comprobante timbrado satisfactoriamente")
    if record.referencia:
        root.set("Referencia", record.referencia)
    from dataclasses import replace

    return replace(record, acuse_envio=_serialize(root))


def acuse_cancelacion(
    record: StampRecord,
    motivo: str,
    folio_sustitucion: str | None,
    when: str,
    estatus: str = "Cancelado sin aceptación",
) -> bytes:
    root = etree.Element("{" + NS_CANCELACION + "}Acuse", nsmap={None: NS_CANCELACION})
    root.set("Fecha", when)
    root.set("RfcEmisor", record.rfc_emisor)
    folios = etree.SubElement(root, "{" + NS_CANCELACION + "}Folios")
    etree.SubElement(folios, "{" + NS_CANCELACION + "}UUID").text = record.uuid
    etree.SubElement(folios, "{" + NS_CANCELACION + "}EstatusUUID").text = "201"
    etree.SubElement(folios, "{" + NS_CANCELACION + "}Motivo").text = motivo
    if folio_sustitucion:
        etree.SubElement(
            folios, "{" + NS_CANCELACION + "}FolioSustitucion"
        ).text = folio_sustitucion
    etree.SubElement(folios, "{" + NS_CANCELACION + "}EstatusCancelacion").text = estatus
    return _serialize(root)
