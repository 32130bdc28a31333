"""The hand-built SOAP path of FEL Timbrado's per-invoice operations cannot drift from the WSDL.

``SoapService.call_fast`` builds the envelopes of TimbrarCFDI, ConsultarTimbrePorReferencia,
ObtenerAcuseEnvio and ObtenerAcuseCancelacion with lxml and reads the replies without zeep.
Here, for the same inputs, the envelope is compared with zeep's (parsed, element by element),
sent to the sandbox over real HTTP, and the reply read both ways must give the same values;
failures (SOAP fault, HTTP 500, garbage, bad credentials) must be the same PacError kind and
code either way.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
from lxml import etree

from connector.pac.base import SoapValues, Timeouts, fast_operation
from connector.pac.errors import PacError
from connector.pac.fel import _FAST_TIMBRADO, FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, sealed

PASSWORD = "Fast-Path-Pass1&<"


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("felfast") / "pac.db"
    account = SandboxAccount("fastu", PASSWORD, "CUENTAF", 100, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account]) as sandbox:
        yield sandbox


@pytest.fixture
def fel(pac):
    d = FelDriver("fastu", PASSWORD, timbrado_url=pac.fel_timbrado_url, timeouts=Timeouts(2, 5))
    yield d
    d.close()


def ref() -> str:
    return f"FAST-{uuidlib.uuid4().hex[:12]}"


def tree(el: Any) -> tuple[Any, ...]:
    """An element as (tag, attributes, text, children): namespace prefixes do not matter."""
    return (
        el.tag,
        sorted(el.attrib.items()),
        (el.text or "").strip() if len(el) else (el.text or ""),
        [tree(c) for c in el],
    )


def zeep_envelope(fel: FelDriver, operation: str, **params: Any) -> bytes:
    svc = fel.timbrado
    assert svc is not None
    env = svc.client.create_message(svc.service, operation, **params)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def plain(value: Any) -> Any:
    """zeep's objects and the fast path's dicts as plain dicts, to compare."""
    if value is None or isinstance(value, str | int | bool | float):
        return value
    if isinstance(value, SoapValues | dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "__values__"):
        return {k: plain(v) for k, v in value.__values__.items()}
    return value


def both(fel: FelDriver, operation: str, **params: Any) -> tuple[Any, Any]:
    svc = fel.timbrado
    assert svc is not None
    kw = dict(pac="fel", write=False, secrets=[PASSWORD], usuario="fastu", password=PASSWORD)
    return (
        svc.call_fast(operation, **kw, **params),
        svc.call(operation, **kw, **params),
    )


def outcome(fn: Any) -> tuple[Any, ...]:
    try:
        return ("ok", plain(fn()))
    except PacError as exc:
        return (type(exc).__name__, exc.code, exc.maybe_sent)


def test_the_hot_operations_take_the_fast_path(fel):
    svc = fel.timbrado
    assert svc is not None
    for op in _FAST_TIMBRADO:
        assert svc.fast_op(op) is not None, op
    # operations with arrays or complex parameters stay with zeep
    assert svc.fast_op("CancelarCFDI") is None
    assert svc.fast_op("ConsultarCreditos") is None


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (
            "TimbrarCFDI",
            {"cadenaXML": '<a b="&amp;">é ñ < > & "x"</a>', "referencia": "R&<1>"},
        ),
        ("TimbrarCFDI", {"cadenaXML": "<x/>", "referencia": None}),
        ("ConsultarTimbrePorReferencia", {"referencia": "REF ' \" ñ"}),
        ("ObtenerAcuseEnvio", {"uUID": "1F2E3D4C-0000-4000-8000-00000000000A"}),
        ("ObtenerAcuseCancelacion", {"uUID": "1F2E3D4C-0000-4000-8000-00000000000B"}),
    ],
)
def test_envelope_equals_zeeps(fel, operation, params):
    svc = fel.timbrado
    assert svc is not None
    fop = svc.fast_op(operation)
    assert fop is not None
    full = {"usuario": "fastu&", "password": PASSWORD, **params}
    ours = fop.envelope(full)
    theirs = zeep_envelope(fel, operation, **full)
    assert tree(etree.fromstring(ours)) == tree(etree.fromstring(theirs))
    assert ours == theirs  # byte for byte today; the tree comparison is the contract
    op = svc.service._binding._operations[operation]
    assert fop.headers["SOAPAction"] == f'"{op.soapaction}"'


def test_bad_characters_are_refused_before_sending_as_zeep_does(fel):
    svc = fel.timbrado
    assert svc is not None
    bad = "<x>\x01</x>"
    kw = dict(pac="fel", write=True, secrets=[PASSWORD], usuario="fastu", password=PASSWORD)
    fast = outcome(lambda: svc.call_fast("TimbrarCFDI", **kw, cadenaXML=bad, referencia="r"))
    slow = outcome(lambda: svc.call("TimbrarCFDI", **kw, cadenaXML=bad, referencia="r"))
    assert fast == slow == ("PacInvalid", "CONN-PAC-SOLICITUD", False)


def test_the_sandbox_accepts_the_envelope_and_both_readers_agree(fel, pac, csd):
    r = ref()
    xml = sealed(csd, "FAST1")
    stamped = fel.stamp(xml, r)  # through the fast path
    assert pac.store.uuids_for_referencia(r) == [stamped.uuid]
    assert stamped.previously_stamped is False

    # the same request again, both ways: 307 with the existing stamp
    fast, slow = both(fel, "TimbrarCFDI", cadenaXML=xml.decode(), referencia=r)
    assert plain(fast) == plain(slow)
    assert fast["CodigoRespuesta"] == "307" and fast["XMLResultado"]
    assert isinstance(fast["CreditosRestantes"], int)
    assert fast["Timbre"] is None or fast["Timbre"]["UUID"] in (None, stamped.uuid)

    fast, slow = both(fel, "ConsultarTimbrePorReferencia", referencia=r)
    assert plain(fast) == plain(slow)
    assert stamped.uuid.encode() in fast["XMLResultado"].encode().upper()

    fast, slow = both(fel, "ObtenerAcuseEnvio", uUID=stamped.uuid)
    assert plain(fast) == plain(slow)
    assert fast["XMLResultado"]

    # not found / rejections: same values both ways
    for op, params in (
        ("ConsultarTimbrePorReferencia", {"referencia": ref()}),
        ("ObtenerAcuseCancelacion", {"uUID": stamped.uuid}),
        ("TimbrarCFDI", {"cadenaXML": "esto no es xml", "referencia": ref()}),
    ):
        fast, slow = both(fel, op, **params)
        assert plain(fast) == plain(slow), op
        assert fast["OperacionExitosa"] is not True


def test_failures_are_classified_the_same_both_ways(fel, pac, csd):
    svc = fel.timbrado
    assert svc is not None
    kw = dict(pac="fel", write=True, secrets=[PASSWORD], usuario="fastu", password=PASSWORD)
    for kind in ("http500", "garbage", "drop"):
        results = []
        for call in (svc.call_fast, svc.call):
            pac.faults.add(kind, times=1, operations={"TimbrarCFDI"})
            results.append(
                outcome(
                    lambda call=call: call("TimbrarCFDI", **kw, cadenaXML="<x/>", referencia=ref())
                )
            )
        assert results[0] == results[1], kind
        assert results[0][0] != "ok", kind

    # wrong password: a FEL rejection in the reply, never the password in the message
    bad = FelDriver("fastu", "wrong-pass-123", timbrado_url=pac.fel_timbrado_url)
    try:
        svc2 = bad.timbrado
        assert svc2 is not None
        args = dict(pac="fel", write=False, secrets=["wrong-pass-123"], usuario="fastu")
        fast = svc2.call_fast("ObtenerAcuseEnvio", **args, password="wrong-pass-123", uUID="X")
        slow = svc2.call("ObtenerAcuseEnvio", **args, password="wrong-pass-123", uUID="X")
        assert plain(fast) == plain(slow)
        assert "wrong-pass-123" not in repr(plain(fast))
    finally:
        bad.close()


def test_a_soap_fault_and_an_empty_reply_are_classified(fel):
    svc = fel.timbrado
    assert svc is not None
    fop = svc.fast_op("TimbrarCFDI")
    assert fop is not None
    fault = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Client</faultcode><faultstring>mal</faultstring></s:Fault></s:Body>"
        b"</s:Envelope>"
    )
    from zeep.exceptions import Fault, TransportError

    with pytest.raises(Fault) as info:
        fop.reply(500, fault)
    assert info.value.code == "s:Client" and info.value.message == "mal"
    with pytest.raises(TransportError):
        fop.reply(200, b"<html>no")
    with pytest.raises(TransportError):
        fop.reply(503, b"")
    dtd = b'<!DOCTYPE x [<!ENTITY e "y">]><x>&e;</x>'
    with pytest.raises(Exception):  # noqa: B017 - zeep's DTDForbidden, as zeep refuses it
        fop.reply(200, dtd)
    empty = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<TimbrarCFDIResponse xmlns="http://tempuri.org/"/></s:Body></s:Envelope>'
    )
    assert fop.reply(200, empty) is None
    assert fast_operation(svc.service._binding, "NoExiste") is None


def test_fast_path_verifies_tls_and_keeps_cookies(tmp_path):
    """A real HTTPS server with a self-signed certificate: the hand-built path refuses it
    (nothing sent) unless that certificate is the configured CA; a cookie the server sets is
    sent back on the next call, as requests' Session does."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from connector.pac.errors import PacTransient

    from .drivers_support import self_signed_for_localhost

    cert_pem, key_pem = self_signed_for_localhost(tmp_path)
    hits: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
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
        with pytest.raises(PacTransient) as info:
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
        trusted.close()  # the server's keep-alive connection ends here
        server.shutdown()
        server.server_close()
