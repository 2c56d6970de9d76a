"""A small HTTP server on loopback that ``put file -f http://...`` downloads from in the tests:
files, errors, bodies cut short and large bodies made as they are sent.

Routes: ``/files/<name>`` (the bytes in :attr:`HttpSource.files`; 404 if none),
``/status/<code>`` (that status, a short body), ``/big/<n>`` (``n`` bytes of
:func:`big_bytes`, with ``Content-Length``, made block by block as they are sent),
``/truncated/<n>`` (announces ``n`` bytes, sends half, closes), ``/cut`` (a chunked body
that stops without its last chunk: the connection is dropped), ``/redirect/<name>`` (302 to
``/files/<name>``). Every request's path is recorded in :attr:`HttpSource.requests`.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = 1 << 20
_RANDOM = random.Random(18).randbytes(BLOCK)


def big_blocks(size: int) -> Iterator[bytes]:
    """The bytes of ``/big/<size>``, block by block: each 1 MiB block is the block number
    (8 bytes) and the same random bytes, so that no two blocks are equal."""
    sent, n = 0, 0
    while sent < size:
        block = (n.to_bytes(8, "little") + _RANDOM[8:])[: size - sent]
        yield block
        sent += len(block)
        n += 1


def big_digest(size: int) -> str:
    h = hashlib.sha256()
    for block in big_blocks(size):
        h.update(block)
    return h.hexdigest()


class HttpSource:
    """The server, started on a free loopback port (threads; ``stop()`` ends it)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _head(self, status: int, length: int | None, **headers: str) -> None:
                self.send_response(status)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()

            def do_GET(self) -> None:
                source.requests.append(self.path)
                route, _, arg = self.path.lstrip("/").partition("/")
                if route == "files" and arg in source.files:
                    data = source.files[arg]
                    self._head(200, len(data))
                    self.wfile.write(data)
                elif route == "big":
                    size = int(arg)
                    self._head(200, size, Content_Type="application/octet-stream")
                    for block in big_blocks(size):
                        self.wfile.write(block)
                elif route == "status":
                    body = b"no such thing\n"
                    self._head(int(arg), len(body))
                    self.wfile.write(body)
                elif route == "truncated":
                    size = int(arg)
                    self._head(200, size)
                    self.wfile.write(b"t" * (size // 2))
                    self.wfile.flush()
                    self.close_connection = True
                elif route == "cut":
                    self._head(200, None, Transfer_Encoding="chunked")
                    for _ in range(3):
                        self.wfile.write(b"4000\r\n" + b"c" * 0x4000 + b"\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                elif route == "redirect":
                    self._head(302, 0, Location=f"/files/{arg}")
                else:
                    body = b"not found\n"
                    self._head(404, len(body))
                    self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that went away mid-body (the tests cut their own bodies)

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> HttpSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
