"""CSD-shaped test certificates whose validity a test chooses (SAT's test CSDs have fixed dates).

The shape of a SAT CSD: the holder's RFC in x500UniqueIdentifier (``"RFC / RFC representante"``),
an OU (the sucursal; an e.firma has none), a serial whose bytes are 20 ASCII digits (SAT's
NoCertificado) and KeyUsage digitalSignature + nonRepudiation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

OID_RFC = x509.ObjectIdentifier("2.5.4.45")


def csd_shaped(
    rfc: str, not_after: datetime, *, name: str = "ESCUELA KEMPER URGATE"
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed certificate in the shape of a SAT CSD for ``rfc``, valid for four years
    until ``not_after``, and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "MX"),
            x509.NameAttribute(OID_RFC, f"{rfc} / VADA800927DJ3"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Sucursal 1"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(b"30001000000500009999", "big"))
        .not_valid_before(not_after - timedelta(days=4 * 365))
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key
