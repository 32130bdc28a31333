"""The emisor's CSD (Certificado de Sello Digital): load it, check it may seal, sign.

SAT issues the certificate as X.509 DER (``.cer``) and the private key as DER PKCS#8
``EncryptedPrivateKeyInfo`` (``.key``) protected by a password. Refused, each with a code and a
Spanish message (``CsdError``): a wrong password, a key that is not the certificate's, an e.firma
(FIEL) instead of a CSD, and — when sealing — a certificate expired or not yet valid at the
invoice's Fecha, or issued to another RFC.

The password is used once, to decrypt the key, and never kept, logged or shown.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import CsdError

__all__ = [
    "Csd",
    "CsdCertificate",
    "load_certificate",
    "MEXICO_TZ",
    "no_certificado",
    "rfc_of",
]

OID_RFC = x509.ObjectIdentifier("2.5.4.45")  # x500UniqueIdentifier: "RFC / RFC del representante"
# CFDI Fecha has no time zone: it is the local time where the invoice is issued. Central Mexico
# time is used to compare it with the certificate's validity (UTC); near the boundary this is as
# precise as the data allows.
MEXICO_TZ = ZoneInfo("America/Mexico_City")
# Stateless descriptors, shared by every signature: OpenSSL does the work (EVP_PKEY_sign with the
# key's cached blinding and CRT values); creating these per call cost ~1 µs of ~700 µs.
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _fmt(dt: datetime) -> str:
    return dt.astimezone(MEXICO_TZ).strftime("%Y-%m-%d %H:%M:%S")


def load_certificate(cer: bytes) -> x509.Certificate:
    """A certificate from DER (SAT's ``.cer``) or PEM bytes, or ``CsdError`` CONN-CSD-CER.
    Its public key is read here too: x509 parses the key lazily, and a damaged key would
    otherwise fail later, at the first verification."""
    try:
        if cer.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cer)
        else:
            cert = x509.load_der_x509_certificate(cer)
        cert.public_key()
        return cert
    except (ValueError, TypeError):
        raise CsdError.one(
            "CONN-CSD-CER", "El archivo de certificado (.cer) no es un certificado X.509 válido."
        ) from None


def no_certificado(cert: x509.Certificate) -> str:
    """SAT's NoCertificado: the serial number's bytes are ASCII digits (20 of them)."""
    serial = cert.serial_number
    raw = serial.to_bytes((serial.bit_length() + 7) // 8 or 1, "big")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if len(text) != 20 or not text.isdigit():
        raise CsdError.one(
            "CONN-CSD-CER",
            "El número de serie del certificado no es un número de certificado del SAT "
            "(20 dígitos); no es un CSD emitido por el SAT.",
        )
    return text


def rfc_of(cert: x509.Certificate) -> str:
    """The holder's RFC from the subject (OID 2.5.4.45, ``"RFC / RFC representante"``)."""
    attrs = cert.subject.get_attributes_for_oid(OID_RFC)
    value = attrs[0].value if attrs else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    rfc = value.split("/")[0].strip().upper()
    if not rfc:
        raise CsdError.one(
            "CONN-CSD-CER", "El certificado no trae el RFC de su titular; no es un CSD del SAT."
        )
    return rfc


def _is_fiel(cert: x509.Certificate) -> bool:
    """An e.firma (FIEL) rather than a CSD.

    A CSD's KeyUsage is digitalSignature + nonRepudiation only and its subject carries an OU
    (the sucursal). The e.firma adds keyAgreement/dataEncipherment and an extended key usage for
    e-mail/client authentication, and has no OU. Any FIEL trait refuses the certificate.
    """
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if ku.key_agreement or ku.data_encipherment:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.EMAIL_PROTECTION in eku or ExtendedKeyUsageOID.CLIENT_AUTH in eku:
            return True
    except x509.ExtensionNotFound:
        pass
    return not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)


@dataclass(frozen=True, slots=True)
class CsdCertificate:
    """The public half: what a certificate says about who may seal and when."""

    certificate: x509.Certificate = field(repr=False)
    rfc: str
    no_certificado: str
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_cert(cls, cert: x509.Certificate) -> CsdCertificate:
        return cls(
            certificate=cert,
            rfc=rfc_of(cert),
            no_certificado=no_certificado(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def certificado_b64(self) -> str:
        """The certificate as the Comprobante's ``Certificado`` attribute (base64 of the DER)."""
        return base64.b64encode(self.der).decode("ascii")

    @property
    def is_fiel(self) -> bool:
        """True for an e.firma (FIEL) certificate, which must not seal invoices."""
        return _is_fiel(self.certificate)

    def check(self, rfc: str, fecha: datetime | str) -> None:
        """``CsdError`` unless this certificate is ``rfc``'s and valid at ``fecha``.

        ``fecha`` is the Comprobante's Fecha (local Mexican time when naive or a string).
        """
        if isinstance(fecha, str):
            try:
                fecha = datetime.fromisoformat(fecha)
            except ValueError:
                raise CsdError.one(
                    "CFDI40101",
                    f"El campo Fecha no cumple con el patrón requerido: {fecha!r}.",
                    "Fecha",
                ) from None
        when = fecha if fecha.tzinfo is not None else fecha.replace(tzinfo=MEXICO_TZ)
        if when < self.not_before:
            raise CsdError.one(
                "CONN-CSD-NOT-YET-VALID",
                f"El CSD {self.no_certificado} es válido a partir del {_fmt(self.not_before)}; "
                f"no puede sellar un comprobante con Fecha {_fmt(when)}.",
                "Fecha",
            )
        if when > self.not_after:
            raise CsdError.one(
                "CONN-CSD-EXPIRED",
                f"El CSD {self.no_certificado} venció el {_fmt(self.not_after)}; no puede sellar "
                f"un comprobante con Fecha {_fmt(when)}. Tramite un CSD nuevo ante el SAT.",
                "Fecha",
            )
        if (rfc or "").strip().upper() != self.rfc:
            raise CsdError.one(
                "CONN-CSD-RFC",
                f"El CSD pertenece al RFC {self.rfc} y el emisor del comprobante es "
                f"{(rfc or '').strip() or '(vacío)'}: sólo el titular del CSD puede sellar.",
                "Emisor.Rfc",
            )

    def verify(self, data: bytes, signature_b64: str) -> bool:
        """True when ``signature_b64`` is this certificate's RSA PKCS#1 v1.5 SHA-256 of data."""
        try:  # some software wraps long base64 values: whitespace is not part of them
            sig = base64.b64decode("".join(signature_b64.split()), validate=True)
        except ValueError:
            return False
        key = self.certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        try:
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


class Csd:
    """A loaded CSD: certificate and decrypted private key (never the password)."""

    __slots__ = ("_key", "_pub", "certificado_b64")

    def __init__(self, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
        self._pub = CsdCertificate.from_cert(cert)
        self._key = key
        self.certificado_b64 = self._pub.certificado_b64

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, cer_der: bytes, key_der: bytes, password: str | bytes) -> Csd:
        """Load SAT's ``.cer`` and ``.key`` bytes; ``CsdError`` when they cannot seal invoices."""
        cert = load_certificate(cer_der)
        if _is_fiel(cert):
            raise CsdError.one(
                "CONN-CSD-FIEL",
                "El certificado es de e.firma (FIEL), no un Certificado de Sello Digital (CSD). "
                "Las facturas se sellan con el CSD que el SAT emite para ese fin.",
            )
        pw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
        key = _load_key(key_der, pw)
        del pw
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CsdError.one(
                "CONN-CSD-KEY", "La llave privada (.key) no es RSA; no es una llave de CSD del SAT."
            )
        cert_pub = cert.public_key()
        if not isinstance(cert_pub, rsa.RSAPublicKey) or (
            cert_pub.public_numbers() != key.public_key().public_numbers()
        ):
            raise CsdError.one(
                "CONN-CSD-MISMATCH",
                "La llave privada (.key) no corresponde al certificado (.cer): revise que ambos "
                "archivos sean del mismo CSD.",
            )
        return cls(cert, key)

    @classmethod
    def from_files(cls, cer: str | Path, key: str | Path, password: str | bytes) -> Csd:
        """Load the CSD from its ``.cer`` and ``.key`` files."""
        try:
            cer_der = Path(cer).read_bytes()
        except OSError as exc:
            raise CsdError.one(
                "CONN-CSD-FILE", f"No se pudo leer el certificado {cer}: {exc.strerror}"
            ) from None
        try:
            key_der = Path(key).read_bytes()
        except OSError as exc:
            raise CsdError.one(
                "CONN-CSD-FILE", f"No se pudo leer la llave privada {key}: {exc.strerror}"
            ) from None
        return cls.load(cer_der, key_der, password)

    # -- what the certificate says ---------------------------------------------------------------

    @property
    def certificate(self) -> CsdCertificate:
        return self._pub

    @property
    def rfc(self) -> str:
        return self._pub.rfc

    @property
    def no_certificado(self) -> str:
        return self._pub.no_certificado

    @property
    def not_before(self) -> datetime:
        return self._pub.not_before

    @property
    def not_after(self) -> datetime:
        return self._pub.not_after

    def __repr__(self) -> str:
        return (
            f"Csd(rfc={self.rfc!r}, no_certificado={self.no_certificado!r}, "
            f"not_before={self.not_before.isoformat()}, not_after={self.not_after.isoformat()})"
        )

    def check_can_seal(self, rfc: str, fecha: datetime | str) -> None:
        """Raise ``CsdError`` unless this CSD may seal an invoice of ``rfc`` dated ``fecha``.

        ``fecha`` is the Comprobante's Fecha (local Mexican time when naive or a string).
        """
        self._pub.check(rfc, fecha)

    def is_valid_at(self, when: datetime | None = None) -> bool:
        when = when or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=MEXICO_TZ)
        return self.not_before <= when <= self.not_after

    # -- signing ---------------------------------------------------------------------------------

    def sign(self, data: bytes | str) -> str:
        """RSA PKCS#1 v1.5 with SHA-256 over ``data`` (UTF-8 when text), base64-encoded."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        sig = self._key.sign(data, _PKCS1V15, _SHA256)
        return base64.b64encode(sig).decode("ascii")

    def verify(self, data: bytes | str, signature_b64: str) -> bool:
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self._pub.verify(data, signature_b64)


def _load_key(key_der: bytes, password: bytes) -> rsa.RSAPrivateKey:
    loader = (
        serialization.load_pem_private_key
        if key_der.lstrip().startswith(b"-----BEGIN")
        else serialization.load_der_private_key
    )
    try:
        key = loader(key_der, password=password or None)
    except TypeError:
        # Not encrypted although a password was given (or the other way round).
        try:
            key = loader(key_der, password=None)
        except TypeError:
            raise CsdError.one(
                "CONN-CSD-PASSWORD",
                "La llave privada (.key) está protegida y no se indicó su contraseña.",
            ) from None
        except ValueError:
            raise _bad_key() from None
    except ValueError as exc:
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise CsdError.one(
                "CONN-CSD-PASSWORD",
                "La contraseña de la llave privada (.key) es incorrecta.",
            ) from None
        raise _bad_key() from None
    except Exception:  # any other decoding failure of untrusted bytes
        raise _bad_key() from None
    return key  # type: ignore[return-value]


def _bad_key() -> CsdError:
    return CsdError.one(
        "CONN-CSD-KEY",
        "El archivo de llave privada (.key) no es una llave PKCS#8 válida (¿archivo dañado o de "
        "otro tipo?).",
    )
