"""A minimal HTTP/1.1 client for the PAC's hot SOAP calls (one POST, one reply).

``_QuietTransport.post_bytes`` sends FEL's per-invoice operations through here when the
session would add nothing (no proxy, cookies, auth or hooks; our :class:`Adapter`): the same
bytes on the wire as requests + urllib3, for a fraction of their CPU and system calls.

* One :class:`Pool` per :class:`Adapter` (``make_session`` mounts one per driver session):
  keep-alive connections per (scheme, host, port, TLS settings), reused last-in first-out,
  at most ``pool_maxsize`` kept idle (more may be open at once). ``adapter.close()`` — which
  ``Session.close()`` calls — closes them too.
* An idle connection is reused only if it has nothing to read (the server closed it or sent
  junk otherwise), as urllib3 checks. A request is never sent twice: once any byte may have
  gone out, every failure is raised (a stamp is not idempotent).
* TLS is verified exactly as requests does (its CA bundle, or the configured file or folder;
  client certificate; host name check; SNI). Verification cannot be turned off.
* Failures are the requests exceptions the urllib3 path raises for the same case, so
  ``classify_exception`` reads both the same; a connection that could not be opened carries
  :class:`NotConnected` in its cause chain (nothing was sent). One difference: a TLS error
  after the handshake (the request may have gone out) is a ``ConnectionError`` — ambiguous
  for a stamp, asked for by referencia before any resend — where urllib3 gives an
  ``SSLError``, which reads as "nothing sent".
* Replies: status line, headers (case-insensitive, repeated), 1xx skipped, body by
  Content-Length, chunked (trailers read and dropped) or read to close; gzip/deflate decoded
  here, other content codings through urllib3's decoders.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import select
import socket
import ssl
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import urllib3
from requests import exceptions as rq
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH, extract_zipped_paths
from urllib3.util.ssl_ import create_urllib3_context

MAX_HEAD = 64 * 1024  # status line + headers of one reply
MAX_LINE = 8 * 1024  # one chunk-size or trailer line
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))

# Plain sockets on Linux: blocking with kernel timeouts (SO_RCVTIMEO/SO_SNDTIMEO), so each
# send and receive is one system call; Python's timeout mode polls before each of them.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_PEEK = getattr(socket, "MSG_PEEK", 0) | getattr(socket, "MSG_DONTWAIT", 0)


class NotConnected(OSError):
    """The connection could not be opened: no byte of the request was sent."""


class _Broken(Exception):
    """The reply broke the protocol (garbled status line, headers too long, bad chunk)."""


# --- Replies ---------------------------------------------------------------------------------


class Headers:
    """Reply headers: case-insensitive, repeated ones kept (``get`` joins them with ", ",
    as urllib3 does)."""

    __slots__ = ("items", "_index")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        index: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            index[key] = f"{index[key]}, {value}" if key in index else value
        self._index = index

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._index.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self.items if n.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index


class Reply:
    """One reply. It also stands in for urllib3's response where requests reads cookies
    (``_original_response.msg``) and closes a response it follows a redirect from."""

    __slots__ = ("status", "reason", "version", "headers", "body", "will_close", "_head")

    def __init__(
        self, status: int, reason: str, version: int, headers: Headers, head: bytes
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = b""
        self.will_close = version < 11 or "close" in (headers.get("connection") or "").lower()
        self._head = head

    @property
    def redirect(self) -> str | None:
        """The Location of a redirect status, else None."""
        if self.status in REDIRECT_STATUSES:
            return self.headers.get("location")
        return None

    @property
    def msg(self) -> http.client.HTTPMessage:
        """The headers as http.client parses them (what requests' cookie jar reads)."""
        fields = self._head.split(b"\n", 1)[1]  # past the status line
        return http.client.parse_headers(io.BytesIO(fields))

    @property
    def _original_response(self) -> Reply:
        return self

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""  # the body is already read

    def close(self) -> None:
        pass


# --- Routes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Where and how one kind of POST goes: the pool key, the TLS context and the request
    head (request line and headers up to ``Content-Length:``), built once."""

    key: tuple[Any, ...]
    host: str
    port: int
    tls: ssl.SSLContext | None
    head: bytes
    url: str


def route(url: str, path: str, headers: dict[str, str], verify: Any, cert: Any) -> Route:
    """The route of a POST to ``url`` with ``headers`` (the session's merged with the
    operation's; any Content-Length is replaced by the body's). ``verify`` and ``cert`` are
    requests' settings (True or a CA file/folder; a client certificate file or pair)."""
    parsed = urllib3.util.parse_url(url)
    scheme = (parsed.scheme or "http").lower()
    host = parsed.host
    if scheme not in ("http", "https") or not host:
        raise rq.InvalidURL(f"URL no válida para el PAC: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parsed.port or default
    hostname = host.strip("[]")
    if verify is False:
        raise ValueError("La verificación TLS no se puede desactivar.")
    tls = _tls_context(verify, cert) if scheme == "https" else None
    host_header = host if port == default else f"{host}:{port}"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}"]
    lines += [
        f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("content-length", "host")
    ]
    head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
    cert_key = tuple(cert) if isinstance(cert, list | tuple) else cert
    key = (scheme, hostname, port, verify if scheme == "https" else None, cert_key)
    return Route(key=key, host=hostname, port=port, tls=tls, head=head, url=url)


def _tls_context(verify: Any, cert: Any) -> ssl.SSLContext:
    """urllib3's client context with requests' verification settings (``cert_verify``)."""
    ctx = create_urllib3_context()  # same protocol floor, ciphers and options as urllib3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ca = extract_zipped_paths(DEFAULT_CA_BUNDLE_PATH) if verify is True else verify
    if not ca or not os.path.exists(ca):
        raise OSError(f"Could not find a suitable TLS CA certificate bundle, invalid path: {ca}")
    if os.path.isdir(ca):
        ctx.load_verify_locations(capath=ca)
    else:
        ctx.load_verify_locations(cafile=ca)
    if cert:
        cert_file, key_file = (cert[0], cert[1]) if isinstance(cert, list | tuple) else (cert, None)
        if not os.path.exists(cert_file):
            raise OSError(f"Could not find the TLS certificate file, invalid path: {cert_file}")
        if key_file and not os.path.exists(key_file):
            raise OSError(f"Could not find the TLS key file, invalid path: {key_file}")
        ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# --- Connections -----------------------------------------------------------------------------


class _Conn:
    """One socket and what was read past the last reply (nothing, on a healthy connection)."""

    __slots__ = ("sock", "buf", "pos", "tls", "read_timeout", "generation")

    def __init__(self, sock: socket.socket, tls: bool, generation: int) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0
        self.tls = tls
        self.read_timeout: float | None = None
        self.generation = generation

    def set_timeout(self, seconds: float) -> None:
        if self.read_timeout == seconds:
            return
        if self.tls or not _KERNEL_TIMEOUTS:
            self.sock.settimeout(seconds)
        else:
            sec = int(seconds)
            tv = struct.pack("@ll", sec, int((seconds - sec) * 1e6))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self.read_timeout = seconds

    def usable(self) -> bool:
        """False when the idle connection has something to read: the server closed it
        (end of file) or sent bytes nobody asked for."""
        sock = self.sock
        try:
            if not self.tls and _KERNEL_TIMEOUTS:
                sock.recv(1, _PEEK)  # raises BlockingIOError when there is nothing
                return False
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return False
            if hasattr(select, "poll"):  # select() refuses descriptors past 1023
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([sock], [], [], 0)
            return not readable
        except BlockingIOError:
            return True  # nothing to read: still open
        except (OSError, ValueError):
            return False

    def fill(self) -> None:
        """Read what the socket has (waiting up to the read timeout); EOF raises."""
        data = self.sock.recv(65536)
        if not data:
            raise _Eof()
        if self.pos:
            self.buf = self.buf[self.pos :] + data
            self.pos = 0
        else:
            self.buf += data

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                out = self.buf[self.pos : i]
                self.pos = i + 1
                return out.rstrip(b"\r")
            if len(self.buf) - self.pos > MAX_LINE:
                raise _Broken("línea demasiado larga en la respuesta")
            self.fill()

    def exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            self.fill()
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        try:
            while True:
                self.fill()
        except _Eof:
            pass
        out = self.buf[self.pos :]
        self.buf, self.pos = b"", 0
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _Eof(Exception):
    """The server closed the connection."""


def _head(conn: _Conn) -> Reply:
    """Status line and headers of the final reply (1xx skipped)."""
    while True:
        start = conn.pos
        while True:
            buf = conn.buf
            end = buf.find(b"\r\n\r\n", start)
            if end >= 0:
                stop = end + 4
                break
            end = buf.find(b"\n\n", start)
            if end >= 0:
                stop = end + 2
                break
            if len(buf) - start > MAX_HEAD:
                raise _Broken("encabezados de la respuesta demasiado largos")
            conn.fill()
            start = conn.pos
        if stop - start > MAX_HEAD:
            raise _Broken("encabezados de la respuesta demasiado largos")
        head = conn.buf[start:stop]
        conn.pos = stop
        reply = _parse_head(head)
        if not 100 <= reply.status < 200:
            return reply
        if reply.status == 101:
            raise _Broken("el servidor cambió de protocolo (101) sin pedírselo")


def _parse_head(head: bytes) -> Reply:
    text = head.decode("latin-1")
    first, _, rest = text.partition("\n")
    parts = first.rstrip("\r").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or len(parts[1]) != 3:
        raise _Broken(f"línea de estado no válida: {first[:80]!r}")
    if parts[0] == "HTTP/1.1":
        version = 11
    elif parts[0] == "HTTP/1.0":
        version = 10
    else:
        raise _Broken(f"versión de HTTP no soportada: {parts[0][:20]!r}")
    if not parts[1].isdigit():
        raise _Broken(f"línea de estado no válida: {first[:80]!r}")
    status = int(parts[1])
    if status < 100:
        raise _Broken(f"línea de estado no válida: {first[:80]!r}")
    items: list[tuple[str, str]] = []
    for raw in rest.split("\n"):
        line = raw.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t" and items:  # obsolete line folding
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep and name and name == name.strip():
            items.append((name, value.strip()))
    reason = parts[2].strip() if len(parts) > 2 else ""
    return Reply(status, reason, version, Headers(items), head)


def _body(conn: _Conn, reply: Reply) -> bytes:
    """The raw body; sets ``reply.will_close`` when the connection cannot be reused."""
    status = reply.status
    if status in (204, 304):
        return b""
    te = reply.headers.get("transfer-encoding")
    if te is not None:
        if te.rsplit(",", 1)[-1].strip().lower() == "chunked":
            return _chunked(conn)
        reply.will_close = True
        return conn.rest()
    length = reply.headers.get("content-length")
    if length is not None:
        try:
            sizes = {int(v) for v in length.split(",")}
        except ValueError:
            sizes = set()
        if len(sizes) > 1:  # urllib3 refuses it too
            raise rq.InvalidHeader("Content-Length contained multiple unmatching values")
        if sizes and (size := sizes.pop()) >= 0:
            try:
                return conn.exact(size)
            except _Eof:
                got = len(conn.buf) - conn.pos
                raise _Broken(
                    f"IncompleteRead({got} bytes read, {size - got} more expected)"
                ) from None
    reply.will_close = True
    return conn.rest()


def _chunked(conn: _Conn) -> bytes:
    parts: list[bytes] = []
    try:
        while True:
            line = conn.line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Broken(f"tamaño de bloque no válido: {line[:40]!r}") from None
            if size < 0:
                raise _Broken(f"tamaño de bloque no válido: {line[:40]!r}")
            if size == 0:
                while conn.line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(conn.exact(size))
            if conn.line():
                raise _Broken("falta el fin de línea de un bloque")
    except _Eof:
        raise _Broken("la conexión se cerró a mitad de un bloque") from None


def _decode(body: bytes, coding: str) -> bytes:
    """The body without its Content-Encoding (gzip/deflate here; others as urllib3 does)."""
    c = coding.strip().lower()
    try:
        if c in ("gzip", "x-gzip"):
            out = []
            data = body
            while data:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out.append(d.decompress(data))
                out.append(d.flush())
                data = d.unused_data
            return b"".join(out)
        if c == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if c in ("", "identity"):
            return body
        # brotli, zstd, lists of codings, unknown ones: exactly urllib3's handling
        resp = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers={"content-encoding": coding},
            preload_content=False,
            decode_content=True,
        )
        return resp.read()
    except (zlib.error, urllib3.exceptions.DecodeError) as exc:
        raise rq.ContentDecodingError(
            f"Received response with content-encoding: {coding}, but failed to decode it.",
            exc,
        ) from exc


# --- The pool --------------------------------------------------------------------------------


class Pool:
    """Keep-alive connections of one adapter, per route key; thread-safe."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(1, maxsize)
        self._lock = threading.Lock()
        self._idle: dict[tuple[Any, ...], list[_Conn]] = {}
        self._generation = 0

    def post(
        self,
        route: Route,
        body: bytes,
        connect_timeout: float,
        read_timeout: float,
        request: Any = None,
    ) -> Reply:
        """Send one POST and read its reply; requests' exceptions on failure (see module)."""
        conn = self._checkout(route, connect_timeout, request)
        keep = False
        try:
            conn.set_timeout(read_timeout)
            try:  # one write: head and body together
                conn.sock.sendall(b"%s%d\r\n\r\n%s" % (route.head, len(body), body))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may have replied before closing (as urllib3 reads on)
            except (TimeoutError, BlockingIOError) as exc:
                raise rq.ConnectionError(_aborted(exc), request=request) from exc
            except OSError as exc:  # a TLS error too: the handshake was done, bytes went out
                raise rq.ConnectionError(_aborted(exc), request=request) from exc
            try:
                reply = _head(conn)
            except (TimeoutError, BlockingIOError) as exc:
                raise rq.ReadTimeout(
                    f"{route.url}: read timed out. (read timeout={read_timeout})",
                    request=request,
                ) from exc
            except _Eof:
                exc2 = http.client.RemoteDisconnected(
                    "Remote end closed connection without response"
                )
                raise rq.ConnectionError(_aborted(exc2), request=request) from exc2
            except (OSError, _Broken) as exc:
                raise rq.ConnectionError(_aborted(exc), request=request) from exc
            try:
                raw = _body(conn, reply)
            except rq.RequestException:  # an OSError too: raised as it is
                raise
            except (TimeoutError, BlockingIOError) as exc:
                raise rq.ConnectionError(
                    f"{route.url}: read timed out. (read timeout={read_timeout})",
                    request=request,
                    response=reply,
                ) from exc
            except (OSError, _Broken) as exc:  # a TLS error too (after the handshake)
                raise rq.ChunkedEncodingError(
                    f"Connection broken: {exc!r}", request=request, response=reply
                ) from exc
            coding = reply.headers.get("content-encoding")
            reply.body = _decode(raw, coding) if coding else raw
            keep = not reply.will_close and conn.pos == len(conn.buf)
            conn.buf, conn.pos = b"", 0
            return reply
        finally:
            if keep:
                self._checkin(route.key, conn)
            else:
                conn.close()

    def _checkout(self, route: Route, connect_timeout: float, request: Any) -> _Conn:
        """The last idle connection of the route that is still usable, or a new one."""
        key = route.key
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
                generation = self._generation
            if conn is None:
                return self._connect(route, connect_timeout, generation, request)
            if conn.usable():
                return conn
            conn.close()

    def _checkin(self, key: tuple[Any, ...], conn: _Conn) -> None:
        with self._lock:
            if conn.generation == self._generation:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.maxsize:
                    idle.append(conn)
                    return
        conn.close()

    def _connect(self, route: Route, timeout: float, generation: int, request: Any) -> _Conn:
        where = f"{route.host}:{route.port}"
        try:
            sock = socket.create_connection((route.host, route.port), timeout=timeout)
        except TimeoutError as exc:
            raise rq.ConnectTimeout(
                NotConnected(f"{where}: tiempo de conexión agotado ({timeout} s)"),
                request=request,
            ) from exc
        except OSError as exc:
            err = NotConnected(f"{where}: no se pudo conectar: {exc}")
            err.__cause__ = exc
            raise rq.ConnectionError(err, request=request) from err
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if route.tls is not None:
                sock = route.tls.wrap_socket(sock, server_hostname=route.host)
            elif _KERNEL_TIMEOUTS:
                sock.settimeout(None)  # blocking; timeouts set in the kernel (set_timeout)
        except TimeoutError as exc:
            sock.close()
            raise rq.ConnectTimeout(
                NotConnected(f"{where}: tiempo agotado en el saludo TLS ({timeout} s)"),
                request=request,
            ) from exc
        except ssl.SSLError as exc:
            sock.close()
            raise rq.SSLError(exc, request=request) from exc
        except OSError as exc:
            sock.close()
            err = NotConnected(f"{where}: la conexión se cortó al abrirla: {exc}")
            err.__cause__ = exc
            raise rq.ConnectionError(err, request=request) from err
        except BaseException:
            sock.close()
            raise
        return _Conn(sock, route.tls is not None, generation)

    def close(self) -> None:
        """Close the idle connections; those in use are closed when their reply is read."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _aborted(exc: BaseException) -> urllib3.exceptions.ProtocolError:
    """What urllib3 wraps a broken exchange in (requests' ConnectionError holds it)."""
    return urllib3.exceptions.ProtocolError("Connection aborted.", exc)


# --- The adapter that owns a pool -------------------------------------------------------------


class Adapter(HTTPAdapter):
    """requests' adapter (used for everything but the hot calls) with this module's
    :class:`Pool` beside urllib3's; ``close()`` (``Session.close()``) closes both."""

    def __init__(self, pool_maxsize: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
        self.fast_pool = Pool(pool_maxsize)

    def close(self) -> None:
        self.fast_pool.close()
        super().close()
