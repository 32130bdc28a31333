"""The PAC's HTTP (requests + urllib3, one pooled Session per driver) against real servers.

A scripted server on 127.0.0.1 answers each request it reads with the next action the test
queued (a reply, raw bytes, a close, a wait), and counts connections and requests, so reuse,
misbehaviour and "sent exactly once" are observed on the wire: urllib3 must never send a
request again by itself, and every failure must be classified as "nothing sent" or "maybe
sent" correctly.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import ssl
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from connector.pac.base import Timeouts
from connector.pac.errors import PacAccount, PacAmbiguous, PacError, PacTransient
from connector.pac.failures import _never_connected, classify_exception
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
    response = transport(d).post(url, BODY, HEADERS)
    return response.status_code, response.content


def idle(d: FelDriver, url: str) -> list[Any]:
    """The connections urllib3 keeps open for ``url`` (its pool's queue holds None for the
    free slots)."""
    pools = d.session.get_adapter(url).poolmanager.pools
    return [
        c
        for key in pools.keys()  # noqa: SIM118 - RecentlyUsedContainer is not iterable
        for c in list(pools[key].pool.queue)
        if c is not None and key.key_port == urllib3.util.parse_url(url).port
    ]


def stamp(d: FelDriver) -> Any:
    """TimbrarCFDI (a write) through zeep and the session, as the driver sends it."""
    assert d.timbrado is not None
    return d.timbrado.call(
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


def test_keep_alive_reuse_and_pool_size(server, driver):
    for i in range(3):
        server.actions.put(reply(body=b"<r%d/>" % i))
    assert [post(driver, server.url) for _ in range(3)] == [
        (200, b"<r0/>"),
        (200, b"<r1/>"),
        (200, b"<r2/>"),
    ]
    assert server.accepts == 1  # one connection, reused
    assert len(server.requests) == 3
    assert len(idle(driver, server.url)) == 1
    adapter = driver.session.get_adapter(server.url)
    assert adapter._pool_maxsize == 2  # the driver's pool_size


def test_urllib3_never_retries_by_itself():
    from connector.pac.soap import make_session

    adapter = make_session(3).get_adapter("https://x")
    retry = adapter.max_retries
    assert retry.total == 0 and retry.read is False and not retry.redirect


def test_read_to_close_is_not_reused(server, driver):
    server.actions.put(reply(body=b"<hasta-el-cierre/>", length=False, keep=False))
    server.actions.put(reply())
    assert post(driver, server.url) == (200, b"<hasta-el-cierre/>")
    assert post(driver, server.url) == (200, b"<ok/>")
    assert server.accepts == 2
    assert len(server.requests) == 2


# --- Connections that went away --------------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_not_reused(server, driver):
    server.actions.put(reply(keep=False))  # replies as keep-alive, then closes
    server.actions.put(reply(body=b"<second/>"))
    assert post(driver, server.url) == (200, b"<ok/>")
    [conn] = idle(driver, server.url)
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
        stamp(driver)
    assert amb.value.code == "CONN-PAC-CORTE" and amb.value.maybe_sent is True
    assert len(server.requests) == 2  # each request once: nothing was re-sent


def test_a_kept_alive_connection_dropped_after_sending_is_not_resent(server, driver):
    """The second request goes out on the kept-alive connection and the server closes it
    without replying: urllib3 must not try it again on a new connection."""
    server.actions.put(reply())
    server.actions.put(close_now)
    assert post(driver, server.url) == (200, b"<ok/>")
    with pytest.raises(PacAmbiguous) as amb:
        stamp(driver)
    assert amb.value.code == "CONN-PAC-CORTE"
    assert server.accepts == 1 and len(server.requests) == 2


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
            stamp(d)
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
            stamp(d)
        assert err.value.code == "CONN-PAC-CONEXION" and err.value.maybe_sent is False
    finally:
        d.close()


def test_an_unresolvable_host_is_never_sent():
    url = "http://no-existe.invalid/WSCFDI33.svc"
    d = FelDriver("u", "p", timbrado_url=url, timeouts=Timeouts(2, 2))
    try:
        with pytest.raises(PacTransient) as err:
            stamp(d)
        assert err.value.code == "CONN-PAC-CONEXION" and err.value.maybe_sent is False
    finally:
        d.close()


# --- Misbehaviour: maybe sent, never sent again ----------------------------------------------

MISBEHAVIOUR = {
    "garbage-status": b"HOLA MUNDO\r\n\r\n",
    "bad-status-code": b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
    "truncated-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<corto/>",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "truncated-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
}


@pytest.mark.parametrize("case", sorted(MISBEHAVIOUR))
def test_a_broken_reply_to_a_stamp_is_ambiguous_and_sent_once(server, driver, case):
    server.actions.put(raw(MISBEHAVIOUR[case]))
    with pytest.raises(PacError) as info:
        stamp(driver)
    # maybe sent: asked for by referencia before anything is sent again
    assert info.value.maybe_sent is True, case
    assert isinstance(info.value, PacAmbiguous | PacTransient), case
    assert len(server.requests) == 1


# --- Cookies, redirects, closing -------------------------------------------------------------


def test_a_cookie_lands_in_the_session_and_is_sent_back(server, driver):
    server.actions.put(reply(headers=(("Set-Cookie", "afinidad=n1; Path=/"),)))
    server.actions.put(reply())
    assert post(driver, server.url) == (200, b"<ok/>")
    assert driver.session.cookies.get("afinidad") == "n1"
    assert post(driver, server.url) == (200, b"<ok/>")
    assert b"\r\nCookie: afinidad=n1\r\n" in server.requests[1]


def test_a_redirect_is_not_followed_and_the_post_goes_once(server, driver):
    other = f"http://127.0.0.1:{server.port}/otro"
    server.actions.put(reply(307, b"", (("Location", other),)))
    with pytest.raises(PacTransient) as info:
        stamp(driver)
    assert info.value.code == "HTTP-307" and info.value.maybe_sent is False
    assert "URL" in info.value.message
    assert len(server.requests) == 1


def test_closing_the_driver_closes_the_connections(server):
    d = FelDriver("u", "p", timbrado_url=server.url, timeouts=Timeouts(2, 2))
    server.actions.put(reply())
    assert post(d, server.url) == (200, b"<ok/>")
    assert len(idle(d, server.url)) == 1
    d.close()
    assert server.eofs.get(timeout=5) == 1  # the server saw the client close it


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
        assert 1 <= len(idle(d, server.url)) <= 2  # at most pool_size kept idle
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
        with pytest.raises(PacAccount) as info:  # configuration: permanent, never accepted
            stamp(untrusted)
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
            stamp(d)
        assert info.value.code == "CONN-PAC-CORTE" and info.value.maybe_sent is True
        assert len(server.requests) == 1  # sent once, never re-sent
    finally:
        d.close()
        server.close()


def test_tls_verification_cannot_be_turned_off():
    from connector.pac.soap import make_session

    with pytest.raises(ValueError):
        make_session(1, verify=False)


# --- The sandbox PAC -------------------------------------------------------------------------


def test_the_sandbox_stamps_and_returns_the_acuse_over_one_connection(tmp_path, csd):
    account = SandboxAccount("h1user", "H1-pass-123", "CUENTAH1", 10, csds={EMISOR: csd})
    with SandboxPac(tmp_path / "pac.db", accounts=[account]) as pac:
        d = FelDriver("h1user", "H1-pass-123", timbrado_url=pac.fel_timbrado_url)
        try:
            ref = f"H1-{uuidlib.uuid4().hex[:10]}"
            stamped = d.stamp(sealed(csd, "H1"), ref)
            assert pac.store.uuids_for_referencia(ref) == [stamped.uuid]
            acuse = d.acuse_envio(stamped.uuid)
            assert stamped.uuid.encode() in acuse.upper()
            assert len(idle(d, pac.fel_timbrado_url)) == 1  # one kept-alive connection
            assert not d.session.cookies
        finally:
            d.close()


def _head(request: bytes) -> tuple[str, dict[str, str]]:
    lines = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return lines[0], dict(line.split(": ", 1) for line in lines[1:])


def test_a_prepared_post_sends_what_session_post_sends_and_cookies_go_back(server, driver):
    """Each POST is a copy of a request the session prepared once per address and headers:
    the same request line, headers and body as ``Session.post``; a cookie the PAC sets is sent
    with the next calls (the session's cookies are merged per call, as ``Session.post`` does)."""
    for _ in range(4):
        server.actions.put(reply(headers=(("Set-Cookie", "afinidad=nodo-2; Path=/"),)))
    post(driver, server.url)  # the prepared path (the session has no cookies yet)
    post(driver, server.url)  # the session now holds afinidad: merged per call
    plain = driver.session.post(server.url, data=BODY, headers=HEADERS, allow_redirects=False)
    driver.session.cookies.clear()
    post(driver, server.url)  # prepared again, no cookie
    (line1, h1), (line2, h2), (line3, h3), (line4, h4) = map(_head, server.requests)
    assert plain.status_code == 200
    assert line1 == line2 == line3 == line4 == f"POST {PATH} HTTP/1.1"
    assert h1 == h4 and "Cookie" not in h1
    assert h2 == h3 == {**h1, "Cookie": "afinidad=nodo-2"}
    for k, v in HEADERS.items():
        assert h1[k] == v
    assert h1["Content-Length"] == str(len(BODY))
    assert all(r.split(b"\r\n\r\n", 1)[1] == BODY for r in server.requests)
    prepared = transport(driver)._prepared
    assert len(prepared) == 1 and prepared[(server.url, tuple(HEADERS.items()))].body is None
