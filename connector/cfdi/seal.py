"""Sealing a CFDI 4.0 with the emisor's CSD, and verifying seals and stamps.

* ``seal_invoice(c, csd)``: the model → sealed XML bytes (NoCertificado, Certificado, Sello).
* ``seal_xml(xml, csd)``: an ERP's own unsealed CFDI XML → the same document, sealed. The
  parsed tree is kept as it is (comments, Addenda, namespaces); only the three attributes change,
  and the Sello signs that very tree's cadena original.
* ``verify_seal(xml)``: the Sello verifies with the embedded Certificado over the cadena
  original (SAT's CFDI40102), and the certificate is consistent with NoCertificado and the
  Emisor.
* ``verify_tfd(xml, pac_cert_der)``: the TimbreFiscalDigital's SelloCFD is the comprobante's
  Sello and its SelloSAT verifies with the PAC/SAT certificate over the TFD cadena.
* ``verify_stamped(xml, uuid=, sealed=, pac_cert_der=)``: what a PAC returned, before it is
  delivered (CFDI 4.0, seal, TFD, UUID, the cadena we sealed unchanged, SelloSAT).
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from typing import Any

from lxml import etree

from .cadena import cadena_original, cadena_tfd
from .csd import Csd, CsdCertificate, load_certificate
from .errors import CsdError, Problem, SealError, XmlError
from .model import NS_CFDI, NS_TFD, Comprobante, attribute_fields
from .xmlio import (
    build_tree,
    check_root,
    parse_own,
    parse_xml_bytes,
    serialize,
    xml_and_cadena,
)

__all__ = ["seal_invoice", "seal_tree", "seal_xml", "verify_seal", "verify_stamped", "verify_tfd"]

_C = "{" + NS_CFDI + "}"
_T = "{" + NS_TFD + "}"

MSG_CFDI40102 = (
    "El resultado de la digestión debe ser igual al resultado de la desencripción del sello."
)
MSG_CFDI40106 = "EL certificado no cumple con alguno de los valores permitidos."

_COMPROBANTE_ORDER = attribute_fields(Comprobante)


def _fecha(value: str | None) -> datetime:
    try:
        return datetime.fromisoformat(value or "")
    except ValueError:
        raise CsdError.one(
            "CFDI40101",
            f"El campo Fecha no cumple con el patrón requerido: {value!r}.",
            "Fecha",
        ) from None


def _complete(c: Comprobante) -> Comprobante:
    """Derived amounts computed by SAT's rules, when the amounts module is available."""
    try:
        from . import amounts
    except ImportError:  # pragma: no cover - the module ships with the package
        return c
    return amounts.complete(c)


def _refuse_stamped() -> SealError:
    return SealError.one(
        "CONN-SEAL-STAMPED",
        "El comprobante ya está timbrado (trae TimbreFiscalDigital); sellarlo de nuevo "
        "invalidaría el timbre.",
        "Complemento.TimbreFiscalDigital",
    )


def _seal(
    c: Comprobante, csd: Csd, *, complete: bool = True
) -> tuple[str | None, etree._Element | None]:
    """The sealed document: as text (the usual case), or as a tree when it has parts only the
    element path and SAT's XSLT handle (verbatim complements, Parte). ``complete=False``: the
    caller already ran ``amounts.complete`` on ``c``."""
    if c.TimbreFiscalDigital is not None:
        raise _refuse_stamped()
    csd.check_can_seal(c.Emisor.Rfc, _fecha(c.Fecha))
    completed = _complete(c) if complete else c
    # a new root node (amounts.complete copies it): ours to fill in
    c = completed if completed is not c else c.model_copy()
    seal_fields = {
        "NoCertificado": csd.no_certificado,
        # placeholders, filled in below: they keep their XSD positions and are not in the
        # cadena; the certificate (base64, ~2 KB) need not be scanned for bad characters
        "Certificado": "",
        "Sello": "",
    }
    c.__dict__.update(seal_fields)
    c.__pydantic_fields_set__.update(seal_fields)
    # document and cadena in one walk of the model, unless only lxml / SAT's XSLT can do them
    text, cadena = xml_and_cadena(c)
    if text is not None and cadena is not None:
        # The first ' Sello=""' and ' Certificado=""' are the root's: every value written
        # before them is escaped (no quotes); both values are base64.
        text = text.replace(' Sello=""', f' Sello="{csd.sign(cadena)}"', 1)
        return text.replace(' Certificado=""', f' Certificado="{csd.certificado_b64}"', 1), None
    c = c.model_copy(update={"Certificado": csd.certificado_b64})
    root = build_tree(c)
    root.set("Sello", csd.sign(cadena if cadena is not None else cadena_original(root)))
    return None, root


def seal_tree(c: Comprobante, csd: Csd) -> etree._Element:
    """The sealed lxml tree of ``c`` (what ``seal_invoice`` serializes): the sealed bytes
    parsed once, so its source lines (and XSD messages about it) are those of the bytes."""
    text, root = _seal(c, csd)
    return root if root is not None else parse_own(text or "")


def seal_invoice(c: Comprobante, csd: Csd, *, complete: bool = True) -> bytes:
    """Seal a Comprobante with the CSD: sealed CFDI 4.0 XML bytes (UTF-8).

    Missing derived amounts are computed first (``amounts.complete``; ``complete=False``: the
    caller did, on this very ``c``). Raises ``CsdError`` when the CSD cannot seal it (expired
    at Fecha, another RFC) and ``SealError`` when the comprobante is already stamped.
    """
    text, root = _seal(c, csd, complete=complete)
    return text.encode("utf-8") if text is not None else serialize(root)  # type: ignore[arg-type]


def seal_xml(xml_bytes: bytes, csd: Csd) -> bytes:
    """Seal an unsealed CFDI 4.0 XML document as it is (an ERP's own XML drop)."""
    root = parse_xml_bytes(xml_bytes)
    check_root(root)
    if root.find(f"{_C}Complemento/{_T}TimbreFiscalDigital") is not None:
        raise _refuse_stamped()
    emisor = root.find(_C + "Emisor")
    rfc = emisor.get("Rfc", "") if emisor is not None else ""
    csd.check_can_seal(rfc, _fecha(root.get("Fecha")))
    if any(root.get(n) is None for n in ("Sello", "NoCertificado", "Certificado")):
        _reorder_with_seal_attributes(root)
    root.set("NoCertificado", csd.no_certificado)
    root.set("Certificado", csd.certificado_b64)
    root.set("Sello", "")
    root.set("Sello", csd.sign(cadena_original(root)))
    return serialize(root)


def _reorder_with_seal_attributes(root: etree._Element) -> None:
    """Add Sello/NoCertificado/Certificado where the XSD puts them (attribute order is cosmetic
    in XML, but people read these files)."""
    current = dict(root.attrib)
    for n in ("Sello", "NoCertificado", "Certificado"):
        current.setdefault(n, "")
    ordered: dict[str, str] = {k: v for k, v in current.items() if k.startswith("{")}
    for n in _COMPROBANTE_ORDER:
        if n in current:
            ordered[n] = current[n]
    for k, v in current.items():
        ordered.setdefault(k, v)
    root.attrib.clear()
    for k, v in ordered.items():
        root.set(k, v)


# --- verification -------------------------------------------------------------------------------


def _root_of(xml: Any) -> etree._Element:
    if isinstance(xml, bytes | bytearray | memoryview):
        return parse_xml_bytes(bytes(xml))
    if isinstance(xml, etree._ElementTree):
        return xml.getroot()
    if isinstance(xml, etree._Element):
        return xml
    if isinstance(xml, Comprobante):
        return build_tree(xml)
    raise TypeError(f"se esperaba XML (bytes o elemento lxml), no {type(xml)!r}")


@lru_cache(maxsize=32)
def _certificate(der: bytes) -> CsdCertificate:
    """A parsed certificate; an emisor's CSD and a PAC's certificate repeat on every invoice."""
    return CsdCertificate.from_cert(load_certificate(der))


@lru_cache(maxsize=32)
def _embedded(cert_b64: str) -> tuple[CsdCertificate, bool]:
    """A Comprobante's Certificado attribute → (its certificate, whether it is an e.firma):
    decoded and examined once per certificate, not on every invoice. ``ValueError`` or
    ``CsdError`` when it is not a certificate (never cached)."""
    cert = _certificate(base64.b64decode("".join(cert_b64.split()), validate=True))
    return cert, cert.is_fiel


def verify_seal(xml: bytes | etree._Element | Comprobante) -> list[Problem]:
    """Problems with the comprobante's seal; an empty list when it verifies."""
    try:
        root = _root_of(xml)
        check_root(root)
    except XmlError as exc:
        return list(exc.problems)
    problems: list[Problem] = []
    cert_b64 = root.get("Certificado")
    try:
        if not cert_b64:
            raise ValueError
        cert, is_fiel = _embedded(cert_b64)
    except (ValueError, CsdError):
        return [
            Problem(
                code="CFDI40106",
                path="Certificado",
                message=MSG_CFDI40106
                + (" No viene el atributo Certificado." if not cert_b64 else ""),
            )
        ]
    no_cert = root.get("NoCertificado")
    if no_cert != cert.no_certificado:
        problems.append(
            Problem(
                code="CONN-NOCERTIFICADO",
                path="NoCertificado",
                message=f"El NoCertificado {no_cert!r} no es el número del certificado incluido "
                f"({cert.no_certificado}).",
            )
        )
    emisor = root.find(_C + "Emisor")
    rfc = (emisor.get("Rfc") or "") if emisor is not None else ""
    if rfc.strip().upper() != cert.rfc:
        problems.append(
            Problem(
                code="CONN-CSD-RFC",
                path="Emisor.Rfc",
                message=f"El certificado incluido pertenece al RFC {cert.rfc} y el emisor es "
                f"{rfc or '(vacío)'}.",
            )
        )
    if is_fiel:
        problems.append(
            Problem(
                code="CONN-CSD-FIEL",
                path="Certificado",
                message="El comprobante está sellado con una e.firma (FIEL), no con un CSD.",
            )
        )
    try:  # the certificate must have been valid at the invoice's Fecha
        cert.check(cert.rfc, root.get("Fecha") or "")
    except CsdError as exc:
        problems.extend(exc.problems)
    sello = root.get("Sello")
    if not sello or not cert.verify(cadena_original(root).encode("utf-8"), sello):
        problems.append(
            Problem(
                code="CFDI40102",
                path="Sello",
                message=MSG_CFDI40102 + (" No viene el atributo Sello." if not sello else ""),
            )
        )
    return problems


def verify_tfd(xml: bytes | etree._Element | Comprobante, pac_cert_der: bytes) -> list[Problem]:
    """Problems with the TimbreFiscalDigital; an empty list when the stamp verifies."""
    try:
        root = _root_of(xml)
        check_root(root)
    except XmlError as exc:
        return list(exc.problems)
    tfd = root.find(f"{_C}Complemento/{_T}TimbreFiscalDigital")
    if tfd is None:
        return [
            Problem(
                code="CONN-TFD-MISSING",
                path="Complemento.TimbreFiscalDigital",
                message="El comprobante no trae TimbreFiscalDigital (no está timbrado).",
            )
        ]
    problems: list[Problem] = []
    if tfd.get("SelloCFD") != root.get("Sello"):
        problems.append(
            Problem(
                code="CONN-TFD-SELLOCFD",
                path="Complemento.TimbreFiscalDigital.SelloCFD",
                message="El SelloCFD del timbre no es igual al Sello del comprobante.",
            )
        )
    try:
        pac = _certificate(pac_cert_der)
    except CsdError as exc:
        return problems + [
            Problem(
                code="CONN-TFD-CERT",
                path="Complemento.TimbreFiscalDigital.NoCertificadoSAT",
                message=f"El certificado del PAC/SAT no se pudo leer: {exc.problems[0].message}",
            )
        ]
    if tfd.get("NoCertificadoSAT") != pac.no_certificado:
        problems.append(
            Problem(
                code="CONN-TFD-NOCERTIFICADO",
                path="Complemento.TimbreFiscalDigital.NoCertificadoSAT",
                message=f"El NoCertificadoSAT {tfd.get('NoCertificadoSAT')!r} no es el del "
                f"certificado indicado ({pac.no_certificado}).",
            )
        )
    sello_sat = tfd.get("SelloSAT") or ""
    if not sello_sat or not pac.verify(cadena_tfd(tfd).encode("utf-8"), sello_sat):
        problems.append(
            Problem(
                code="CONN-TFD-SELLOSAT",
                path="Complemento.TimbreFiscalDigital.SelloSAT",
                message="El SelloSAT del timbre no corresponde a la cadena original del timbre "
                "con el certificado del PAC/SAT.",
            )
        )
    return problems


def verify_stamped(
    xml: bytes,
    *,
    uuid: str | None = None,
    sealed: bytes | None = None,
    pac_cert_der: bytes | None = None,
) -> list[Problem]:
    """What a PAC returned, checked before it is delivered; an empty list when it holds.

    It parses as a CFDI 4.0, its Sello verifies (``verify_seal``), it carries a
    TimbreFiscalDigital whose SelloCFD is the Sello and whose UUID is ``uuid`` (the one the PAC
    reported); with ``sealed`` (stamp mode: the bytes we sent) its cadena original is the one we
    sealed, so the PAC altered nothing; with ``pac_cert_der`` the SelloSAT verifies too
    (``verify_tfd``)."""
    try:
        root = parse_xml_bytes(xml)
        check_root(root)
    except XmlError as exc:
        return list(exc.problems)
    if root.get("Version") != "4.0":
        return [
            Problem(
                code="CONN-PAC-XML",
                path="Version",
                message=f"El comprobante no es CFDI 4.0 (Version {root.get('Version')!r}).",
            )
        ]
    problems = verify_seal(root)
    tfd = root.find(f"{_C}Complemento/{_T}TimbreFiscalDigital")
    if tfd is None:
        return problems + [
            Problem(
                code="CONN-TFD-MISSING",
                path="Complemento.TimbreFiscalDigital",
                message="El comprobante no trae TimbreFiscalDigital (no está timbrado).",
            )
        ]
    if pac_cert_der is not None:
        problems.extend(verify_tfd(root, pac_cert_der))
    elif tfd.get("SelloCFD") != root.get("Sello"):
        problems.append(
            Problem(
                code="CONN-TFD-SELLOCFD",
                path="Complemento.TimbreFiscalDigital.SelloCFD",
                message="El SelloCFD del timbre no es igual al Sello del comprobante.",
            )
        )
    got = (tfd.get("UUID") or "").upper()
    if uuid is not None and got != uuid.upper():
        problems.append(
            Problem(
                code="CONN-TFD-UUID",
                path="Complemento.TimbreFiscalDigital.UUID",
                message=f"El UUID del timbre ({got or 'vacío'}) no es el que informó el PAC "
                f"({uuid.upper()}).",
            )
        )
    if sealed is not None:
        try:
            ours = parse_xml_bytes(sealed)
        except XmlError as exc:
            return problems + list(exc.problems)
        # The Sello verified over this document's cadena (above) is ours only if the cadena is
        # the one we signed: a different cadena verifying with our signature would be a
        # SHA-256 collision. So "our Sello, and it verifies" is "the sealed part is unchanged".
        seal_ok = not any(p.code == "CFDI40102" for p in problems)
        if root.get("Sello") != ours.get("Sello") or not seal_ok:
            problems.append(
                Problem(
                    code="CONN-PAC-ALTERADO",
                    path="",
                    message="La cadena original del comprobante timbrado no es la del "
                    "comprobante que sellamos: el PAC alteró la parte sellada.",
                )
            )
    return problems
