"""The fast path of ``_QuietTransport.post_bytes`` (connector.pac.http1) against real servers.

A scripted server on 127.0.0.1 answers each request it reads with the next action the test
queued (a reply, raw bytes, a close, a wait), and counts connections and requests, so reuse,
misbehaviour and "sent exactly once" are observed on the wire. Where the requests + urllib3
path exists for the same case (``transport.post``), both paths must raise the same exception.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import queue
import select
import socket
import ssl
import threading
import uuid as uuidlib
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.pac import http1
from connector.pac.base import Timeouts, _never_connected, classify_exception
from connector.pac.errors import PacAmbiguous, PacTransient
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, sealed, self_signed_for_localhost

PATH = "/WSCFDI33.svc"
HEADERS = {"SOAPAction": '"urn:x/Op"', "Content-Type": "text/xml; charset=utf-8"}
BODY = b"<?xml version='1.0' encoding='utf-8'?>\n<x>\xc3\xb1</x>"

Action = Callable[[socket.socket, bytes], bool]  # True: keep the connection open


def read_request(conn: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    """One request (head + Content-Length body) from ``conn``; None at end of file."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


class Scripted:
    """A socket server whose replies the test scripts, one action per request read."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.actions: queue.Queue[Action] = queue.Queue()
        self.requests: list[bytes] = []
        self.accepts = 0
        self.handshake_failures = 0
        self.eofs: queue.Queue[int] = queue.Queue()  # connection numbers the client closed
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._serve, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{PATH}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepts += 1
                number = self.accepts
                self._conns.append(conn)
                t = threading.Thread(target=self._handle, args=(conn, number), daemon=True)
                self._threads.append(t)
            t.start()

    def _handle(self, conn: socket.socket, number: int) -> None:
        sock: socket.socket = conn
        try:
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    with self._lock:
                        self.handshake_failures += 1
                    return
            buf = b""
            while True:
                request, buf = read_request(sock, buf)
                if request is None:
                    self.eofs.put(number)
                    return
                with self._lock:
                    self.requests.append(request)
                action = self.actions.get(timeout=10)
                if not action(sock, request):
                    return
        except OSError:
            return
        finally:
            sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._accepter.join(5)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(5)


def reply(
    status: int = 200,
    body: bytes = b"<ok/>",
    headers: tuple[tuple[str, str], ...] = (),
    *,
    length: bool = True,
    keep: bool = True,
) -> Action:
    def act(conn: socket.socket, request: bytes) -> bool:
        lines = [f"HTTP/1.1 {status} Razon"]
        lines += [f"{k}: {v}" for k, v in headers]
        if length:
            lines.append(f"Content-Length: {len(body)}")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return keep

    return act


def raw(data: bytes, *, keep: bool = False) -> Action:
    def act(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(data)
        return keep

    return act


def close_now(conn: socket.socket, request: bytes) -> bool:
    return False


def hold_until(event: threading.Event) -> Action:
    def act(conn: socket.socket, request: bytes) -> bool:
        event.wait(10)
        return False

    return act


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.close()


@pytest.fixture
def driver(server: Scripted) -> Iterator[FelDriver]:
    d = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 2), pool_size=2)
    yield d
    d.close()


def transport(d: FelDriver) -> Any:
    assert d.timbrado is not None
    return d.timbrado.transport


def post(d: FelDriver, url: str) -> tuple[int, bytes]:
    return transport(d).post_bytes(url, BODY, HEADERS)


def pool(d: FelDriver) -> http1.Pool:
    adapter = d.session.get_adapter("http://")
    assert isinstance(adapter, http1.Adapter)
    return adapter.fast_pool


def idle(d: FelDriver) -> list[Any]:
    return [c for conns in pool(d)._idle.values() for c in conns]


def stamp_fast(d: FelDriver) -> Any:
    """TimbrarCFDI (a write) through SoapService.call_fast, as the driver sends it."""
    assert d.timbrado is not None
    return d.timbrado.call_fast(
        "TimbrarCFDI",
        pac="fel",
        write=True,
        secrets=["p"],
        usuario="u",
        password="p",
        cadenaXML="<x/>",
        referencia="R1",
    )


# --- Replies ---------------------------------------------------------------------------------


def test_the_request_on_the_wire_is_the_one_requests_sends(server, driver):
    server.actions.put(reply())
    server.actions.put(reply())
    assert transport(driver).post(server.url, BODY, HEADERS).status_code == 200  # requests
    assert post(driver, server.url) == (200, b"<ok/>")  # http1
    old, new = server.requests
    assert new == old  # byte for byte: request line, Host, headers, Content-Length, body
    assert new.endswith(b"\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)


def test_content_length_and_keep_alive_reuse(server, driver):
    for i in range(3):
        server.actions.put(reply(body=b"<r%d/>" % i, headers=(("X-A", "1"), ("x-a", "2"))))
    assert [post(driver, server.url) for _ in range(3)] == [
        (200, b"<r0/>"),
        (200, b"<r1/>"),
        (200, b"<r2/>"),
    ]
    assert server.accepts == 1  # one connection, reused
    assert len(server.requests) == 3
    assert len(idle(driver)) == 1
    assert not driver.session.adapters["http://"].poolmanager.pools  # urllib3 never used


def test_chunked_with_extensions_and_trailers(server, driver):
    body = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\n<abc\r\n3\r\n/>\n\r\n0\r\nX-Trailer: t\r\nOtro: 2\r\n\r\n"
    )
    server.actions.put(raw(body, keep=True))
    server.actions.put(reply())
    assert post(driver, server.url) == (200, b"<abc/>\n")
    assert post(driver, server.url) == (200, b"<ok/>")  # trailers fully read: reusable
    assert server.accepts == 1


def test_read_to_close_is_not_reused(server, driver):
    server.actions.put(reply(body=b"<hasta-el-cierre/>", length=False, keep=False))
    server.actions.put(reply())
    assert post(driver, server.url) == (200, b"<hasta-el-cierre/>")
    assert idle(driver) == []
    assert post(driver, server.url) == (200, b"<ok/>")
    assert server.accepts == 2


@pytest.mark.parametrize(
    "headers",
    [(("Connection", "close"),), ()],
    ids=["connection-close", "http10"],
)
def test_connection_close_and_http10_are_not_pooled(server, driver, headers):
    if headers:
        server.actions.put(reply(headers=headers))
    else:
        server.actions.put(raw(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n<ok/>", keep=True))
    server.actions.put(reply())
    assert post(driver, server.url) == (200, b"<ok/>")
    assert idle(driver) == []
    assert post(driver, server.url) == (200, b"<ok/>")
    assert server.accepts == 2


def test_gzip_and_deflate_are_decoded(server, driver):
    text = b"<respuesta>" + b"x" * 500 + b"</respuesta>"
    server.actions.put(reply(body=gzip.compress(text), headers=(("Content-Encoding", "gzip"),)))
    server.actions.put(reply(body=zlib.compress(text), headers=(("Content-Encoding", "deflate"),)))
    server.actions.put(reply(body=b"no es gzip", headers=(("Content-Encoding", "gzip"),)))
    assert post(driver, server.url) == (200, text)
    assert post(driver, server.url) == (200, text)
    with pytest.raises(requests.exceptions.ContentDecodingError):
        post(driver, server.url)


def test_interim_1xx_replies_are_skipped(server, driver):
    server.actions.put(
        raw(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
            keep=True,
        )
    )
    assert post(driver, server.url) == (201, b"abc")


# --- Connections that went away --------------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_not_reused(server, driver):
    server.actions.put(reply(keep=False))  # replies as keep-alive, then closes
    server.actions.put(reply(body=b"<second/>"))
    assert post(driver, server.url) == (200, b"<ok/>")
    [conn] = idle(driver)
    # wait for the server's FIN to reach the idle socket (an event, not a sleep)
    assert select.select([conn.sock], [], [], 5)[0]
    assert post(driver, server.url) == (200, b"<second/>")
    assert server.accepts == 2
    assert len(server.requests) == 2  # the second request went out once, on the new connection


def test_a_server_that_closes_without_replying(server, driver):
    server.actions.put(close_now)
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        post(driver, server.url)
    assert not _never_connected(info.value)
    err = classify_exception(info.value, pac="fel", operation="TimbrarCFDI", write=True)
    assert isinstance(err, PacAmbiguous) and err.code == "CONN-PAC-CORTE"

    server.actions.put(close_now)
    with pytest.raises(PacAmbiguous) as amb:
        stamp_fast(driver)
    assert amb.value.code == "CONN-PAC-CORTE" and amb.value.maybe_sent is True
    assert len(server.requests) == 2  # each request once: nothing was re-sent


def test_read_timeout(server):
    d = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 0.2))
    release = threading.Event()
    try:
        server.actions.put(hold_until(release))
        with pytest.raises(requests.exceptions.ReadTimeout):
            post(d, server.url)
        release.set()
        release.clear()
        server.actions.put(hold_until(release))
        with pytest.raises(PacAmbiguous) as info:
            stamp_fast(d)
        assert info.value.code == "CONN-PAC-TIMEOUT"
        assert len(server.requests) == 2
    finally:
        release.set()
        d.close()


def test_connection_refused_is_never_sent():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nobody listens there now
    url = f"http://127.0.0.1:{port}{PATH}"
    d = FelDriver("u", "p", timbrado_url=url, timeouts=Timeouts(2, 2))
    try:
        with pytest.raises(requests.exceptions.ConnectionError) as info:
            post(d, url)
        assert _never_connected(info.value)
        with pytest.raises(PacTransient) as err:
            stamp_fast(d)
        assert err.value.code == "CONN-PAC-CONEXION" and err.value.maybe_sent is False
    finally:
        d.close()


def test_an_unresolvable_host_is_never_sent():
    url = "http://no-existe.invalid/WSCFDI33.svc"
    d = FelDriver("u", "p", timbrado_url=url, timeouts=Timeouts(2, 2))
    try:
        with pytest.raises(PacTransient) as err:
            stamp_fast(d)
        assert err.value.code == "CONN-PAC-CONEXION" and err.value.maybe_sent is False
    finally:
        d.close()


# --- Misbehaviour: the same exception as requests + urllib3 ----------------------------------

MISBEHAVIOUR = {
    "garbage-status": b"HOLA MUNDO\r\n\r\n",
    "bad-status-code": b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
    "truncated-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<corto/>",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "truncated-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
}


@pytest.mark.parametrize("case", sorted(MISBEHAVIOUR))
def test_misbehaviour_raises_what_requests_raises(server, driver, case):
    data = MISBEHAVIOUR[case]
    outcomes = []
    for send in (
        lambda: transport(driver).post(server.url, BODY, HEADERS).content,
        lambda: post(driver, server.url),
    ):
        server.actions.put(raw(data))
        with pytest.raises(requests.exceptions.RequestException) as info:
            send()
        outcomes.append(type(info.value))
    assert outcomes[0] is outcomes[1], case
    assert len(server.requests) == 2


def test_headers_past_64_kib_are_refused(server, driver):
    # urllib3 accepts them (one line up to 64 KiB, 100 lines); http1 reads at most 64 KiB
    lines = b"".join(b"X-Relleno-%d: %s\r\n" % (i, b"a" * 1000) for i in range(70))
    server.actions.put(raw(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n"))
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        post(driver, server.url)
    assert not _never_connected(info.value)
    assert len(server.requests) == 1


# --- Cookies, redirects, closing -------------------------------------------------------------


def test_a_cookie_lands_in_the_session_and_later_calls_take_requests(server, driver):
    server.actions.put(reply(headers=(("Set-Cookie", "afinidad=n1; Path=/"),)))
    server.actions.put(reply())
    assert post(driver, server.url) == (200, b"<ok/>")
    assert driver.session.cookies.get("afinidad") == "n1"
    assert post(driver, server.url) == (200, b"<ok/>")
    assert b"\r\nCookie: afinidad=n1\r\n" in server.requests[1]


def test_a_redirect_is_followed_and_a_post_never_goes_twice_to_one_url(server, driver):
    other = f"http://127.0.0.1:{server.port}/otro"
    server.actions.put(reply(307, b"", (("Location", other),)))
    server.actions.put(reply(body=b"<alla/>"))
    assert post(driver, server.url) == (200, b"<alla/>")
    assert [r.split(b" ", 2)[:2] for r in server.requests] == [
        [b"POST", PATH.encode()],
        [b"POST", b"/otro"],
    ]
    assert server.requests[1].endswith(BODY)

    # 307 to itself: returned as it is, the POST is not sent again
    server.actions.put(reply(307, b"", (("Location", server.url),)))
    assert post(driver, server.url) == (307, b"")
    assert len(server.requests) == 3

    # 303: a GET to the new place, as requests does
    server.actions.put(reply(303, b"", (("Location", "/ver"),)))
    server.actions.put(reply(body=b"<visto/>"))
    assert post(driver, server.url) == (200, b"<visto/>")
    assert server.requests[-1].startswith(b"GET /ver HTTP/1.1\r\n")


def test_closing_the_driver_closes_the_connections(server):
    d = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 2))
    server.actions.put(reply())
    assert post(d, server.url) == (200, b"<ok/>")
    assert len(idle(d)) == 1
    d.close()
    assert server.eofs.get(timeout=5) == 1  # the server saw the client close it
    assert idle(d) == []


def test_concurrent_posts_share_the_pool(server):
    d = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 5), pool_size=2)
    n = 24
    for _ in range(n):
        server.actions.put(reply())
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(n // 4):
            r = post(d, server.url)
            with lock:
                results.append(r)

    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [(200, b"<ok/>")] * n
        assert len(server.requests) == n
        assert 1 <= len(idle(d)) <= 2  # at most pool_size kept idle
    finally:
        d.close()


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    return self_signed_for_localhost(tmp_path_factory.mktemp("tls"))


def test_tls_verified_against_the_configured_ca(tls_files):
    cert_pem, key_pem = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    server = Scripted(tls=ctx)
    trusted = FelDriver(
        "u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 2), verify=str(cert_pem)
    )
    untrusted = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 2))
    try:
        with pytest.raises(requests.exceptions.SSLError):
            post(untrusted, server.url)
        with pytest.raises(PacTransient) as info:
            stamp_fast(untrusted)
        assert info.value.code == "CONN-PAC-TLS"
        assert server.requests == []  # nothing reached an unverified server

        server.actions.put(reply(body=b"<seguro/>"))
        server.actions.put(reply(body=b"<otra-vez/>"))
        assert post(trusted, server.url) == (200, b"<seguro/>")
        assert post(trusted, server.url) == (200, b"<otra-vez/>")
        assert server.accepts == 3  # two refused handshakes, one kept-alive TLS connection
        assert server.handshake_failures == 2
        assert server.requests[0].startswith(b"POST /WSCFDI33.svc HTTP/1.1\r\nHost: 127.0.0.1:")
    finally:
        trusted.close()
        untrusted.close()
        server.close()


def test_a_tls_error_after_the_request_went_out_is_ambiguous(tls_files):
    """The handshake was done and the stamp sent; the reply is not TLS: the PAC may have
    stamped it, so it is CONN-PAC-CORTE (asked for by referencia), not 'nothing sent'."""
    cert_pem, key_pem = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    server = Scripted(tls=ctx)

    def not_tls(conn: socket.socket, request: bytes) -> bool:
        plain = socket.socket(fileno=os.dup(conn.fileno()))  # the TCP stream under TLS
        try:
            plain.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"\x00" * 64)
        finally:
            plain.close()
        return False

    server.actions.put(not_tls)
    d = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 2), verify=str(cert_pem))
    try:
        with pytest.raises(PacAmbiguous) as info:
            stamp_fast(d)
        assert info.value.code == "CONN-PAC-CORTE" and info.value.maybe_sent is True
        assert len(server.requests) == 1  # sent once, never re-sent
    finally:
        d.close()
        server.close()


def test_tls_verification_cannot_be_turned_off():
    with pytest.raises(ValueError):
        http1.route("https://127.0.0.1:1/x", "/x", {}, False, None)


# --- The sandbox PAC -------------------------------------------------------------------------


def test_the_sandbox_stamps_and_returns_the_acuse_over_http1(tmp_path, csd):
    account = SandboxAccount("h1user", "H1-pass-123", "CUENTAH1", 10, csds={EMISOR: csd})
    with SandboxPac(tmp_path / "pac.db", accounts=[account]) as pac:
        d = FelDriver("h1user", "H1-pass-123", timbrado_url=pac.fel_timbrado_url)
        try:
            ref = f"H1-{uuidlib.uuid4().hex[:10]}"
            stamped = d.stamp(sealed(csd, "H1"), ref)
            assert pac.store.uuids_for_referencia(ref) == [stamped.uuid]
            acuse = d.acuse_envio(stamped.uuid)
            assert stamped.uuid.encode() in acuse.upper()
            assert len(idle(d)) == 1  # both calls over one kept-alive http1 connection
            assert not d.session.adapters["http://"].poolmanager.pools  # not through urllib3
            assert not d.session.cookies
        finally:
            d.close()
