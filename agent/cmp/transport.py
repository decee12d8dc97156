"""CMP over HTTP (RFC 6712): POST ``application/pkixcmp``, one message per request.

:class:`HttpTransport` keeps the connection alive between the messages of a
transaction (and between transactions), sets TCP_NODELAY so that small requests are
not held back by Nagle's algorithm waiting for a delayed ACK, binds an optional local
source address, and bounds each exchange by a connect timeout and a wall-clock
deadline over the whole exchange (connect, TLS handshake, headers and body): a
watchdog shuts the socket down when the deadline passes, so a CA that trickles its
answer one byte at a time cannot hold the transaction beyond it. :meth:`abort` does
the same from another thread (agent shutdown).

RFC 6712 3.3: a CMP response comes with status 200. Any other status is a transport
failure; its body, when it is ``application/pkixcmp``, is kept on the
:class:`TransportError` so that the CA's own error text can still be shown.
Redirects are not followed (RFC 6712 3.6 lets a client refuse them): the error names
where it pointed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

CONTENT_TYPE = "application/pkixcmp"
MAX_RESPONSE_SIZE = 1 << 20


class TransportError(Exception):
    """The message could not be delivered or no valid HTTP answer came back."""

    def __init__(self, message: str, timed_out: bool = False, body: bytes | None = None):
        super().__init__(message)
        self.timed_out = timed_out
        #: an ``application/pkixcmp`` body that came with a non-200 status
        self.body = body


class Transport(Protocol):
    """Delivers one request PKIMessage and returns the response bytes."""

    def post(self, message: bytes, timeout: float) -> bytes:
        ...

    def abort(self) -> None:
        """Make a running or the next :meth:`post` fail at once (from any thread)."""
        ...

    def close(self) -> None:
        ...


def _nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _nodelay(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    """TLS to the CA; its certificate must name *tls_host* (default: the URL's host),
    checked by the context's host name verification (RFC 9525)."""

    def __init__(self, *args, tls_host: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._tls_host = tls_host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        _nodelay(self.sock)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._tls_host or self.host)


@dataclass(frozen=True)
class ServerUrl:
    """A parsed ``http[s]://host[:port]/path`` CMP server URL."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> ServerUrl:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"CMP server URL {url!r} must be http:// or https://")
        if not parts.hostname:
            raise ValueError(f"CMP server URL {url!r} has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"CMP server URL {url!r} has a bad port") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path)


class HttpTransport:
    """HTTP(S) POST transport for one CMP server (RFC 6712 3)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 10.0,
        source_address: str | None = None,
        keep_alive: bool = True,
        tls_context: ssl.SSLContext | None = None,
        tls_host: str | None = None,
    ):
        self.url = ServerUrl.parse(url)
        self.connect_timeout = connect_timeout
        self.source_address = source_address
        self.keep_alive = keep_alive
        self.tls_context = tls_context
        self.tls_host = tls_host
        self._conn: http.client.HTTPConnection | None = None
        self._expired = False
        self._aborted = False
        #: TCP connections opened so far (each reuse of a kept-alive one saves a handshake)
        self.connections_opened = 0

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        source = (self.source_address, 0) if self.source_address else None
        if self.url.scheme == "https":
            context = self.tls_context or ssl.create_default_context()
            return _HTTPSConnection(
                self.url.host, self.url.port, timeout=timeout, source_address=source,
                context=context, tls_host=self.tls_host,
            )
        return _HTTPConnection(self.url.host, self.url.port, timeout=timeout, source_address=source)

    def post(self, message: bytes, timeout: float) -> bytes:
        """POST *message*; the whole exchange takes at most *timeout* seconds."""
        deadline = time.monotonic() + timeout
        self._expired = False
        watchdog = threading.Timer(timeout, self._expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            return self._post(message, deadline)
        finally:
            watchdog.cancel()

    def _post(self, message: bytes, deadline: float) -> bytes:
        reused = self._conn is not None
        try:
            return self._exchange(message, deadline)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self._drop()
            if not reused:
                raise TransportError(f"{self._where()}: connection closed by the server") from None
        except TransportError:
            self._drop()
            raise
        # the kept-alive connection had been closed by the server: one fresh attempt
        try:
            return self._exchange(message, deadline)
        except TransportError:
            self._drop()
            raise
        except (http.client.HTTPException, OSError) as exc:
            self._drop()
            raise TransportError(f"{self._where()}: {exc}") from None

    def _expire(self) -> None:
        """The deadline passed: end the exchange whatever it is waiting for."""
        self._expired = True
        self._shutdown()

    def abort(self) -> None:
        """End a running :meth:`post` from another thread (it raises TransportError);
        later posts fail too, until :meth:`close`."""
        self._aborted = True
        self._shutdown()

    def _shutdown(self) -> None:
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:  # the plain socket call: an SSLSocket's would drop its TLS state under the reader
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _where(self) -> str:
        return f"{self.url.scheme}://{self.url.host}:{self.url.port}{self.url.path}"

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0 or self._expired:
            raise TransportError(f"{self._where()}: timed out", timed_out=True)
        return left

    def _exchange(self, message: bytes, deadline: float) -> bytes:
        try:
            return self._exchange_once(message, deadline)
        except Exception:  # whatever a socket shut down under the reader raised
            if self._aborted:
                self._drop()
                raise TransportError(f"{self._where()}: aborted (agent shutting down)") from None
            if self._expired or time.monotonic() >= deadline:
                self._drop()
                raise TransportError(f"{self._where()}: timed out", timed_out=True) from None
            raise

    def _exchange_once(self, message: bytes, deadline: float) -> bytes:
        if self._aborted:
            raise TransportError(f"{self._where()}: aborted (agent shutting down)")
        try:
            if self._conn is None:
                self._conn = self._new_connection(min(self.connect_timeout, self._remaining(deadline)))
                self._conn.connect()
                self.connections_opened += 1
            conn = self._conn
            conn.sock.settimeout(self._remaining(deadline))
            headers = {
                "Content-Type": CONTENT_TYPE,
                "Accept": CONTENT_TYPE,
                "Connection": "keep-alive" if self.keep_alive else "close",
            }
            conn.request("POST", self.url.path, body=message, headers=headers)
            conn.sock.settimeout(self._remaining(deadline))
            response = conn.getresponse()
            length = response.getheader("Content-Length")
            if length is not None and int(length) > MAX_RESPONSE_SIZE:
                raise TransportError(f"{self._where()}: response too large ({length} bytes)")
            body = response.read(MAX_RESPONSE_SIZE + 1)
            if len(body) > MAX_RESPONSE_SIZE:
                raise TransportError(f"{self._where()}: response too large")
            if self._expired:  # the watchdog cut the body short
                raise TransportError(f"{self._where()}: timed out", timed_out=True)
            if not self.keep_alive or response.will_close:
                self._drop()
        except (socket.timeout, TimeoutError):
            self._drop()
            raise TransportError(f"{self._where()}: timed out", timed_out=True) from None
        except ConnectionRefusedError:
            self._drop()
            raise TransportError(f"{self._where()}: connection refused") from None
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            raise
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise TransportError(
                f"{self._where()}: TLS server certificate not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            self._drop()
            raise TransportError(f"{self._where()}: TLS error: {exc.reason or exc}") from None
        except (http.client.HTTPException, OSError, ValueError) as exc:
            self._drop()
            raise TransportError(f"{self._where()}: {exc}") from None
        return self._check_response(response, body)

    def _check_response(self, response: http.client.HTTPResponse, body: bytes) -> bytes:
        """RFC 6712 3.3: 200 with ``application/pkixcmp``; anything else is a failure."""
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        status = f"HTTP {response.status} {response.reason}".rstrip()
        if 300 <= response.status < 400:
            location = response.getheader("Location")
            self._drop()
            raise TransportError(
                f"{self._where()}: {status}, redirect to "
                f"{location if location else '(no Location header)'} not followed"
            )
        if response.status != 200:
            self._drop()
            raise TransportError(
                f"{self._where()}: {status} instead of 200 (RFC 6712 3.3)",
                body=body if content_type == CONTENT_TYPE and body else None,
            )
        if content_type != CONTENT_TYPE:
            raise TransportError(
                f"{self._where()}: {status}, "
                f"content type {content_type or 'none'} instead of {CONTENT_TYPE}"
            )
        return body

    def _drop(self) -> None:
        """Close the connection (a later post opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection and undo :meth:`abort`: the transport may be used again."""
        self._drop()
        self._aborted = False

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop()
