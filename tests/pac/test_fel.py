"""FEL driver over real HTTP against the sandbox PAC on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import datetime
from decimal import Decimal

import pytest

from connector.cfdi.seal import verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml
from connector.pac import create_driver
from connector.pac.base import Timeouts
from connector.pac.errors import (
    PacAccount,
    PacInvalid,
    PacNotFound,
    PacTransient,
    PacUnsupported,
)
from connector.pac.fel import FelDriver, split_code
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, RECEPTOR, invoice, sealed, self_signed_for_localhost

PASSWORD = "s3cr3t-Fel-Pass!"


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("fel") / "pac.db"
    account = SandboxAccount("felu", PASSWORD, "CUENTA1", 500, csds={EMISOR: csd})
    other = SandboxAccount("pwduser", "OldPassword1", "CUENTA2", 5, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account, other]) as sandbox:
        yield sandbox


@pytest.fixture
def fel(pac):
    d = FelDriver(
        "felu",
        PASSWORD,
        cuenta="CUENTA1",
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
        timeouts=Timeouts(connect=2, read=5),
    )
    yield d
    d.close()


def ref() -> str:
    return f"REF-{uuidlib.uuid4().hex[:12]}"


def test_stamp_returns_a_verifiable_stamp(fel, pac, csd):
    r = ref()
    xml = sealed(csd, "F1")
    res = fel.stamp(xml, r)
    assert uuidlib.UUID(res.uuid)
    assert res.previously_stamped is False
    assert res.no_certificado_sat == pac.no_certificado_sat
    tfd = from_xml(res.xml).TimbreFiscalDigital
    assert tfd is not None and (tfd.UUID, tfd.FechaTimbrado) == (res.uuid, res.fecha_timbrado)
    assert datetime.fromisoformat(res.fecha_timbrado).tzinfo is None  # SAT's local time, no zone
    assert res.creditos_restantes is not None and res.creditos_restantes >= 0
    assert verify_seal(res.xml) == []
    assert verify_tfd(res.xml, pac.certificate_der) == []
    assert pac.store.uuids_for_referencia(r) == [res.uuid]


def test_resending_identical_bytes_returns_existing_stamp(fel, pac, csd):
    r = ref()
    xml = sealed(csd, "F2")
    first = fel.stamp(xml, r)
    again = fel.stamp(xml, r)
    assert again.uuid == first.uuid
    assert again.previously_stamped is True
    assert pac.store.uuids_for_referencia(r) == [first.uuid]


def test_recover_by_referencia(fel, csd):
    r = ref()
    stamped = fel.stamp(sealed(csd, "F3"), r)
    got = fel.recover(r)
    assert got.uuid == stamped.uuid and got.xml == stamped.xml
    assert got.previously_stamped is True


def test_recover_unknown_referencia_is_not_found(fel):
    with pytest.raises(PacNotFound) as info:
        fel.recover(ref())
    assert info.value.code == "404"


def test_invalid_seal_is_rejected_as_invalid(fel, pac, csd):
    r = ref()
    xml = sealed(csd, "F4").replace(b'Folio="F4"', b'Folio="F5"')  # breaks the seal
    with pytest.raises(PacInvalid) as info:
        fel.stamp(xml, r)
    assert info.value.code == "302"
    assert "FEL" in info.value.message
    assert pac.store.uuids_for_referencia(r) == []


def test_not_xml_is_rejected_as_invalid(fel):
    with pytest.raises(PacInvalid) as info:
        fel.stamp(b"esto no es xml", ref())
    assert info.value.code == "301"


def test_generate_remote_and_recover(fel, pac):
    r = ref()
    c = invoice("G1")
    res = fel.generate(c, r)
    assert verify_seal(res.xml) == []
    assert verify_tfd(res.xml, pac.certificate_der) == []
    assert pac.store.uuids_for_referencia(r) == [res.uuid]
    again = fel.generate(c, r)  # same referencia: FEL gives the existing one back
    assert again.uuid == res.uuid and again.previously_stamped
    assert fel.recover(r, remote=True).uuid == res.uuid
    assert fel.recover(r).uuid == res.uuid  # Timbrado does not have it; Remote does


def test_cancel_and_acuses(fel, pac, csd):
    c = invoice("C1")
    r = ref()
    res = fel.stamp(sealed(csd, "C1"), r)
    envio = fel.acuse_envio(res.uuid)
    assert res.uuid.encode() in envio.upper()
    out = fel.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    assert out.accepted and out.code == "201" and out.uuid == res.uuid
    assert out.acuse and res.uuid.encode() in out.acuse.upper()
    acuse = fel.acuse_cancelacion(res.uuid)
    assert res.uuid.encode() in acuse.upper()
    again = fel.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    assert again.accepted and again.code == "202"


def test_cancel_unknown_uuid_and_bad_motivo(fel):
    with pytest.raises(PacNotFound) as info:
        fel.cancel(str(uuidlib.uuid4()).upper(), "02", None, RECEPTOR, Decimal("1"))
    assert info.value.code == "205"
    with pytest.raises(PacInvalid):
        fel.cancel(str(uuidlib.uuid4()).upper(), "01", None, RECEPTOR, Decimal("1"))


def test_acuse_cancelacion_of_vigente_is_not_found(fel, csd):
    res = fel.stamp(sealed(csd, "A1"), ref())
    with pytest.raises(PacNotFound):
        fel.acuse_cancelacion(res.uuid)


def test_credits_timbrado_and_remote_agree(fel, pac):
    via_timbrado = fel.credits()
    remote_only = FelDriver("felu", PASSWORD, cuenta="CUENTA1", remote_url=pac.fel_remote_url)
    try:
        via_remote = remote_only.credits()
    finally:
        remote_only.close()
    assert via_timbrado.restantes == pac.credits("felu")
    assert via_remote.restantes == via_timbrado.restantes
    assert via_remote.usados == via_timbrado.usados
    assert via_timbrado.paquetes and via_timbrado.paquetes[0].vigente is True


def test_credits_decrease_by_one_per_stamp(fel, csd):
    before = fel.credits().restantes
    res = fel.stamp(sealed(csd, "K1"), ref())
    assert res.creditos_restantes == before - 1
    assert fel.credits().restantes == before - 1


def test_change_password(pac, csd):
    d = FelDriver("pwduser", "OldPassword1", timbrado_url=pac.fel_timbrado_url)
    try:
        d.change_password("NewPassword2")
        assert d.credits().restantes == 5  # the driver now uses the new password
        old = FelDriver("pwduser", "OldPassword1", timbrado_url=pac.fel_timbrado_url)
        with pytest.raises(PacInvalid) as info:
            old.credits()
        assert "NewPassword2" not in str(info.value)
        old.close()
        with pytest.raises(PacInvalid):
            d.change_password("short")
    finally:
        d.close()


def test_wrong_password_is_invalid_and_never_leaks(pac, csd, caplog):
    secret = "Wr0ng-Secret-XYZ"
    d = FelDriver(
        "felu",
        secret,
        cuenta="CUENTA1",
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PacInvalid) as info:
        d.stamp(sealed(csd, "W1"), ref())
    assert info.value.code == "203"
    with pytest.raises(PacInvalid):
        d.generate(invoice("W2"), ref())
    with pytest.raises(PacInvalid):
        d.credits()
    d.close()
    text = str(info.value) + repr(info.value) + repr(d) + caplog.text
    assert secret not in text
    assert "zeep.transports" not in caplog.text or secret not in caplog.text


def test_password_not_in_errors_or_logs_on_network_failure(caplog):
    secret = "N3tw0rk-Secret-ABC"
    caplog.set_level(logging.DEBUG)
    d = FelDriver(
        "u",
        secret,
        cuenta="C",
        timbrado_url="http://127.0.0.1:9/x",
        remote_url="http://127.0.0.1:9/y",
        timeouts=Timeouts(1, 1),
    )
    for call in (lambda: d.stamp(b"<a/>", "R"), d.credits, lambda: d.recover("R")):
        with pytest.raises(Exception) as info:
            call()
        assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in caplog.text
    assert secret not in repr(d)


def test_only_remote_configured_lacks_timbrado_operations(pac):
    d = FelDriver("felu", PASSWORD, cuenta="CUENTA1", remote_url=pac.fel_remote_url)
    with pytest.raises(PacUnsupported) as info:
        d.stamp(b"<a/>", "R")
    assert "fel" in str(info.value) and "TimbrarCFDI" in str(info.value)
    with pytest.raises(PacUnsupported):
        d.change_password("NewPassword9")
    d.close()


def test_create_driver_factory(pac):
    d = create_driver("fel", pac.fel_timbrado_url, usuario="felu", password=PASSWORD)
    assert isinstance(d, FelDriver)
    assert d.credits().restantes is not None
    d.close()
    with pytest.raises(PacInvalid):
        create_driver("nope", "http://127.0.0.1:9")


def test_tls_verification_cannot_be_disabled():
    with pytest.raises(ValueError):
        FelDriver("u", "p", timbrado_url="https://127.0.0.1:9/x", verify=False)


def test_split_code():
    assert split_code("307 - El CFDI contiene un timbre previo") == (
        "307",
        "El CFDI contiene un timbre previo",
    )
    assert split_code("CFDI40102: sello") == ("CFDI40102", "sello")
    assert split_code("sin código") == (None, "sin código")


def test_cli_credits_cancel_sat_status(pac, fel, csd, monkeypatch, capsys, tmp_path):
    from connector.cli import main

    monkeypatch.setenv("FEL_TEST_PASSWORD", PASSWORD)
    opts = [
        "--pac-url", pac.fel_timbrado_url, "--remote-url", pac.fel_remote_url,
        "--usuario", "felu", "--cuenta", "CUENTA1", "--password-env", "FEL_TEST_PASSWORD",
    ]  # fmt: skip
    assert main(["credits", *opts]) == 0
    out = capsys.readouterr().out
    assert f"Créditos restantes: {pac.credits('felu')}" in out

    c = invoice("CLI1")
    res = fel.stamp(sealed(csd, "CLI1"), ref())
    sat = ["--re", EMISOR, "--rr", RECEPTOR, "--tt", str(c.Total), "--sat-url", pac.sat_status_url]
    assert main(["sat-status", res.uuid, *sat]) == 0
    assert "Estado: Vigente" in capsys.readouterr().out

    acuse = tmp_path / "acuse.xml"
    args = [
        "cancel",
        res.uuid,
        "--motivo",
        "02",
        "--rfc-receptor",
        RECEPTOR,
        "--total",
        str(c.Total),
    ]
    assert main([*args, "--acuse", str(acuse), *opts]) == 0
    assert "código 201" in capsys.readouterr().out
    assert res.uuid.encode() in acuse.read_bytes().upper()
    assert main(["sat-status", res.uuid, *sat]) == 0
    assert "Estado: Cancelado" in capsys.readouterr().out

    # errors: a code and a Spanish message, never a traceback, never the password
    assert main(["cancel", str(uuidlib.uuid4()), "--motivo", "02", "--rfc-receptor", RECEPTOR,
                 "--total", "1", *opts]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "Error 205" in err and PASSWORD not in err
    assert main(["credits", "--pac-url", pac.fel_timbrado_url]) == 2
    assert "CONN-CLI-PAC" in capsys.readouterr().err
    assert main(["cancel", res.uuid, "--motivo", "02", "--rfc-receptor", RECEPTOR,
                 "--total", "abc", *opts]) == 2  # fmt: skip
    assert "no es un importe" in capsys.readouterr().err
    monkeypatch.setenv("FEL_TEST_PASSWORD", "mala")
    assert main(["credits", *opts]) == 1
    assert "Error" in capsys.readouterr().err


def test_cli_credits_from_config_file(pac, monkeypatch, capsys, tmp_path):
    from connector.cli import main

    cfg = tmp_path / "connector.toml"
    cfg.write_text(
        "[[pacs]]\n"
        'name = "fel-sandbox"\nkind = "fel"\n'
        f'url = "{pac.fel_timbrado_url}"\nurl_remote = "{pac.fel_remote_url}"\n'
        'usuario = "felu"\ncuenta = "CUENTA1"\npassword_env = "FEL_CFG_PASSWORD"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("FEL_CFG_PASSWORD", PASSWORD)
    assert main(["credits", "--config", str(cfg)]) == 0
    assert f"Créditos restantes: {pac.credits('felu')}" in capsys.readouterr().out
    assert main(["credits", "--config", str(cfg), "--pac", "otro"]) == 2
    assert "CONN-CFG" in capsys.readouterr().err
    monkeypatch.delenv("FEL_CFG_PASSWORD")
    assert main(["credits", "--config", str(cfg)]) == 2
    assert "FEL_CFG_PASSWORD" in capsys.readouterr().err


def test_wsdls_load_from_disk_and_network_fetches_are_refused():
    from connector.pac.soap import _loader_transport, wsdl_document

    for name in (
        "fel_WSCFDI33.offline.RECONSTRUCTED.wsdl",
        "fel_CR33_ConexionRemota_TEST.wsdl",
        "finkok_stamp.wsdl",
        "finkok_cancel40.wsdl",
        "sat_ConsultaCFDIService.offline.RECONSTRUCTED.wsdl",
    ):
        assert wsdl_document(name) is wsdl_document(name)  # parsed once per process
    with pytest.raises(Exception, match="no descarga"):
        _loader_transport().load("http://127.0.0.1:9/esquema.xsd")


def test_connections_are_reused(pac, csd):
    d = FelDriver("felu", PASSWORD, timbrado_url=pac.fel_timbrado_url)
    try:
        for i in range(4):
            d.stamp(sealed(csd, f"RU{i}"), ref())
        d.credits()
        pools = list(
            d.session.get_adapter(pac.fel_timbrado_url).poolmanager.pools._container.values()
        )
        assert len(pools) == 1
        assert pools[0].num_connections == 1  # five calls, one TCP connection
    finally:
        d.close()


def test_resilient_cancel_retries_a_lost_reply(pac, fel, csd):
    from connector.pac.resilience import CircuitBreaker, ResilientPac, RetryPolicy

    c = invoice("RC1")
    res = fel.stamp(sealed(csd, "RC1"), ref())
    pac.faults.add("reply_lost", times=1, operations={"CancelarCFDIsV4"})
    rp = ResilientPac(
        fel,
        policy=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0),
        breaker=CircuitBreaker("fel-cancel", failure_threshold=100),
    )
    out = rp.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    assert out.accepted and out.code == "202"  # the first (lost) request did cancel it
    pac.faults.clear()


def test_cancel_through_timbrado_with_the_csd_key(pac, csd, csd_files):
    cer, key, key_password = csd_files
    d = FelDriver(
        "felu",
        PASSWORD,
        timbrado_url=pac.fel_timbrado_url,
        cancel_rfc=EMISOR,
        cancel_key_der=key,
        cancel_key_password=key_password,
    )
    try:
        c = invoice("TC1")
        res = d.stamp(sealed(csd, "TC1"), ref())
        out = d.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
        assert out.accepted and out.code == "201" and out.acuse
        assert key_password not in repr(d)
    finally:
        d.close()


def test_wrong_service_address_is_a_configuration_problem_not_an_invalid_invoice(pac, csd):
    d = FelDriver("felu", PASSWORD, timbrado_url=pac.base_url + "/no/existe.svc")
    try:
        with pytest.raises(PacTransient) as info:
            d.stamp(sealed(csd, "NX1"), ref())
        assert info.value.code == "HTTP-404"
        assert info.value.maybe_sent is False
        assert "URL" in info.value.message
    finally:
        d.close()


def test_tls_is_verified_against_an_untrusted_certificate(tmp_path):
    """A real HTTPS server on 127.0.0.1 with a self-signed certificate: refused (a permanent
    configuration error, nothing sent), unless that certificate is configured as the CA."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    cert_pem, key_pem = self_signed_for_localhost(tmp_path)
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            body = b"no soap"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/WSCFDI33.svc"
    try:
        d = FelDriver("u", "p", timbrado_url=url, timeouts=Timeouts(2, 2))
        with pytest.raises(PacAccount) as info:  # configuration: permanent, the PAC pauses
            d.credits()
        assert info.value.code == "CONN-PAC-TLS" and info.value.maybe_sent is False
        assert hits == []  # nothing was sent to an unverified server
        d.close()
        trusted = FelDriver(
            "u", "p", timbrado_url=url, timeouts=Timeouts(2, 2), verify=str(cert_pem)
        )
        with pytest.raises(PacTransient) as info:
            trusted.credits()
        assert info.value.code == "HTTP-503"  # TLS accepted; the (fake) server answered 503
        assert hits == ["/WSCFDI33.svc"]
        trusted.close()
    finally:
        server.shutdown()
        server.server_close()
