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

The HTTP/1.1 exchange (RFC 9112) is written here rather than taken from
``http.client``, whose import (with ``email`` and ``ssl``) cost a shell command's
``cmp ir`` about 6 % of its instructions; a POST with a known body and one response
(status line, headers, a body framed by Content-Length, chunked transfer coding or the
end of the connection, interim 1xx responses skipped) is all CMP needs. ``ssl`` is
imported only for an https URL.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

CONTENT_TYPE = "application/pkixcmp"
MAX_RESPONSE_SIZE = 1 << 20
#: bounds on the response's head, as http.client has them
MAX_LINE = 65536
MAX_HEADERS = 100


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


class ServerClosed(ConnectionError):
    """The server closed the connection before a response began (a kept-alive
    connection it had given up: the request may be sent again on a new one)."""


class HttpProtocolError(Exception):
    """The answer is not a well-formed HTTP/1.x response."""


@dataclass(frozen=True)
class HttpResponse:
    """A final HTTP response (RFC 9112): status, header fields by lower-case name (repeated
    fields joined by ", "), body, and whether the server closes the connection after it."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    will_close: bool

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HttpProtocolError("response header line too long")
    return line


def _read_fields(reader: BinaryIO) -> dict[str, str]:
    """Header (or trailer) fields up to the empty line (RFC 9112 5)."""
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line.endswith(b"\n"):
            raise HttpProtocolError("connection closed in the response headers")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise HttpProtocolError(f"bad header line {line[:80]!r}")
        name, value = name.lower(), value.strip()
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    raise HttpProtocolError(f"more than {MAX_HEADERS} header fields")


def _read_chunked(reader: BinaryIO, limit: int) -> bytes:
    """A body in chunked transfer coding (RFC 9112 7.1); trailer fields are read and
    dropped."""
    parts, size = [], 0
    while True:
        line = _line(reader).split(b";", 1)[0].strip()
        try:
            length = int(line, 16)
        except ValueError:
            raise HttpProtocolError(f"bad chunk size {line[:20]!r}") from None
        if length < 0:
            raise HttpProtocolError(f"bad chunk size {line[:20]!r}")
        if length == 0:
            _read_fields(reader)
            return b"".join(parts)
        size += length
        if size > limit:
            raise HttpProtocolError("response too large")
        parts.append(_read_exactly(reader, length))
        if _line(reader) not in (b"\r\n", b"\n"):
            raise HttpProtocolError("chunk not followed by CRLF")


def _read_exactly(reader: BinaryIO, length: int) -> bytes:
    data = reader.read(length)
    if len(data) < length:
        raise HttpProtocolError(f"connection closed after {len(data)} of {length} body bytes")
    return data


def read_response(reader: BinaryIO, limit: int = MAX_RESPONSE_SIZE) -> HttpResponse:
    """The final response to a POST from *reader* (RFC 9112 4, 6; 1xx responses skipped);
    a body over *limit* bytes raises :class:`HttpProtocolError`."""
    while True:
        line = _line(reader)
        if not line:
            raise ServerClosed("connection closed by the server")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise HttpProtocolError(f"bad status line {line[:80]!r}")
        status = int(code)
        headers = _read_fields(reader)
        if not 100 <= status < 200:
            break
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if status in (204, 304):
        body = b""
    elif coding is not None:
        if coding.rsplit(",", 1)[-1].strip().lower() != "chunked":
            raise HttpProtocolError(f"transfer coding {coding!r} not supported")
        body = _read_chunked(reader, limit)
    elif length is not None:
        values = {v.strip() for v in length.split(",")}  # repeated fields must agree
        if len(values) != 1 or not min(values).isdigit():
            raise HttpProtocolError(f"bad Content-Length {length!r}")
        size = int(min(values))
        if size > limit:
            raise HttpProtocolError(f"response too large ({size} bytes)")
        body = _read_exactly(reader, size)
    else:  # delimited by the end of the connection (RFC 9112 6.3, item 8)
        body = reader.read(limit + 1)
        will_close = True
        if len(body) > limit:
            raise HttpProtocolError("response too large")
    return HttpResponse(status, reason, headers, body, will_close)


class _Connection:
    """One open connection to the server: its socket and a buffered reader over it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


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
        if not path.isascii() or any(ord(c) <= 0x20 or c == "\x7f" for c in path):
            raise ValueError(f"CMP server URL {url!r}: spaces, control characters and"
                             " non-ASCII characters in the path must be percent-encoded")
        return cls(parts.scheme, parts.hostname, port, path)


def _describe(exc: Exception) -> str:
    """An exchange's failure for the operator; TLS failures by their reason (``ssl`` is
    loaded only once an https connection is made, and only then can they occur)."""
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS server certificate not trusted: {exc.verify_message}"
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return str(exc)


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
        self._conn: _Connection | None = None
        self._expired = False
        self._aborted = False
        #: TCP connections opened so far (each reuse of a kept-alive one saves a handshake)
        self.connections_opened = 0

    def _connect(self, timeout: float) -> _Connection:
        source = (self.source_address, 0) if self.source_address else None
        sock = socket.create_connection((self.url.host, self.url.port), timeout, source)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.url.scheme == "https":
                # the CA's certificate must name tls_host (default: the URL's host), checked
                # by the context's host name verification (RFC 9525)
                import ssl

                context = self.tls_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self.tls_host or self.url.host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

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
        except (ServerClosed, ConnectionResetError, BrokenPipeError):
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
        except (HttpProtocolError, OSError) as exc:
            self._drop()
            raise TransportError(f"{self._where()}: {_describe(exc)}") from None

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

    def _request_head(self, length: int) -> bytes:
        host = self.url.host if self.url.host.isascii() else self.url.host.encode("idna").decode()
        if ":" in host:
            host = f"[{host}]"
        if self.url.port != (443 if self.url.scheme == "https" else 80):
            host = f"{host}:{self.url.port}"
        return (f"POST {self.url.path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: {CONTENT_TYPE}\r\nAccept: {CONTENT_TYPE}\r\n"
                f"Content-Length: {length}\r\n"
                f"Connection: {'keep-alive' if self.keep_alive else 'close'}\r\n\r\n").encode()

    def _exchange_once(self, message: bytes, deadline: float) -> bytes:
        if self._aborted:
            raise TransportError(f"{self._where()}: aborted (agent shutting down)")
        try:
            if self._conn is None:
                self._conn = self._connect(min(self.connect_timeout, self._remaining(deadline)))
                self.connections_opened += 1
            conn = self._conn
            conn.sock.settimeout(self._remaining(deadline))
            conn.sock.sendall(self._request_head(len(message)) + message)
            conn.sock.settimeout(self._remaining(deadline))
            response = read_response(conn.reader)
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
        except (ServerClosed, ConnectionResetError, BrokenPipeError):
            raise
        except (HttpProtocolError, OSError, ValueError) as exc:
            self._drop()
            raise TransportError(f"{self._where()}: {_describe(exc)}") from None
        return self._check_response(response)

    def _check_response(self, response: HttpResponse) -> bytes:
        """RFC 6712 3.3: 200 with ``application/pkixcmp``; anything else is a failure."""
        content_type = (response.header("Content-Type") or "").split(";")[0].strip().lower()
        status = f"HTTP {response.status} {response.reason}".rstrip()
        body = response.body
        if 300 <= response.status < 400:
            location = response.header("Location")
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
