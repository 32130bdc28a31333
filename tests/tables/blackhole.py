"""A TCP proxy on 127.0.0.1 in front of a database server that can be switched to "black
hole": both sockets stay open but no byte goes through, in either direction, as when the
network to a server is cut silently (packets dropped, no RST: the client's calls wait). Bytes
read while black-holed are held and relayed once it relays again (as TCP retransmits them after
a cut that heals), so a connection that lives through the cut goes on intact."""

from __future__ import annotations

import contextlib
import socket
import threading


class BlackHoleProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._relay = threading.Event()
        self._relay.set()
        self._closed = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def black_hole(self) -> None:
        self._relay.clear()

    def relay(self) -> None:
        self._relay.set()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._relay.wait()  # a connection attempt during the cut gets no answer either
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                while not self._relay.wait(0.1):  # held, not dropped, while black-holed
                    if self._closed.is_set():
                        return
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._relay.set()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()
