"""Sealing and verification (connector.cfdi.seal) with SAT's test CSD and the public samples."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.cfdi.cadena import cadena_original_xslt
from connector.cfdi.csd import Csd
from connector.cfdi.errors import CsdError, SealError
from connector.cfdi.model import NS_CFDI, Comprobante
from connector.cfdi.seal import seal_invoice, seal_xml, verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml, parse_xml_bytes, validate_xsd

from .strategies import CSD_PASSWORD, SAMPLES, TESTCSD, comprobantes, shared_test_csd

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
SAMPLE_I = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
SAMPLE_P = SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml"
PAC_CERT = SAMPLES / "sat_test_pac_cert_30001000000500003456.cer"
C = "{" + NS_CFDI + "}"


def _unstamped_sample() -> Comprobante:
    return from_xml(SAMPLE_I.read_bytes()).model_copy(update={"TimbreFiscalDigital": None})


# --- the samples --------------------------------------------------------------------------------


def test_samples_seals_verify() -> None:
    assert verify_seal(SAMPLE_I.read_bytes()) == []
    assert verify_seal(SAMPLE_P.read_bytes()) == []
    assert verify_seal(parse_xml_bytes(SAMPLE_P.read_bytes())) == []


def test_sample_timbre_verifies_with_the_pac_certificate() -> None:
    assert verify_tfd(SAMPLE_I.read_bytes(), PAC_CERT.read_bytes()) == []


def test_tampering_breaks_the_seal_with_cfdi40102() -> None:
    bad = SAMPLE_I.read_bytes().replace(b'Nombre="MUNICIPIO', b'Nombre="MUNlCIPIO')
    problems = verify_seal(bad)
    assert [p.code for p in problems] == ["CFDI40102"]
    assert problems[0].message.startswith(
        "El resultado de la digestión debe ser igual al resultado de la desencripción del sello."
    )


def test_whitespace_only_changes_keep_the_seal() -> None:
    # normalize-space: extra spaces inside an attribute do not change the cadena
    data = SAMPLE_I.read_bytes().replace(
        b'Nombre="ESCUELA KEMPER URGATE"', b'Nombre="  ESCUELA   KEMPER URGATE "'
    )
    assert verify_seal(data) == []


def test_certificate_problems() -> None:
    data = SAMPLE_I.read_bytes()
    root = parse_xml_bytes(data)
    del root.attrib["Certificado"]
    assert [p.code for p in verify_seal(root)] == ["CFDI40106"]
    root.set("Certificado", base64.b64encode(b"basura").decode())
    assert [p.code for p in verify_seal(root)] == ["CFDI40106"]
    root = parse_xml_bytes(data)
    root.set("NoCertificado", "30001000000500003415")
    codes = [p.code for p in verify_seal(root)]
    assert "CONN-NOCERTIFICADO" in codes and "CFDI40102" in codes  # NoCertificado is in the cadena
    root = parse_xml_bytes(data)
    del root.attrib["Sello"]
    assert [p.code for p in verify_seal(root)] == ["CFDI40102"]


def test_tfd_problems() -> None:
    pac = PAC_CERT.read_bytes()
    data = SAMPLE_I.read_bytes()
    assert [p.code for p in verify_tfd(SAMPLE_P.read_bytes(), pac)] == ["CONN-TFD-MISSING"]
    other = (TESTCSD / "eku9003173c9_csd_2023_30001000000500003416.cer").read_bytes()
    codes = [p.code for p in verify_tfd(data, other)]
    assert codes == ["CONN-TFD-NOCERTIFICADO", "CONN-TFD-SELLOSAT"]
    changed = data.replace(
        b'FechaTimbrado="2025-02-19T08:37:30"', b'FechaTimbrado="2025-02-19T08:37:31"'
    )
    assert [p.code for p in verify_tfd(changed, pac)] == ["CONN-TFD-SELLOSAT"]
    root = parse_xml_bytes(data)
    root.set("Sello", "Zm9v")
    assert "CONN-TFD-SELLOCFD" in [p.code for p in verify_tfd(root, pac)]
    assert [p.code for p in verify_tfd(data, b"no cert")] == ["CONN-TFD-CERT"]


def test_verify_on_bad_bytes_returns_problems() -> None:
    assert verify_seal(b"")[0].code == "CONN-XML-EMPTY"
    assert verify_seal(b"<a/>")[0].code == "CONN-XML-NOT-CFDI"
    assert verify_tfd(b"<a", PAC_CERT.read_bytes())[0].code == "CONN-XML-MALFORMED"


# --- sealing ------------------------------------------------------------------------------------


def test_seal_invoice_reproduces_the_samples_seal() -> None:
    # Same document, same key: PKCS#1 v1.5 is deterministic, so the Sello must be identical.
    original = parse_xml_bytes(SAMPLE_I.read_bytes())
    c = _unstamped_sample().model_copy(
        update={"Sello": None, "Certificado": None, "NoCertificado": None}
    )
    sealed = parse_xml_bytes(seal_invoice(c, shared_test_csd()))
    assert sealed.get("Sello") == original.get("Sello")
    assert sealed.get("NoCertificado") == "30001000000500003416"
    assert sealed.get("Certificado") == original.get("Certificado")


def test_seal_invoice_computes_missing_amounts() -> None:
    c = _unstamped_sample()
    k = c.Conceptos[0]
    raw = c.model_copy(
        update={
            "SubTotal": None,
            "Total": None,
            "Descuento": None,
            "Impuestos": None,
            "Conceptos": [
                k.model_copy(
                    update={
                        "Importe": None,
                        "Impuestos": k.Impuestos.model_copy(
                            update={
                                "Traslados": [
                                    k.Impuestos.Traslados[0].model_copy(
                                        update={"Base": None, "Importe": None}
                                    )
                                ]
                            }
                        ),
                    }
                )
            ],
        }
    )
    sealed = seal_invoice(raw, shared_test_csd())
    assert validate_xsd(sealed) == [] and verify_seal(sealed) == []
    root = parse_xml_bytes(sealed)
    assert root.get("SubTotal") == "3824.16"  # 4 × 956.04
    assert root.find(f"{C}Impuestos").get("TotalImpuestosTrasladados") is not None
    # what the pipeline does: amounts completed once (admission), not again inside the seal
    from connector.cfdi.amounts import complete

    done = complete(raw)
    before = done.model_dump()
    assert seal_invoice(done, shared_test_csd(), complete=False) == sealed
    assert done.model_dump() == before  # the caller's model untouched


def test_seal_refuses_other_rfc_expired_csd_and_stamped_invoices() -> None:
    c = _unstamped_sample()
    other = c.model_copy(update={"Emisor": c.Emisor.model_copy(update={"Rfc": "AAA010101AAA"})})
    with pytest.raises(CsdError) as info:
        seal_invoice(other, shared_test_csd())
    assert info.value.code == "CONN-CSD-RFC"
    base = TESTCSD / "eku9003173c9_csd"
    old = Csd.from_files(base.with_suffix(".cer"), base.with_suffix(".key"), CSD_PASSWORD)
    with pytest.raises(CsdError) as info:
        seal_invoice(c, old)
    assert info.value.code == "CONN-CSD-EXPIRED"
    with pytest.raises(SealError) as info:
        seal_invoice(from_xml(SAMPLE_I.read_bytes()), shared_test_csd())
    assert info.value.code == "CONN-SEAL-STAMPED"
    with pytest.raises(SealError):
        seal_xml(SAMPLE_I.read_bytes(), shared_test_csd())
    with pytest.raises(CsdError) as info:
        seal_invoice(c.model_copy(update={"Fecha": "19/02/2025"}), shared_test_csd())
    assert info.value.code == "CFDI40101"


def test_seal_xml_keeps_the_document_and_signs_it() -> None:
    root = parse_xml_bytes(SAMPLE_P.read_bytes())
    for name in ("Sello", "Certificado", "NoCertificado"):
        del root.attrib[name]
    root.insert(0, etree.Comment(" generado por el ERP "))
    addenda = etree.SubElement(root, C + "Addenda")
    etree.SubElement(addenda, "{urn:erp}Pedido", Numero="PO-778")
    unsealed = etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1")
    sealed = seal_xml(unsealed, shared_test_csd())
    assert sealed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert verify_seal(sealed) == []
    out = parse_xml_bytes(sealed)
    assert out.get("Sello") == parse_xml_bytes(SAMPLE_P.read_bytes()).get("Sello")
    assert out[0].text == " generado por el ERP "
    assert out.find(f"{C}Addenda/{{urn:erp}}Pedido").get("Numero") == "PO-778"
    names = [a for a in out.attrib if not a.startswith("{")]
    assert names.index("Sello") == names.index("Fecha") + 1
    assert names.index("NoCertificado") < names.index("Certificado") < names.index("SubTotal")


def test_seal_xml_replaces_a_previous_seal() -> None:
    resealed = seal_xml(SAMPLE_P.read_bytes(), shared_test_csd())
    assert verify_seal(resealed) == []
    assert parse_xml_bytes(resealed).get("Sello") == parse_xml_bytes(SAMPLE_P.read_bytes()).get(
        "Sello"
    )


def test_seal_xml_with_unknown_complement_signs_the_xslt_cadena() -> None:
    root = parse_xml_bytes(SAMPLE_P.read_bytes())
    comp = root.find(f"{C}Complemento")
    ley = etree.SubElement(
        comp, "{http://www.sat.gob.mx/leyendasFiscales}LeyendasFiscales", Version="1.0"
    )
    etree.SubElement(ley, "{http://www.sat.gob.mx/leyendasFiscales}Leyenda", textoLeyenda="Hola")
    sealed = seal_xml(etree.tostring(root), shared_test_csd())
    out = parse_xml_bytes(sealed)
    cadena = cadena_original_xslt(out)
    assert "|Hola" in cadena
    assert shared_test_csd().verify(cadena, out.get("Sello"))
    assert verify_seal(sealed) == []


def test_seal_xml_refuses_what_is_not_a_cfdi() -> None:
    from connector.cfdi.errors import XmlError

    with pytest.raises(XmlError):
        seal_xml(b"<factura/>", shared_test_csd())
    with pytest.raises(XmlError):
        seal_xml(b"", shared_test_csd())


@PROPS
@given(comprobantes())
def test_generated_invoices_seal_and_verify(c: Comprobante) -> None:
    sealed = seal_invoice(c, shared_test_csd())
    assert verify_seal(sealed) == []
    assert validate_xsd(sealed) == []
    root = parse_xml_bytes(sealed)
    assert shared_test_csd().verify(cadena_original_xslt(root), root.get("Sello"))
    # the sealed XML read back is the same invoice, now with its seal
    back = from_xml(sealed)
    assert back.Sello == root.get("Sello") and back.NoCertificado == "30001000000500003416"
    assert back.Emisor == c.Emisor and back.Conceptos == c.Conceptos


def test_fecha_with_time_zone_is_compared_correctly() -> None:
    csd = shared_test_csd()
    csd.check_can_seal("EKU9003173C9", datetime.fromisoformat("2025-01-01T00:00:00+00:00"))


def test_wrapped_base64_certificate_and_seal_still_verify() -> None:
    root = parse_xml_bytes(SAMPLE_I.read_bytes())
    cert, sello = root.get("Certificado"), root.get("Sello")
    root.set("Certificado", "\n".join(cert[i : i + 76] for i in range(0, len(cert), 76)))
    root.set("Sello", sello[:100] + "\n  " + sello[100:])
    assert verify_seal(root) == []


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(comprobantes(), min_size=8, max_size=8))
def test_sealing_from_several_threads_at_once(invoices: list[Comprobante]) -> None:
    # The pipeline seals from worker threads: parsers, schema and XSLT are shared safely.
    from concurrent.futures import ThreadPoolExecutor

    xml_drop = SAMPLE_P.read_bytes()

    def work(c: Comprobante) -> list[str]:
        sealed = seal_invoice(c, shared_test_csd())
        dropped = seal_xml(xml_drop, shared_test_csd())
        problems = verify_seal(sealed) + validate_xsd(sealed) + verify_seal(dropped)
        root = parse_xml_bytes(sealed)
        if not shared_test_csd().verify(cadena_original_xslt(root), root.get("Sello")):
            problems.append("xslt")
        return [str(p) for p in problems]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, invoices * 2))
    assert results == [[]] * 16


def _sign_anyway(data: bytes, csd: Csd) -> bytes:
    """Seal bypassing check_can_seal: what some other software might have produced."""
    from connector.cfdi.cadena import cadena_original
    from connector.cfdi.xmlio import serialize

    root = parse_xml_bytes(data)
    root.set("NoCertificado", csd.no_certificado)
    root.set("Certificado", csd.certificado_b64)
    root.set("Sello", csd.sign(cadena_original(root)))
    return serialize(root)


def test_verify_flags_a_certificate_expired_at_the_fecha_and_fiel_seals() -> None:
    base = TESTCSD / "eku9003173c9_csd"
    old = Csd.from_files(base.with_suffix(".cer"), base.with_suffix(".key"), CSD_PASSWORD)
    # while it was valid (the sample's Fecha is 2023-06-13, the CSD expired 2023-06-17)
    assert verify_seal(_sign_anyway(SAMPLE_P.read_bytes(), old)) == []
    later = SAMPLE_P.read_bytes().replace(b"2023-06-13T14:15:16", b"2024-06-13T14:15:16")
    codes = [p.code for p in verify_seal(_sign_anyway(later, old))]
    assert codes == ["CONN-CSD-EXPIRED"]  # the signature itself is fine
    # an e.firma cannot be loaded as a CSD; build its signer by hand to emulate other software
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    fiel = TESTCSD / "eku9003173c9_fiel_2023_30001000000500003415"
    cert = x509.load_der_x509_certificate(fiel.with_suffix(".cer").read_bytes())
    key = load_der_private_key(fiel.with_suffix(".key").read_bytes(), CSD_PASSWORD.encode())
    fake = Csd.__new__(Csd)
    from connector.cfdi.csd import CsdCertificate

    object.__setattr__(fake, "_pub", CsdCertificate.from_cert(cert))
    object.__setattr__(fake, "_key", key)
    object.__setattr__(fake, "certificado_b64", fake._pub.certificado_b64)
    codes = [p.code for p in verify_seal(_sign_anyway(SAMPLE_P.read_bytes(), fake))]
    assert codes == ["CONN-CSD-FIEL"]
