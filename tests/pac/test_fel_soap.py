"""FEL Timbrado's per-invoice operations, end to end against the sandbox.

``TimbrarCFDI`` and ``ObtenerAcuseEnvio`` go by the lxml template path (``pac/soap_lxml``;
its contract tests are in ``test_soap_lxml.py``), the other operations through zeep. The
envelope built from the shipped WSDL is what the sandbox (which reads the same WSDL) accepts;
the replies are read into the driver's results; failures (SOAP fault, HTTP
500, garbage, a dropped connection, bad credentials, bad characters) become the right
PacError kind and code; TLS is verified and cookies are kept by the session.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest

from connector.pac.base import Timeouts
from connector.pac.errors import PacAmbiguous, PacError, PacTransient
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, sealed

PASSWORD = "Soap-Path-Pass1&<"


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("felsoap") / "pac.db"
    account = SandboxAccount("soapu", PASSWORD, "CUENTAS", 100, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account]) as sandbox:
        yield sandbox


@pytest.fixture
def fel(pac):
    d = FelDriver("soapu", PASSWORD, timbrado_url=pac.fel_timbrado_url, timeouts=Timeouts(2, 5))
    yield d
    d.close()


def ref() -> str:
    return f"SOAP-{uuidlib.uuid4().hex[:12]}"


def call(fel: FelDriver, operation: str, *, write: bool = False, **params: Any) -> Any:
    svc = fel.timbrado
    assert svc is not None
    return svc.call(
        operation,
        pac="fel",
        write=write,
        secrets=[PASSWORD],
        usuario="soapu",
        password=PASSWORD,
        **params,
    )


def test_bad_characters_are_refused_before_sending(fel, pac):
    before = len(pac.store.requests_log)
    with pytest.raises(PacError) as info:
        call(fel, "TimbrarCFDI", write=True, cadenaXML="<x>\x01</x>", referencia="r")
    assert type(info.value).__name__ == "PacInvalid"
    assert info.value.code == "CONN-PAC-SOLICITUD" and info.value.maybe_sent is False
    assert len(pac.store.requests_log) == before  # nothing reached the PAC


def test_stamp_again_recover_and_acuse_through_zeep(fel, pac, csd):
    r = ref()
    xml = sealed(csd, "SOAP1")
    stamped = fel.stamp(xml, r)
    assert pac.store.uuids_for_referencia(r) == [stamped.uuid]
    assert stamped.previously_stamped is False

    again = fel.stamp(xml, r)  # the identical request: 307 with the existing stamp
    assert again.previously_stamped is True and again.uuid == stamped.uuid

    reply = call(fel, "ConsultarTimbrePorReferencia", referencia=r)
    assert stamped.uuid.encode() in reply["XMLResultado"].encode().upper()
    assert fel.recover(r).uuid == stamped.uuid
    assert stamped.uuid.encode() in fel.acuse_envio(stamped.uuid).upper()

    reply = call(fel, "TimbrarCFDI", cadenaXML=xml.decode(), referencia=r)
    assert reply["CodigoRespuesta"] == "307" and isinstance(reply["CreditosRestantes"], int)

    for op, params in (
        ("ConsultarTimbrePorReferencia", {"referencia": ref()}),
        ("ObtenerAcuseCancelacion", {"uUID": stamped.uuid}),
        ("TimbrarCFDI", {"cadenaXML": "esto no es xml", "referencia": ref()}),
    ):
        assert call(fel, op, **params)["OperacionExitosa"] is not True, op


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("http500", PacTransient, "HTTP-500"),
        ("garbage", PacAmbiguous, "CONN-PAC-RESPUESTA"),
        ("drop", PacAmbiguous, "CONN-PAC-CORTE"),
    ],
)
def test_failures_of_a_stamp_are_classified(fel, pac, fault, kind, code):
    pac.faults.add(fault, times=1, operations={"TimbrarCFDI"})
    with pytest.raises(PacError) as info:
        call(fel, "TimbrarCFDI", write=True, cadenaXML="<x/>", referencia=ref())
    assert type(info.value) is kind, info.value
    assert info.value.code == code
    assert info.value.maybe_sent is True


def test_a_wrong_password_is_a_rejection_that_never_shows_the_password(pac):
    bad = FelDriver("soapu", "wrong-pass-123", timbrado_url=pac.fel_timbrado_url)
    try:
        with pytest.raises(PacError) as info:
            bad.acuse_envio("X")
        assert "wrong-pass-123" not in str(info.value)
        assert info.value.code == "203"
    finally:
        bad.close()


def test_tls_is_verified_and_cookies_are_kept(tmp_path):
    """A real HTTPS server with a self-signed certificate: refused (nothing sent) unless that
    certificate is the configured CA; a cookie the server sets is sent back on the next call."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from .drivers_support import self_signed_for_localhost

    cert_pem, key_pem = self_signed_for_localhost(tmp_path)
    hits: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append((self.headers.get("SOAPAction"), self.headers.get("Cookie")))
            body = b"no soap"
            self.send_response(503)
            self.send_header("Set-Cookie", "afinidad=nodo7; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/WSCFDI33.svc"
    d = FelDriver("u", "p", timbrado_url=url, timeouts=Timeouts(2, 2))
    trusted = FelDriver("u", "p", timbrado_url=url, timeouts=Timeouts(2, 2), verify=str(cert_pem))
    try:
        with pytest.raises(PacError) as info:
            d.acuse_envio("X")
        assert info.value.code == "CONN-PAC-TLS"
        assert hits == []  # nothing was sent to an unverified server
        for _ in range(2):
            with pytest.raises(PacTransient) as info:
                trusted.acuse_envio("X")
            assert info.value.code == "HTTP-503"  # TLS accepted; the server answered 503
        assert hits == [
            ('"http://tempuri.org/IWSCFDI33/ObtenerAcuseEnvio"', None),
            ('"http://tempuri.org/IWSCFDI33/ObtenerAcuseEnvio"', "afinidad=nodo7"),
        ]
    finally:
        d.close()
        trusted.close()
        server.shutdown()
        server.server_close()
