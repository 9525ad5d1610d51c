"""A TCP forwarder that a test opens and closes, to make a real server (PostgreSQL, Redis) go away
and come back on the same address without touching the shared server itself."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TcpProxy:
    """127.0.0.1:`port` -> `target` while open; closed, connections are refused and the open ones cut."""

    def __init__(
        self, target: tuple[str, int], port: int | None = None, tap: Callable[[bytes], None] | None = None
    ) -> None:
        """`tap`: shown every chunk a client sends, in order (one client at a time)."""
        self.target = target
        self._tap = tap
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream, self._tap), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, tap: Callable[[bytes], None] | None = None) -> None:
        try:
            while data := source.recv(65536):
                if tap is not None:
                    tap(data)
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:  # the second of the pair's two pipes to end closes both
            first = source in self._sockets
            self._sockets -= {source, sink}
        if not first:
            source.close()
            sink.close()


class PgRoundTrips:
    """Counts a PostgreSQL client's round trips from the bytes it sends (a TcpProxy tap): every Sync
    ('S', the end of an extended-protocol exchange) and every simple Query ('Q') waits for the server's
    ReadyForQuery. The untyped startup packets (SSLRequest, StartupMessage) come first."""

    SSL_REQUEST = 80877103
    GSSENC_REQUEST = 80877104

    def __init__(self) -> None:
        self.count = 0
        self._buffer = b""
        self._started = False
        self._lock = threading.Lock()

    def __call__(self, data: bytes) -> None:
        with self._lock:
            self._buffer += data
            while True:
                if not self._started:
                    if len(self._buffer) < 8:
                        return
                    length = int.from_bytes(self._buffer[:4], "big")
                    code = int.from_bytes(self._buffer[4:8], "big")
                    if len(self._buffer) < length:
                        return
                    self._buffer = self._buffer[length:]
                    self._started = code not in (self.SSL_REQUEST, self.GSSENC_REQUEST)
                    continue
                if len(self._buffer) < 5:
                    return
                length = int.from_bytes(self._buffer[1:5], "big")
                if len(self._buffer) < 1 + length:
                    return
                if self._buffer[:1] in (b"S", b"Q"):
                    self.count += 1
                self._buffer = self._buffer[1 + length :]
