"""A TCP forwarder that a test can cut and restore: 'the broker went away, and came back'.

It can also go silent the way a SIGSTOPped proxy (or a dropped network path) does: connections
are still accepted and kept open, the kernel still takes every byte sent, but nothing is
forwarded either way until `restore()`; then what was held flows on.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.flowing = threading.Event()
        self.flowing.set()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.up.clear()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def blackhole(self) -> None:
        """Go silent: keep accepting and keep every connection open, forward nothing."""
        self.flowing.clear()

    def restore(self) -> None:
        self.up.set()
        self.flowing.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
        self.flowing.set()  # threads held by a black hole wake up and find their sockets closed

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            with self._lock:
                self._connections.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self.flowing.wait()  # a silent proxy does not even dial the target
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            if self._closed or client.fileno() < 0:
                upstream.close()
                return
            self._connections.append(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()  # held while silent, delivered after restore()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self.flowing.wait()  # even the close waits: a silent proxy forwards no FIN either
            for end in (source, sink):
                # shutdown() first: close() alone sends no FIN while the other direction's
                # thread is still blocked in recv() on the socket, and the peer (PostgreSQL
                # with an open transaction of a killed client) would wait for ever.
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    end.close()
