# ruff: noqa: F811 - pytest fixtures imported from test_sandbox_support
"""The sandbox PAC over real HTTP: FEL Timbrado (WSCFDI33) with a zeep client from the shipped
WSDL, SAT's status service, WSDL publishing, SOAP plumbing and persistence."""

from __future__ import annotations

import http.client
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import zeep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.cfdi import xmlio
from connector.cfdi.cadena import cadena_tfd, cadena_tfd_xslt
from connector.cfdi.csd import Csd, load_certificate, no_certificado
from connector.cfdi.model import NS_CFDI, NS_TFD
from connector.cfdi.seal import verify_seal, verify_tfd
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .test_sandbox_support import (  # noqa: F401 - fixtures
    EMISOR,
    RECEPTOR,
    client,
    hours_ago,
    pac,
    sealed,
)

C = "{" + NS_CFDI + "}"
T = "{" + NS_TFD + "}"
UUID_V4 = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")


def fel(pac: SandboxPac):
    return client("fel_timbrado", pac.fel_timbrado_url)


def timbrar(pac: SandboxPac, xml: bytes, referencia: str | None, password: str = "secret"):
    return fel(pac).TimbrarCFDI(
        usuario="user", password=password, cadenaXML=xml.decode("utf-8"), referencia=referencia
    )


def qr(uuid: str, re_: str, rr: str, tt: Decimal | str) -> str:
    return f"?re={re_}&rr={rr}&tt={tt}&id={uuid}"


# --- stamping ---------------------------------------------------------------------------------


def test_stamp_valid_invoice_gives_a_verifiable_tfd(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "1")
    r = timbrar(pac, xml, "REF-1")

    assert r.OperacionExitosa is True
    assert r.CodigoRespuesta == "200"
    assert r.CreditosRestantes == 9
    assert UUID_V4.match(r.Timbre.UUID)
    stamped = r.XMLResultado.encode("utf-8")
    assert xmlio.validate_xsd(stamped) == []
    assert verify_seal(stamped) == []
    assert verify_tfd(stamped, pac.certificate_der) == []

    root = etree.fromstring(stamped)
    tfd = root.find(f"{C}Complemento/{T}TimbreFiscalDigital")
    assert tfd is not None
    assert tfd.get("Version") == "1.1"
    assert tfd.get("UUID") == r.Timbre.UUID
    assert tfd.get("RfcProvCertif") == "SPR190613I52"
    assert tfd.get("SelloCFD") == root.get("Sello")
    assert tfd.get("NoCertificadoSAT") == pac.no_certificado_sat == r.Timbre.NumeroCertificadoSAT
    assert tfd.get("SelloSAT") == r.Timbre.SelloSAT
    # FechaTimbrado: local time, no zone, to the second
    fecha = tfd.get("FechaTimbrado")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", fecha)
    assert abs(datetime.fromisoformat(fecha) - datetime.now()) < timedelta(minutes=5)
    # TFD cadena equals SAT's XSLT output
    assert cadena_tfd(root) == cadena_tfd_xslt(root)

    # the sealed part is untouched: every attribute of the original survives unchanged
    original = etree.fromstring(xml)
    assert dict(root.attrib) == dict(original.attrib)
    for before, after in zip(original.iter(), root.iter(), strict=False):
        assert before.tag == after.tag
        assert dict(before.attrib) == dict(after.attrib)

    # the sandbox certificate: SAT-style serial (ASCII digits), 20 digits
    cert = load_certificate(pac.certificate_der)
    assert no_certificado(cert) == pac.no_certificado_sat
    assert len(pac.no_certificado_sat) == 20

    [record] = pac.store.stamps()
    assert record.uuid == r.Timbre.UUID
    assert record.referencia == "REF-1"
    assert record.rfc_emisor == EMISOR and record.rfc_receptor == RECEPTOR
    assert record.total == Decimal(root.get("Total"))
    assert record.xml == stamped
    assert record.status == "vigente"
    assert pac.credits("user") == 9


def test_stamp_creates_complemento_before_addenda(pac: SandboxPac, csd: Csd) -> None:
    root = etree.fromstring(sealed(csd, "ADD"))
    addenda = etree.SubElement(root, C + "Addenda")
    etree.SubElement(addenda, "{urn:erp}Pedido", Numero="77")
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    r = timbrar(pac, xml, "REF-ADD")

    assert r.OperacionExitosa, r.MensajeErrorDetallado
    out = etree.fromstring(r.XMLResultado.encode())
    names = [etree.QName(el).localname for el in out]
    assert names.index("Complemento") == names.index("Addenda") - 1
    assert verify_seal(out) == []


def test_same_xml_twice_gives_307_and_the_same_uuid(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "2")
    first = timbrar(pac, xml, "REF-2")
    again = timbrar(pac, xml, "REF-2-OTHER")

    assert again.OperacionExitosa is False
    assert again.CodigoRespuesta == "307"
    assert again.Timbre.UUID == first.Timbre.UUID
    assert again.XMLResultado == first.XMLResultado
    assert pac.store.count() == 1
    assert pac.credits("user") == 9  # only one credit used


def test_same_referencia_gives_the_same_uuid(pac: SandboxPac, csd: Csd) -> None:
    first = timbrar(pac, sealed(csd, "3"), "REF-3")
    other_document = timbrar(pac, sealed(csd, "3-bis"), "REF-3")

    assert other_document.CodigoRespuesta == "307"
    assert other_document.Timbre.UUID == first.Timbre.UUID
    assert pac.store.uuids_for_referencia("REF-3") == [first.Timbre.UUID]


def test_identical_requests_racing_get_one_uuid(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "RACE")

    def send(_: int) -> str:
        r = client("fel_timbrado", pac.fel_timbrado_url, timeout=29).TimbrarCFDI(
            usuario="user", password="secret", cadenaXML=xml.decode(), referencia="REF-RACE"
        )
        return r.Timbre.UUID

    with ThreadPoolExecutor(max_workers=6) as pool:
        uuids = set(pool.map(send, range(6)))

    assert len(uuids) == 1
    assert pac.store.count() == 1
    assert pac.credits("user") == 9


def test_fecha_older_than_72_hours_is_401(pac: SandboxPac, csd: Csd) -> None:
    r = timbrar(pac, sealed(csd, "OLD", fecha=hours_ago(73)), "REF-OLD")
    assert r.OperacionExitosa is False
    assert r.CodigoRespuesta == "401"
    assert r.MensajeError
    assert pac.store.count() == 0
    assert pac.credits("user") == 10


def test_fecha_within_72_hours_is_accepted(pac: SandboxPac, csd: Csd) -> None:
    r = timbrar(pac, sealed(csd, "71H", fecha=hours_ago(71)), "REF-71H")
    assert r.OperacionExitosa, r.MensajeErrorDetallado


def test_fecha_in_the_future_is_401(pac: SandboxPac, csd: Csd) -> None:
    r = timbrar(pac, sealed(csd, "FUT", fecha=hours_ago(-1)), "REF-FUT")
    assert r.CodigoRespuesta == "401"


def test_tampered_document_is_302(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "TAMPER").replace(b'Folio="TAMPER"', b'Folio="TAMPER2"')
    r = timbrar(pac, xml, "REF-T")
    assert r.OperacionExitosa is False
    assert r.CodigoRespuesta == "302"
    assert "CFDI40102" in r.MensajeErrorDetallado
    assert pac.store.count() == 0


def test_certificate_of_another_rfc_is_303(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "RFC").replace(f'Rfc="{EMISOR}"'.encode(), b'Rfc="AAA010101AAA"', 1)
    r = timbrar(pac, xml, "REF-303")
    assert r.CodigoRespuesta == "303"
    assert EMISOR in r.MensajeErrorDetallado


def test_rfc_not_registered_in_the_account_is_402(pac: SandboxPac, csd: Csd) -> None:
    r = fel(pac).TimbrarCFDI(
        usuario="other", password="pw", cadenaXML=sealed(csd, "402").decode(), referencia="R402"
    )
    assert r.CodigoRespuesta == "402"
    assert pac.store.count() == 0


def test_wrong_password_is_an_auth_error_and_nothing_is_stamped(pac: SandboxPac, csd: Csd) -> None:
    r = timbrar(pac, sealed(csd, "AUTH"), "REF-AUTH", password="wrong")
    assert r.OperacionExitosa is False
    assert r.CodigoRespuesta == "203"
    assert "contraseña" in r.MensajeError
    assert pac.store.count() == 0
    [entry] = pac.store.requests(operation="TimbrarCFDI")
    assert (entry.outcome, entry.code, entry.referencia) == ("auth", "203", "REF-AUTH")


@pytest.mark.parametrize(
    "payload",
    [b"<no es xml", b"<cfdi:Comprobante xmlns:cfdi='http://www.sat.gob.mx/cfd/4' Version='4.0'/>"],
    ids=["malformed", "not-xsd-valid"],
)
def test_malformed_or_invalid_xml_is_301(pac: SandboxPac, payload: bytes) -> None:
    r = timbrar(pac, payload, "REF-301")
    assert r.CodigoRespuesta == "301"
    assert r.MensajeErrorDetallado


def test_no_credits_left(tmp_path: Path, csd: Csd) -> None:
    account = SandboxAccount("user", "secret", "C1", creditos=1, csds={EMISOR: csd})
    with SandboxPac(tmp_path / "pac.db", accounts=[account]) as sandbox:
        assert timbrar(sandbox, sealed(csd, "C1"), "RC1").OperacionExitosa
        r = timbrar(sandbox, sealed(csd, "C2"), "RC2")
        assert r.CodigoRespuesta == "905"
        assert sandbox.store.count() == 1
        credits = fel(sandbox).ConsultarCreditos(usuario="user", password="secret")
        [paquete] = credits.Paquetes.DetallesPaqueteCreditos
        assert (paquete.TimbresRestantes, paquete.TimbresUsados, paquete.Timbres) == (0, 1, 1)


def test_requests_log_counts_what_was_sent(pac: SandboxPac, csd: Csd) -> None:
    bad = sealed(csd, "BAD", fecha=hours_ago(80))
    timbrar(pac, bad, "REF-BAD")
    timbrar(pac, sealed(csd, "GOOD"), "REF-GOOD")
    sent = pac.store.requests(operation="TimbrarCFDI", referencia="REF-BAD")
    assert [(e.outcome, e.code) for e in sent] == [("error", "401")]
    assert [e.outcome for e in pac.store.requests(referencia="REF-GOOD")] == ["ok"]


# --- queries, acuses, cancellation, password ------------------------------------------------


def test_recover_by_referencia_and_by_sello(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "REC")
    first = timbrar(pac, xml, "REF-REC")
    svc = fel(pac)

    by_ref = svc.ConsultarTimbrePorReferencia(
        usuario="user", password="secret", referencia="REF-REC"
    )
    assert by_ref.OperacionExitosa is True
    assert by_ref.Timbre.UUID == first.Timbre.UUID
    assert by_ref.XMLResultado == first.XMLResultado

    sello = etree.fromstring(xml).get("Sello")
    by_sello = svc.ConsultarTimbrePorSello(usuario="user", password="secret", sello=sello)
    assert by_sello.Timbre.UUID == first.Timbre.UUID

    missing = svc.ConsultarTimbrePorReferencia(usuario="user", password="secret", referencia="NO")
    assert (missing.OperacionExitosa, missing.CodigoRespuesta) == (False, "404")
    other = svc.ConsultarTimbrePorReferencia(usuario="other", password="pw", referencia="REF-REC")
    assert other.CodigoRespuesta == "404"  # another account's referencia is not visible


def test_acuse_de_envio(pac: SandboxPac, csd: Csd) -> None:
    uuid = timbrar(pac, sealed(csd, "AE"), "REF-AE").Timbre.UUID
    r = fel(pac).ObtenerAcuseEnvio(usuario="user", password="secret", uUID=uuid)
    assert r.OperacionExitosa is True
    acuse = etree.fromstring(r.XMLResultado.encode())
    assert acuse.get("UUID") == uuid
    assert acuse.get("RfcEmisor") == EMISOR


def test_cancel_acuse_and_sat_status(pac: SandboxPac, csd: Csd) -> None:
    stamped = timbrar(pac, sealed(csd, "CAN"), "REF-CAN")
    uuid = stamped.Timbre.UUID
    total = Decimal(etree.fromstring(stamped.XMLResultado.encode()).get("Total"))
    svc = fel(pac)
    sat = client("sat_status", pac.sat_status_url)

    before = sat.Consulta(expresionImpresa=qr(uuid, EMISOR, RECEPTOR, total))
    assert before.Estado == "Vigente"
    assert before.CodigoEstatus.startswith("S - ")
    not_yet = svc.ObtenerAcuseCancelacion(usuario="user", password="secret", uUID=uuid)
    assert not_yet.OperacionExitosa is False

    lista = {
        "DetalleCFDICancelacion": [
            {"UUID": uuid, "Motivo": "02", "RFCReceptor": RECEPTOR, "Total": total}
        ]
    }
    r = svc.CancelarCFDI(
        usuario="user",
        password="secret",
        rFCEmisor=EMISOR,
        listaCFDI=lista,
        clavePrivada_Base64="",
        passwordClavePrivada="",
    )
    assert r.OperacionExitosa is True
    [detalle] = r.DetallesCancelacion.DetalleCancelacion
    assert (detalle.UUID, detalle.CodigoResultado) == (uuid, "201")
    acuse = etree.fromstring(r.XMLAcuse.encode())
    assert acuse.findtext(".//{http://cancelacfd.sat.gob.mx}UUID") == uuid

    again = svc.ObtenerAcuseCancelacion(usuario="user", password="secret", uUID=uuid)
    assert again.OperacionExitosa is True
    assert again.XMLResultado == r.XMLAcuse

    after = sat.Consulta(expresionImpresa=qr(uuid, EMISOR, RECEPTOR, total))
    assert after.Estado == "Cancelado"
    assert after.EstatusCancelacion == "Cancelado sin aceptación"
    assert pac.store.stamps()[0].status == "cancelado"

    twice = svc.CancelarCFDI(usuario="user", password="secret", rFCEmisor=EMISOR, listaCFDI=lista)
    assert twice.DetallesCancelacion.DetalleCancelacion[0].CodigoResultado == "202"
    # status of a consulta is a fact of the stamp: SAT's full verification URL works as well
    url = (
        "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx?"
        f"id={uuid}&re={EMISOR}&rr={RECEPTOR}&tt={total:.6f}&fe=AbCd1234"
    )
    assert sat.Consulta(expresionImpresa=url).Estado == "Cancelado"


@pytest.mark.parametrize(
    ("motivo", "folio", "code"),
    [("01", None, "313"), ("05", None, "312"), ("", None, "312")],
)
def test_cancel_motivo_rules(pac: SandboxPac, csd: Csd, motivo: str, folio, code: str) -> None:
    uuid = timbrar(pac, sealed(csd, f"M{motivo}"), f"REF-M{motivo}").Timbre.UUID
    lista = {
        "DetalleCFDICancelacion": [{"UUID": uuid, "Motivo": motivo, "FolioSustitucion": folio}]
    }
    r = fel(pac).CancelarCFDI(usuario="user", password="secret", rFCEmisor=EMISOR, listaCFDI=lista)
    assert r.OperacionExitosa is False
    assert r.DetallesCancelacion.DetalleCancelacion[0].CodigoResultado == code
    assert pac.store.stamps()[0].status == "vigente"


def test_cancel_motivo_01_with_folio_sustitucion(pac: SandboxPac, csd: Csd) -> None:
    old = timbrar(pac, sealed(csd, "OLD1"), "REF-OLD1").Timbre.UUID
    new = timbrar(pac, sealed(csd, "NEW1"), "REF-NEW1").Timbre.UUID
    lista = {"DetalleCFDICancelacion": [{"UUID": old, "Motivo": "01", "FolioSustitucion": new}]}
    r = fel(pac).CancelarCFDI(usuario="user", password="secret", rFCEmisor=EMISOR, listaCFDI=lista)
    assert r.DetallesCancelacion.DetalleCancelacion[0].CodigoResultado == "201"
    record = pac.store.get(old)
    assert record is not None
    assert (record.status, record.motivo, record.folio_sustitucion) == ("cancelado", "01", new)


def test_cancel_unknown_uuid_is_205(pac: SandboxPac) -> None:
    lista = {
        "DetalleCFDICancelacion": [{"UUID": "6F9A3E0B-1111-4222-8333-444455556666", "Motivo": "02"}]
    }
    r = fel(pac).CancelarCFDI(usuario="user", password="secret", rFCEmisor=EMISOR, listaCFDI=lista)
    assert r.DetallesCancelacion.DetalleCancelacion[0].CodigoResultado == "205"


def test_sat_status_of_unknown_or_mismatched_data(pac: SandboxPac, csd: Csd) -> None:
    stamped = timbrar(pac, sealed(csd, "SAT"), "REF-SAT")
    uuid = stamped.Timbre.UUID
    sat = client("sat_status", pac.sat_status_url)
    wrong_total = sat.Consulta(expresionImpresa=qr(uuid, EMISOR, RECEPTOR, "1.00"))
    assert wrong_total.Estado == "No Encontrado"
    assert wrong_total.CodigoEstatus.startswith("N - 602")
    unknown = sat.Consulta(
        expresionImpresa=qr("00000000-0000-4000-8000-000000000000", EMISOR, RECEPTOR, "1")
    )
    assert unknown.Estado == "No Encontrado"


def test_change_password(pac: SandboxPac, csd: Csd) -> None:
    svc = fel(pac)
    r = svc.CambiarPassword(usuario="user", passwordActual="secret", passwordNuevo="n3w-secret")
    assert r.OperacionExitosa is True
    old = svc.ConsultarCreditos(usuario="user", password="secret")
    assert old.OperacionExitosa is False
    assert timbrar(pac, sealed(csd, "PW"), "REF-PW").CodigoRespuesta == "203"
    new = timbrar(pac, sealed(csd, "PW"), "REF-PW", password="n3w-secret")
    assert new.OperacionExitosa is True
    wrong = svc.CambiarPassword(usuario="user", passwordActual="secret", passwordNuevo="x")
    assert (wrong.OperacionExitosa, wrong.CodigoRespuesta) == (False, "203")


# --- the HTTP/SOAP surface --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "wsdl"),
    [
        ("fel_timbrado_url", "fel_WSCFDI33.offline.RECONSTRUCTED.wsdl"),
        ("fel_remote_url", "fel_CR33_ConexionRemota_TEST.wsdl"),
        ("finkok_stamp_url", "finkok_stamp.wsdl"),
        ("finkok_cancel_url", "finkok_cancel40.wsdl"),
        ("sat_status_url", "sat_ConsultaCFDIService.offline.RECONSTRUCTED.wsdl"),
    ],
)
def test_wsdl_is_served_with_the_sandbox_address(pac: SandboxPac, attr: str, wsdl: str) -> None:
    url = getattr(pac, attr)
    r = requests.get(url + "?wsdl", timeout=10)
    assert r.status_code == 200
    doc = etree.fromstring(r.content)
    locations = [
        el.get("location") for el in doc.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")
    ]
    assert locations and set(locations) == {url}
    assert etree.QName(doc).localname == "definitions"
    shipped = etree.parse(str(Path(__file__).resolve().parents[2] / "connector/pac/wsdl" / wsdl))
    assert doc.get("targetNamespace") == shipped.getroot().get("targetNamespace")


def test_zeep_client_from_the_served_wsdl(pac: SandboxPac) -> None:
    session = requests.Session()
    session.trust_env = False
    c = zeep.Client(pac.fel_timbrado_url + "?wsdl", transport=zeep.Transport(session=session))
    r = c.service.ConsultarCreditos(usuario="user", password="secret")
    assert r.Paquetes.DetallesPaqueteCreditos[0].TimbresRestantes == 10


def _raw(pac: SandboxPac, body: bytes, action: str | None, path: str = "/fel/WSCFDI33.svc"):
    conn = http.client.HTTPConnection("127.0.0.1", pac.port, timeout=10)
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if action is not None:
        headers["SOAPAction"] = f'"{action}"'
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


ENVELOPE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<ConsultarCreditos xmlns="http://tempuri.org/"><usuario>user</usuario>'
    b"<password>secret</password></ConsultarCreditos></s:Body></s:Envelope>"
)


def test_raw_request_with_the_wsdl_soapaction(pac: SandboxPac) -> None:
    status, data = _raw(pac, ENVELOPE, "http://tempuri.org/IWSCFDI33/ConsultarCreditos")
    assert status == 200
    root = etree.fromstring(data)
    result = root.find(".//{http://tempuri.org/}ConsultarCreditosResult")
    assert result is not None
    ns = "{http://schemas.datacontract.org/2004/07/TES.TFD.V33.Negocios}"
    # WCF data contract: children in the datacontract namespace, alphabetical order
    names = [child.tag for child in result]
    assert all(n.startswith(ns) for n in names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("body", "action", "message"),
    [
        (ENVELOPE, "http://tempuri.org/IWSCFDI33/TimbrarCFDI", "SOAPAction"),
        (b"<not-xml", None, "SBX-XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
            None,
            "DOCTYPE",
        ),
        (b"<x/>", None, "SBX-SOAP"),
        (
            ENVELOPE.replace(b"ConsultarCreditos", b"ObtenerPDF"),
            None,
            "no soportada",
        ),
    ],
    ids=["wrong-action", "not-xml", "doctype", "not-envelope", "unsupported-op"],
)
def test_bad_requests_get_a_soap_fault(pac: SandboxPac, body: bytes, action, message: str) -> None:
    status, data = _raw(pac, body, action)
    assert status == 500
    fault = etree.fromstring(data).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None
    assert message in fault.findtext("faultstring")
    # the server is still fine
    assert _raw(pac, ENVELOPE, None)[0] == 200


def test_unknown_path_is_404(pac: SandboxPac) -> None:
    assert _raw(pac, ENVELOPE, None, path="/nope")[0] == 404
    assert requests.get(pac.base_url + "/nope", timeout=5).status_code == 404


def test_keep_alive_reuses_one_connection(pac: SandboxPac) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", pac.port, timeout=10)
    conn.connect()
    sock = conn.sock
    for _ in range(3):
        conn.request(
            "POST", "/fel/WSCFDI33.svc", body=ENVELOPE, headers={"Content-Type": "text/xml"}
        )
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        assert resp.getheader("Connection", "").lower() != "close"
    assert conn.sock is sock
    conn.close()


def test_state_survives_a_restart(tmp_path: Path, csd: Csd) -> None:
    accounts = [SandboxAccount("user", "secret", "C1", creditos=5, csds={EMISOR: csd})]
    with SandboxPac(tmp_path / "pac.db", accounts=accounts) as first:
        uuid = timbrar(first, sealed(csd, "RS"), "REF-RS").Timbre.UUID
        fel(first).CambiarPassword(usuario="user", passwordActual="secret", passwordNuevo="later")
        cert = first.certificate_der
    with SandboxPac(tmp_path / "pac.db", accounts=accounts) as second:
        assert second.certificate_der == cert
        assert second.store.uuids_for_referencia("REF-RS") == [uuid]
        assert second.credits("user") == 4
        r = fel(second).ConsultarTimbrePorReferencia(
            usuario="user", password="later", referencia="REF-RS"
        )
        assert uuid == r.Timbre.UUID
        assert verify_tfd(r.XMLResultado.encode(), second.certificate_der) == []


def test_stop_closes_the_port(tmp_path: Path) -> None:
    sandbox = SandboxPac(tmp_path / "pac.db").start()
    port = sandbox.port
    assert requests.get(sandbox.fel_timbrado_url + "?wsdl", timeout=5).status_code == 200
    sandbox.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/fel/WSCFDI33.svc?wsdl", timeout=5)
    assert not sandbox.running
    assert threading.active_count() >= 1


def test_demo_account(tmp_path: Path) -> None:
    with SandboxPac.demo(tmp_path / "demo.db") as demo:
        c = demo.engine.accounts["demo"].csds[EMISOR]
        r = fel(demo).TimbrarCFDI(
            usuario="demo", password="demo", cadenaXML=sealed(c, "DEMO").decode(), referencia="D1"
        )
        assert r.OperacionExitosa is True
        assert demo.credits("demo") > 1000


# --- certificate validity and robustness ------------------------------------------------------


def _expired_csd() -> Csd:
    """A CSD-shaped certificate for EKU9003173C9 that expired yesterday."""
    from tests.csd_support import csd_shaped

    return Csd(*csd_shaped(EMISOR, datetime.now(UTC) - timedelta(days=1)))


def test_fecha_outside_the_certificate_validity_is_305(pac: SandboxPac) -> None:
    from connector.cfdi.cadena import cadena_original

    from .test_sandbox_support import invoice

    expired = _expired_csd()
    c = invoice("EXP").model_copy(
        update={
            "NoCertificado": expired.no_certificado,
            "Certificado": expired.certificado_b64,
            "Sello": "",
        }
    )
    root = xmlio.build_tree(c)
    root.set("Sello", expired.sign(cadena_original(root)))
    xml = xmlio.serialize(root)
    # the seal itself is good (no CFDI40102); only the certificate's validity is wrong
    assert [p.code for p in verify_seal(xml)] == ["CONN-CSD-EXPIRED"]

    r = timbrar(pac, xml, "REF-EXP")
    assert r.CodigoRespuesta == "305"
    assert pac.store.count() == 0


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\n\t"),
        max_size=300,
    )
)
def test_any_cadena_xml_gets_an_answer_never_a_crash(pac: SandboxPac, text: str) -> None:
    r = timbrar(pac, text.encode("utf-8"), "REF-FUZZ")
    assert r.OperacionExitosa is False
    assert r.CodigoRespuesta in {"301", "302", "303"}
    assert r.MensajeError


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=400))
def test_any_request_body_gets_a_soap_fault(pac: SandboxPac, body: bytes) -> None:
    status, data = _raw(pac, body, None)
    assert status in (200, 500)
    root = etree.fromstring(data)
    assert etree.QName(root).localname == "Envelope"


def test_request_that_does_not_follow_the_wsdl_is_a_client_fault(pac: SandboxPac) -> None:
    body = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<get_sat_status xmlns="http://facturacion.finkok.com/cancel"><username>user</username>'
        b"<bogus>x</bogus></get_sat_status></s:Body></s:Envelope>"
    )
    status, data = _raw(pac, body, None, path="/finkok/servicios/soap/cancel")
    assert status == 500
    fault = etree.fromstring(data).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault.findtext("faultcode").endswith("Client")
    assert "SBX-SOAP" in fault.findtext("faultstring")
    assert "bogus" in fault.findtext("faultstring")


def test_many_clients_at_once_each_invoice_one_uuid(pac: SandboxPac, csd: Csd) -> None:
    pac.set_credits("user", 100)
    invoices = {f"REF-MANY-{i}": sealed(csd, f"MANY{i}") for i in range(24)}

    def send(item: tuple[str, bytes]) -> tuple[str, str]:
        ref, xml = item
        svc = client("fel_timbrado", pac.fel_timbrado_url, timeout=28)
        first = svc.TimbrarCFDI(
            usuario="user", password="secret", cadenaXML=xml.decode(), referencia=ref
        )
        again = svc.TimbrarCFDI(
            usuario="user", password="secret", cadenaXML=xml.decode(), referencia=ref
        )
        assert again.CodigoRespuesta == "307"
        assert again.Timbre.UUID == first.Timbre.UUID
        return ref, first.Timbre.UUID

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(pool.map(send, invoices.items()))

    assert len(set(results.values())) == len(invoices)
    for ref, uuid in results.items():
        assert pac.store.uuids_for_referencia(ref) == [uuid]
    assert pac.store.count() == len(invoices)
    assert pac.credits("user") == 100 - len(invoices)
    assert len(pac.store.requests(operation="TimbrarCFDI")) == 2 * len(invoices)


def test_stop_and_start_again_on_the_same_port(pac: SandboxPac, csd: Csd) -> None:
    uuid = timbrar(pac, sealed(csd, "SS"), "REF-SS").Timbre.UUID
    port = pac.port
    pac.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(pac.fel_timbrado_url + "?wsdl", timeout=5)
    pac.start()
    assert pac.port == port
    again = timbrar(pac, sealed(csd, "SS"), "REF-SS")
    assert (again.CodigoRespuesta, again.Timbre.UUID) == ("307", uuid)


def test_a_document_stamped_by_another_account_is_307_without_its_xml(
    tmp_path: Path, csd: Csd
) -> None:
    accounts = [
        SandboxAccount("a", "pa", "CA", creditos=5, csds={EMISOR: csd}),
        SandboxAccount("b", "pb", "CB", creditos=5, csds={EMISOR: csd}),
    ]
    with SandboxPac(tmp_path / "pac.db", accounts=accounts) as sandbox:
        xml = sealed(csd, "X-ACC").decode()
        svc = fel(sandbox)
        first = svc.TimbrarCFDI(usuario="a", password="pa", cadenaXML=xml, referencia="R")
        assert first.OperacionExitosa is True
        other = svc.TimbrarCFDI(usuario="b", password="pb", cadenaXML=xml, referencia="R")
        assert other.CodigoRespuesta == "307"
        assert other.XMLResultado is None and other.Timbre is None
        assert sandbox.store.count() == 1
        assert sandbox.credits("b") == 5
