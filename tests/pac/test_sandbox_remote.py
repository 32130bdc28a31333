# ruff: noqa: F811 - pytest fixtures imported from test_sandbox_support
"""FEL Conexión Remota on the sandbox (GenerarCFDI40 and friends) and the Comprobante40R
mapping in ``connector.pac.fel_remote_types`` that the FEL driver shares."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.cfdi.amounts import complete
from connector.cfdi.csd import Csd
from connector.cfdi.errors import CfdiError
from connector.cfdi.model import NS_CFDI
from connector.cfdi.seal import verify_seal, verify_tfd
from connector.pac.fel_remote_types import from_comprobante40r, to_comprobante40r
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .test_sandbox_support import EMISOR, client, hours_ago, invoice, pac  # noqa: F401

C = "{" + NS_CFDI + "}"
CRED = {"Cuenta": "C1", "Usuario": "user", "Password": "secret"}


def cr(pac: SandboxPac):
    return client("fel_remote", pac.fel_remote_url)


def generar(pac: SandboxPac, folio: str, referencia: str, cred: dict | None = None, **kw):
    data = to_comprobante40r(invoice(folio, **kw), referencia=referencia)
    return cr(pac).GenerarCFDI40(credenciales=cred or CRED, cfdi=data)


def test_generate_builds_seals_with_the_account_csd_and_stamps(pac: SandboxPac, csd: Csd) -> None:
    r = generar(pac, "G1", "REM-1")

    assert r.OperacionExitosa is True, (r.ErrorGeneral, r.ErrorDetallado)
    xml = r.XML.encode("utf-8")
    assert verify_seal(xml) == []
    assert verify_tfd(xml, pac.certificate_der) == []
    root = etree.fromstring(xml)
    assert root.get("NoCertificado") == csd.no_certificado
    assert root.find(C + "Emisor").get("Rfc") == EMISOR
    assert root.get("TipoDeComprobante") == "I"
    # comprobante-level taxes derived by the service (Comprobante40R does not carry them)
    assert root.find(C + "Impuestos").get("TotalImpuestosTrasladados") == "48.00"
    assert Decimal(root.get("Total")) == Decimal("348.00")
    [record] = pac.store.stamps()
    assert (record.referencia, record.source, record.status) == ("REM-1", "remote", "vigente")
    creditos = cr(pac).ObtenerNumerosCreditos(credenciales=CRED)
    assert (creditos.CreditosRestantes, creditos.CreditosUsados) == (9, 1)


def test_generate_same_referencia_returns_the_existing_stamp(pac: SandboxPac) -> None:
    first = generar(pac, "G2", "REM-2")
    again = generar(pac, "G2-other", "REM-2")

    assert again.OperacionExitosa is False
    assert again.ErrorGeneral.startswith("307")
    assert again.XML == first.XML
    assert pac.store.count() == 1
    assert pac.credits("user") == 9


def test_recover_by_referencia(pac: SandboxPac) -> None:
    first = generar(pac, "G3", "REM-3")
    found = cr(pac).ObtenerXMLPorReferencia40(credenciales=CRED, referencia="REM-3")
    assert found.OperacionExitosa is True
    assert found.XML == first.XML
    missing = cr(pac).ObtenerXMLPorReferencia40(credenciales=CRED, referencia="NOPE")
    assert missing.OperacionExitosa is False
    assert missing.ErrorGeneral.startswith("404")


def test_invalid_data_is_refused_with_the_sat_code_and_not_stamped(pac: SandboxPac) -> None:
    r = generar(pac, "G4", "REM-4", uso="ZZZ")
    assert r.OperacionExitosa is False
    code = r.ErrorGeneral.split(" - ")[0]
    assert code.startswith("CFDI40")
    assert "UsoCFDI" in (r.ErrorDetallado or "") or "uso" in (r.ErrorDetallado or "").lower()
    assert pac.store.count() == 0
    assert pac.credits("user") == 10
    [sent] = pac.store.requests(operation="GenerarCFDI40", referencia="REM-4")
    assert sent.outcome == "error"


def test_generate_with_old_fecha_is_refused(pac: SandboxPac) -> None:
    r = generar(pac, "G5", "REM-5", fecha=hours_ago(100))
    assert r.OperacionExitosa is False
    assert pac.store.count() == 0


def test_generate_with_wrong_cuenta_is_an_auth_error(pac: SandboxPac) -> None:
    r = generar(pac, "G6", "REM-6", cred={**CRED, "Cuenta": "OTRA"})
    assert r.OperacionExitosa is False
    assert r.ErrorGeneral.startswith("203")
    [sent] = pac.store.requests(operation="GenerarCFDI40")
    assert (sent.outcome, sent.referencia) == ("auth", "REM-6")


def test_generate_without_a_csd_in_the_account_is_402(pac: SandboxPac) -> None:
    r = generar(pac, "G7", "REM-7", cred={"Cuenta": "C2", "Usuario": "other", "Password": "pw"})
    assert r.ErrorGeneral.startswith("402")


def test_cancel_v4_and_acuses(pac: SandboxPac) -> None:
    xml = generar(pac, "G8", "REM-8").XML.encode()
    tfd = etree.fromstring(xml).find(
        f"{C}Complemento/{{http://www.sat.gob.mx/TimbreFiscalDigital}}TimbreFiscalDigital"
    )
    uuid = tfd.get("UUID")
    svc = cr(pac)

    envio = svc.ObtenerAcuseEnvio40(credenciales=CRED, uuid=uuid)
    assert envio.OperacionExitosa is True
    assert etree.fromstring(envio.XML.encode()).get("UUID") == uuid
    assert svc.ObtenerAcuseCancelacion40(credenciales=CRED, uuid=uuid).OperacionExitosa is False

    r = svc.CancelarCFDIsV4(
        credenciales=CRED,
        uuids={
            "UUIDMotivoCancelacionCR": [{"UUID": uuid, "Motivo": "02", "FolioSustitucion": None}]
        },
    )
    assert r.OperacionExitosa is True
    [detalle] = r.UUIDS.DetalleCancelacionCR
    assert (detalle.UUID, detalle.RespuestaServicio) == (uuid, "201")
    acuse = svc.ObtenerAcuseCancelacion40(credenciales=CRED, uuid=uuid)
    assert acuse.OperacionExitosa is True
    assert r.Acuse == acuse.XML
    assert pac.store.get(uuid).status == "cancelado"

    again = svc.CancelarCFDIsV4(
        credenciales=CRED, uuids={"UUIDMotivoCancelacionCR": [{"UUID": uuid, "Motivo": "02"}]}
    )
    assert again.UUIDS.DetalleCancelacionCR[0].RespuestaServicio == "202"


# --- the mapping ---------------------------------------------------------------------------------


def test_mapping_reads_the_published_request_example(shared_dir: Path) -> None:
    example = shared_dir / "layouts" / "fel_generarcfdi40_request_example.xml"
    env = etree.parse(str(example)).getroot()
    cfdi = env.find(".//{http://tempuri.org/}cfdi")
    c = from_comprobante40r(cfdi, rfc_emisor=EMISOR)

    assert c.TipoDeComprobante == "I"  # ClaveCFDI FAC
    assert c.Emisor.Rfc == EMISOR and c.Emisor.RegimenFiscal == "601"
    assert c.Receptor.Rfc == "CACX7605101P8"
    assert (c.Serie, c.Folio, c.Fecha) == ("A", "1001", "2025-01-15T10:00:00")
    [k] = c.Conceptos
    assert k.Cantidad == Decimal("2") and k.Importe == Decimal("200.00")
    [t] = k.Impuestos.Traslados
    assert (t.Impuesto, t.TasaOCuota, t.Importe) == ("002", Decimal("0.160000"), Decimal("32.00"))
    assert c.Total == Decimal("232.00")


def test_mapping_round_trip_keeps_the_invoice() -> None:
    c = invoice("RT")
    back = from_comprobante40r(to_comprobante40r(c, referencia="X"), rfc_emisor=c.Emisor.Rfc)
    assert complete(back) == c


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cantidad=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("9999"), places=3),
    precio=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2),
    folio=st.text(alphabet="ABC0123456789", min_size=1, max_size=10),
    pedimentos=st.lists(st.just("23  47  3807  3000001"), max_size=2),
    tipo=st.sampled_from(["I", "E"]),
)
def test_mapping_round_trip_property(cantidad, precio, folio, pedimentos, tipo) -> None:
    base = invoice(folio)
    k = base.Conceptos[0].model_copy(
        update={
            "Cantidad": cantidad,
            "ValorUnitario": precio,
            "Importe": None,
            "InformacionAduanera": pedimentos,
        }
    )
    k = k.model_copy(
        update={
            "Impuestos": k.Impuestos.model_copy(
                update={
                    "Traslados": [
                        t.model_copy(update={"Base": None, "Importe": None})
                        for t in k.Impuestos.Traslados
                    ]
                }
            )
        }
    )
    c = complete(
        base.model_copy(
            update={
                "Conceptos": [k],
                "TipoDeComprobante": tipo,
                "SubTotal": None,
                "Total": None,
                "Impuestos": None,
            }
        )
    )
    data = to_comprobante40r(c)
    assert data["ClaveCFDI"] == {"I": "FAC", "E": "CRE"}[tipo]
    assert complete(from_comprobante40r(data, rfc_emisor=EMISOR)) == c


def test_mapping_refuses_what_it_cannot_carry() -> None:
    c = invoice("P").model_copy(update={"OtrosComplementos": [b"<x:Otro xmlns:x='urn:x'/>"]})
    with pytest.raises(CfdiError) as err:
        to_comprobante40r(c)
    assert err.value.code == "CONN-REMOTE-UNSUPPORTED"
    with pytest.raises(CfdiError) as err2:
        from_comprobante40r({"Nomina": {"x": 1}, "Fecha": "2025-01-01T00:00:00"})
    assert err2.value.code == "CONN-REMOTE-UNSUPPORTED"
    with pytest.raises(CfdiError) as err3:
        from_comprobante40r({"Fecha": "2025-01-01T00:00:00", "Conceptos": []})
    assert err3.value.code == "CONN-DATA"
    assert any("Emisor" in p.path or "Moneda" in p.path for p in err3.value.problems)


def test_generate_over_http_with_an_account_without_cuenta(tmp_path: Path, csd: Csd) -> None:
    account = SandboxAccount("solo", "pw", "", creditos=3, csds={EMISOR: csd})
    with SandboxPac(tmp_path / "pac.db", accounts=[account]) as sandbox:
        cred = {"Cuenta": "", "Usuario": "solo", "Password": "pw"}
        r = generar(sandbox, "S1", "SOLO-1", cred=cred)
        assert r.OperacionExitosa is True, r.ErrorDetallado


# --- Pagos 2.0 through Conexión Remota --------------------------------------------------------


def _pago_sample(shared_dir: Path):
    from datetime import datetime

    from connector.cfdi import xmlio

    c = xmlio.from_xml((shared_dir / "samples" / "cfdi40-pago20-valid_CfdiUtils.xml").read_bytes())
    return c.model_copy(
        update={
            "Sello": None,
            "NoCertificado": None,
            "Certificado": None,
            "TimbreFiscalDigital": None,
            "Fecha": datetime.now().replace(microsecond=0).isoformat(),
        }
    )


def test_mapping_round_trip_of_a_pagos_20_document(shared_dir: Path) -> None:
    c = _pago_sample(shared_dir)
    data = to_comprobante40r(c)
    assert data["ClaveCFDI"] == "PAG"
    [pago] = data["Pagos"]["Pago"]["PagosPago20R"]
    assert "ImpuestosP" not in pago  # not in the contract: derived by the service
    assert [
        d["NumParcialidad"] for d in pago["DoctoRelacionado"]["PagosPagoDoctoRelacionado20R"]
    ] == ["2", "1"]
    assert complete(from_comprobante40r(data, rfc_emisor=c.Emisor.Rfc)) == complete(c)


def test_generate_a_pagos_20_document(pac: SandboxPac, shared_dir: Path) -> None:
    c = _pago_sample(shared_dir)
    r = cr(pac).GenerarCFDI40(credenciales=CRED, cfdi=to_comprobante40r(c, referencia="PAGO-1"))
    assert r.OperacionExitosa is True, (r.ErrorGeneral, r.ErrorDetallado)
    xml = r.XML.encode()
    assert verify_seal(xml) == []
    root = etree.fromstring(xml)
    assert root.get("TipoDeComprobante") == "P"
    totales = root.find(".//{http://www.sat.gob.mx/Pagos20}Totales")
    assert totales.get("MontoTotalPagos") == "15000.00"
    assert len(root.findall(".//{http://www.sat.gob.mx/Pagos20}ImpuestosP")) == 1
