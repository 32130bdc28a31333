"""A real HTTP proxy on 127.0.0.1 for the proxy tests: CONNECT tunnels (HTTPS) and forwarding
of absolute-URI requests (HTTP), Basic ``Proxy-Authorization``, and the ways a corporate proxy
says no (407 for other credentials, a 502 of its own). Threads and sockets only."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from dataclasses import dataclass, field


def _read_head(conn: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _read_body(conn: socket.socket, rest: bytes, n: int) -> tuple[bytes, bytes]:
    while len(rest) < n:
        data = conn.recv(65536)
        if not data:
            break
        rest += data
    return rest[:n], rest[n:]


@dataclass
class Proxy:
    """``Proxy(user, password)`` requires those credentials (None: no authentication);
    ``refuse`` answers every request with that status (e.g. 502)."""

    user: str | None = None
    password: str | None = None
    refuse: int | None = None
    connects: list[str] = field(default_factory=list)  # CONNECT targets tunnelled
    forwarded: list[bytes] = field(default_factory=list)  # request lines forwarded (HTTP)
    refused: list[int] = field(default_factory=list)  # statuses the proxy answered itself

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = ""
        if user:
            auth = f"{user}:{password}@" if password is not None else f"{user}@"
        return f"http://{auth}127.0.0.1:{self.port}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving -------------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._socks.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _authorized(self, head: bytes) -> bool:
        if self.user is None:
            return True
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "proxy-authorization":
                return value.strip() == f"Basic {token}"
        return False

    def _answer(self, conn: socket.socket, status: int, reason: str) -> None:
        self.refused.append(status)
        extra = 'Proxy-Authenticate: Basic realm="empresa"\r\n' if status == 407 else ""
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )

    def _handle(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            buf = b""
            while True:
                head, buf = _read_head(conn, buf)
                if head is None:
                    return
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
                if not self._authorized(head):
                    self._answer(conn, 407, "Proxy Authentication Required")
                    return
                if self.refuse is not None:
                    self._answer(conn, self.refuse, "Bad Gateway")
                    return
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                    self.connects.append(target)
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self._pipe(conn, upstream, buf)
                    return
                body, buf = _read_body(conn, buf, _length(head))
                self._forward(conn, head, body, target)
        except OSError:
            return
        finally:
            if upstream is not None:
                upstream.close()
            conn.close()

    def _forward(self, conn: socket.socket, head: bytes, body: bytes, target: str) -> None:
        """One absolute-URI request, sent in origin form on a new upstream connection; the
        reply (Content-Length) goes back and the client's connection stays open."""
        rest = target.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        lines = head.split(b"\r\n")
        method = lines[0].split(b" ")[0]
        self.forwarded.append(lines[0])
        kept = [ln for ln in lines[1:] if not ln.lower().startswith((b"proxy-", b"connection:"))]
        request = b"\r\n".join(
            [method + b" /" + path.encode() + b" HTTP/1.1", *kept, b"Connection: close"]
        )
        with socket.create_connection((host, int(port or 80)), timeout=10) as up:
            up.sendall(request + b"\r\n\r\n" + body)
            rhead, rbuf = _read_head(up, b"")
            if rhead is None:
                raise OSError("upstream closed")
            rbody, _ = _read_body(up, rbuf, _length(rhead))
        rlines = [ln for ln in rhead.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        conn.sendall(b"\r\n".join(rlines) + b"\r\n\r\n" + rbody)

    def _pipe(self, a: socket.socket, b: socket.socket, pending: bytes) -> None:
        if pending:
            b.sendall(pending)

        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=copy, args=(b, a), daemon=True)
        t.start()
        copy(a, b)
        t.join(30)
