# ruff: noqa: F811 - pytest fixtures imported from test_sandbox_support
"""Finkok stamp/stamped/cancel/get_sat_status on the sandbox, with zeep clients from Finkok's
published WSDLs: a second real PAC protocol over HTTP."""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from connector.cfdi.csd import Csd
from connector.cfdi.seal import verify_seal, verify_tfd
from connector.pac.sandbox import SandboxPac

from .test_sandbox_support import EMISOR, RECEPTOR, client, hours_ago, pac, sealed  # noqa: F401


def stamp(pac: SandboxPac, xml: bytes, password: str = "secret"):
    return client("finkok_stamp", pac.finkok_stamp_url).stamp(
        xml=xml, username="user", password=password
    )


def test_stamp_and_recover_with_stamped(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "FK1")
    r = stamp(pac, xml)

    assert r.Incidencias is None
    assert r.CodEstatus == "Comprobante timbrado satisfactoriamente"
    stamped = r.xml.encode("utf-8")
    assert verify_seal(stamped) == []
    assert verify_tfd(stamped, pac.certificate_der) == []
    assert r.NoCertificadoSAT == pac.no_certificado_sat
    tfd = etree.fromstring(stamped).find(
        ".//{http://www.sat.gob.mx/TimbreFiscalDigital}TimbreFiscalDigital"
    )
    assert (tfd.get("UUID"), tfd.get("SelloSAT")) == (r.UUID, r.SatSeal)

    again = stamp(pac, xml)
    [incidencia] = again.Incidencias.Incidencia
    assert incidencia.CodigoError == "307"
    assert again.UUID == r.UUID
    assert pac.store.count() == 1

    recovered = client("finkok_stamp", pac.finkok_stamp_url).stamped(
        xml=xml, username="user", password="secret"
    )
    assert recovered.UUID == r.UUID
    assert recovered.xml == r.xml


def test_stamped_of_an_unknown_document(pac: SandboxPac, csd: Csd) -> None:
    r = client("finkok_stamp", pac.finkok_stamp_url).stamped(
        xml=sealed(csd, "FK-NONE"), username="user", password="secret"
    )
    assert r.Incidencias.Incidencia[0].CodigoError == "404"


def test_stamp_errors_come_as_incidencias(pac: SandboxPac, csd: Csd) -> None:
    bad_password = stamp(pac, sealed(csd, "FK2"), password="nope")
    assert bad_password.Incidencias.Incidencia[0].CodigoError == "203"
    old = stamp(pac, sealed(csd, "FK3", fecha=hours_ago(90)))
    assert old.Incidencias.Incidencia[0].CodigoError == "401"
    assert old.xml is None and old.UUID is None
    tampered = stamp(pac, sealed(csd, "FK4").replace(b'Folio="FK4"', b'Folio="FK5"'))
    assert tampered.Incidencias.Incidencia[0].CodigoError == "302"
    assert pac.store.count() == 0


def test_cancel_and_get_sat_status(pac: SandboxPac, csd: Csd) -> None:
    r = stamp(pac, sealed(csd, "FKC"))
    total = str(Decimal(etree.fromstring(r.xml.encode()).get("Total")))
    cancel_svc = client("finkok_cancel", pac.finkok_cancel_url)

    def status():
        return cancel_svc.get_sat_status(
            username="user",
            password="secret",
            taxpayer_id=EMISOR,
            rtaxpayer_id=RECEPTOR,
            uuid=r.UUID,
            total=total,
        )

    assert status().sat.Estado == "Vigente"
    result = cancel_svc.cancel(
        UUIDS={"UUID": [{"UUID": r.UUID, "Motivo": "02"}]},
        username="user",
        password="secret",
        taxpayer_id=EMISOR,
        cer=b"",
        key=b"",
        store_pending=False,
    )
    [folio] = result.Folios.Folio
    assert (folio.UUID, folio.EstatusUUID) == (r.UUID, "201")
    assert result.RfcEmisor == EMISOR
    assert (
        etree.fromstring(result.Acuse.encode()).findtext(".//{http://cancelacfd.sat.gob.mx}UUID")
        == r.UUID
    )
    after = status()
    assert after.sat.Estado == "Cancelado"
    assert after.sat.EstatusCancelacion == "Cancelado sin aceptación"

    other_rfc = cancel_svc.cancel(
        UUIDS={"UUID": [{"UUID": r.UUID, "Motivo": "02"}]},
        username="user",
        password="secret",
        taxpayer_id="AAA010101AAA",
    )
    assert other_rfc.Folios.Folio[0].EstatusUUID != "201"


def test_cancel_with_wrong_password(pac: SandboxPac) -> None:
    r = client("finkok_cancel", pac.finkok_cancel_url).cancel(
        UUIDS={"UUID": [{"UUID": "00000000-0000-4000-8000-000000000000", "Motivo": "02"}]},
        username="user",
        password="bad",
        taxpayer_id=EMISOR,
    )
    assert r.CodEstatus.startswith("203")
    assert r.Folios is None


def test_quick_stamp_and_get_receipt(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "FKQ")
    r = client("finkok_stamp", pac.finkok_stamp_url).quick_stamp(
        xml=xml, username="user", password="secret"
    )
    assert r.Incidencias is None and r.UUID
    assert stamp(pac, xml).Incidencias.Incidencia[0].CodigoError == "307"
    cancel_svc = client("finkok_cancel", pac.finkok_cancel_url)

    recepcion = cancel_svc.get_receipt(
        username="user", password="secret", taxpayer_id=EMISOR, uuid=r.UUID, type="R"
    )
    assert recepcion.success is True
    assert etree.fromstring(recepcion.receipt.encode()).get("UUID") == r.UUID
    before = cancel_svc.get_receipt(
        username="user", password="secret", taxpayer_id=EMISOR, uuid=r.UUID, type="C"
    )
    assert before.success is False and before.error.startswith("404")

    cancel_svc.cancel(
        UUIDS={"UUID": [{"UUID": r.UUID, "Motivo": "03"}]},
        username="user",
        password="secret",
        taxpayer_id=EMISOR,
    )
    after = cancel_svc.get_receipt(
        username="user", password="secret", taxpayer_id=EMISOR, uuid=r.UUID, type="C"
    )
    assert after.success is True
    assert "Cancelado" in after.receipt
    denied = cancel_svc.get_receipt(
        username="user", password="x", taxpayer_id=EMISOR, uuid=r.UUID, type="C"
    )
    assert denied.success is False and denied.error.startswith("203")
