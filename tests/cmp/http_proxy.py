"""A small real HTTP server in front of OpenSSL's mock CMP server that bends its answers.

Each POST is forwarded unchanged to the mock; what goes back is the mock's CMP body
(passed through ``rewrite`` when given: e.g. :class:`cmp_resign.Resigner`) with the
status line and headers the test asks for (a 500, a 202, a 307 with a Location), or the
headers at once and then the body one byte per ``trickle`` seconds (a hostile CA holding
the agent). Without a target, the body is ``content_length`` zero bytes: a slow CA that
never finishes. ``framing`` frames the body by Content-Length (``length``), in chunked
transfer coding with chunk extensions and a trailer (``chunked``), or by closing the
connection after it (``close``); ``interim`` sends a 100 Continue first.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CmpHttpProxy:
    """``http://127.0.0.1:PORT/pkix/`` relaying to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int | None, *, status: int = 200, headers: dict[str, str] | None = None,
                 content_length: int | None = None, trickle: float | None = None,
                 rewrite: Callable[[bytes], bytes] | None = None, framing: str = "length",
                 interim: bool = False):
        proxy = self
        self.framing = framing
        self.interim = interim
        self.rewrite = rewrite
        self.target_port = target_port
        self.status = status
        self.headers = headers or {}
        self.content_length = content_length
        self.trickle = trickle
        self.requests = 0
        self.received: list[bytes] = []  # the request bodies, in order
        self._stopped = threading.Event()
        self._upstream = (None if target_port is None
                          else http.client.HTTPConnection("127.0.0.1", target_port, timeout=10))
        self._upstream_lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                proxy.requests += 1
                request = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.received.append(request)
                body, content_type = bytes(proxy.content_length or 0), "application/pkixcmp"
                if proxy._upstream is not None:
                    with proxy._upstream_lock:  # one kept-alive connection: the mock's
                        # transaction state lives as long as its client connection
                        body, content_type = proxy._forward(self.path, request)
                if proxy.rewrite is not None:
                    body = proxy.rewrite(body)
                if proxy.interim:
                    self.wfile.write(b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n")
                self.send_response(proxy.status)
                self.send_header("Content-Type", content_type)
                if proxy.framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                elif proxy.framing == "close":
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(proxy.content_length or len(body)))
                for name, value in proxy.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if proxy.framing == "chunked":
                    for start in range(0, len(body), 100):
                        chunk = body[start : start + 100]
                        self.wfile.write(b"%x;part=%d\r\n%s\r\n" % (len(chunk), start, chunk))
                    self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
                    return
                if proxy.trickle is None:
                    self.wfile.write(body)
                    return
                try:
                    for byte in body:
                        if proxy._stopped.wait(proxy.trickle):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client gave up (its deadline)
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _forward(self, path: str, request: bytes) -> tuple[bytes, str]:
        """POST to the mock; once more on a new connection if it closed the kept-alive one
        (it does when a transaction ends)."""
        try:
            return self._post(path, request)
        except (http.client.RemoteDisconnected, ConnectionError):
            self._upstream.close()
            return self._post(path, request)

    def _post(self, path: str, request: bytes) -> tuple[bytes, str]:
        self._upstream.request("POST", path, body=request,
                               headers={"Content-Type": "application/pkixcmp"})
        answer = self._upstream.getresponse()
        return answer.read(), answer.getheader("Content-Type", "application/pkixcmp")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pkix/"

    def stop(self) -> None:
        self._stopped.set()
        self.server.shutdown()
        self.server.server_close()
        if self._upstream is not None:
            self._upstream.close()

