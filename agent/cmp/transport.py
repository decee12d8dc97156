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

The server may be hostile or broken, so what it sends is bounded and framed strictly: a
line of :data:`MAX_LINE` bytes, :data:`MAX_HEADERS` fields a section, :data:`MAX_OVERHEAD`
bytes besides the body (interim responses, chunk size lines and trailers included), a body
of :data:`MAX_RESPONSE_SIZE` bytes however framed; RFC 9112's framing errors (Content-Length
with Transfer-Encoding, disagreeing lengths, chunk sizes that are not hex digits, a 101 not
asked for, controls in fields) end the exchange and its connection. Text of the server's
shown in an error is made printable.
"""

from __future__ import annotations

import re
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
#: bounds on what a response may send besides its body (a hostile or broken CA or proxy):
#: one line (status line, header or trailer field, chunk size); the header (or trailer)
#: fields of one section; and all these bytes together, interim 1xx responses included
MAX_LINE = 8192
MAX_HEADERS = 100
MAX_OVERHEAD = 65536

# RFC 9112 4: HTTP-version SP status-code SP [ reason-phrase ] (the second SP often left out)
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?\r?\n")
# RFC 9110 5.1, 5.5: a field name is a token; a value has no CR, LF, NUL or other control
_FIELD = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
# RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF, at most 16 hex digits (no sign, no 0x)
#: (compiled by ``re``'s cache at the first chunked body, not at import)
_CHUNK_SIZE = rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?\r?\n"

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


def _shown(text: str, limit: int = 200) -> str:
    """Text from the server as an error message shows it: printable, at most *limit* long."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _text(line: bytes, limit: int) -> str:
    """A line of the response, without its end, as an error message shows it."""
    return _shown(line.decode("latin-1").rstrip("\r\n"), limit)


class _Framing:
    """The lines of one response other than its body's data, within :data:`MAX_LINE` each
    and :data:`MAX_OVERHEAD` in all."""

    def __init__(self, reader: BinaryIO):
        self.reader = reader
        self.left = MAX_OVERHEAD

    def line(self, what: str) -> bytes:
        line = self.reader.readline(min(MAX_LINE, self.left) + 1)
        if len(line) > MAX_LINE:
            raise HttpProtocolError(f"{what} longer than {MAX_LINE} bytes")
        self.left -= len(line)
        if self.left < 0:
            raise HttpProtocolError(f"response head, chunk sizes and trailers over {MAX_OVERHEAD}"
                                    " bytes")
        return line

    def fields(self, section: str = "header") -> dict[str, str]:
        """Header (or trailer) fields up to the empty line (RFC 9112 5); an obs-fold
        continues the field before it, joined by a space (RFC 9112 5.2)."""
        fields: dict[str, str] = {}
        name = None
        for _ in range(MAX_HEADERS + 1):
            line = self.line(f"{section} field")
            if line in (b"\r\n", b"\n"):
                return fields
            if not line.endswith(b"\n"):
                raise HttpProtocolError(f"connection closed in the response {section}s")
            text = line.decode("latin-1").removesuffix("\n").removesuffix("\r")
            if text[:1] in (" ", "\t") and name is not None:  # obs-fold
                if not _FIELD.fullmatch("x:" + text):
                    raise HttpProtocolError(f"bad {section} line {_shown(text, 80)!r}")
                fields[name] = f"{fields[name]} {text.strip()}".strip()
                continue
            match = _FIELD.fullmatch(text)
            if match is None:  # also: white space before the first field or the colon
                raise HttpProtocolError(f"bad {section} line {_shown(text, 80)!r}")
            name, value = match[1].lower(), match[2].strip(" \t")
            fields[name] = f"{fields[name]}, {value}" if name in fields else value
        raise HttpProtocolError(f"more than {MAX_HEADERS} {section} fields")


def _read_chunked(framing: _Framing, limit: int) -> bytes:
    """A body in chunked transfer coding (RFC 9112 7.1): chunk extensions ignored, trailer
    fields read and dropped."""
    parts, size = [], 0
    while True:
        line = framing.line("chunk size line")
        if not line:
            raise HttpProtocolError("connection closed in the chunked body")
        match = re.fullmatch(_CHUNK_SIZE, line)
        if match is None:
            raise HttpProtocolError(f"bad chunk size line {_text(line, 40)!r}")
        length = int(match[1], 16)
        if length == 0:
            framing.fields("trailer")
            return b"".join(parts)
        size += length
        if size > limit:
            raise HttpProtocolError(f"response body over {limit} bytes")
        parts.append(_read_exactly(framing.reader, length))
        if framing.line("chunk end") not in (b"\r\n", b"\n"):
            raise HttpProtocolError("chunk data not followed by CRLF")


def _read_exactly(reader: BinaryIO, length: int) -> bytes:
    data = reader.read(length)
    if len(data) < length:
        raise HttpProtocolError(f"connection closed after {len(data)} of {length} body bytes")
    return data


def _content_length(value: str, limit: int) -> int:
    """RFC 9112 6.3 item 5: repeated values must agree; digits only."""
    values = {v.strip(" \t") for v in value.split(",")}
    if len(values) != 1 or not (digits := values.pop()).isascii() or not digits.isdigit():
        raise HttpProtocolError(f"bad Content-Length {_shown(value, 40)!r}")
    if len(digits.lstrip("0")) > len(str(limit)) or int(digits) > limit:
        raise HttpProtocolError(f"response body of {_shown(digits, 40)} bytes, over {limit}")
    return int(digits)


def read_response(reader: BinaryIO, limit: int = MAX_RESPONSE_SIZE) -> HttpResponse:
    """The final response to a POST from *reader* (RFC 9112 4, 6; interim 1xx responses
    skipped, RFC 9110 15.2); a body over *limit* bytes, a head or framing over the bounds
    above or any framing RFC 9112 does not allow raises :class:`HttpProtocolError`."""
    framing = _Framing(reader)
    while True:
        line = framing.line("status line")
        if not line:
            raise ServerClosed("connection closed by the server")
        status_line = _STATUS_LINE.fullmatch(line)
        if status_line is None:
            raise HttpProtocolError(f"bad status line {_text(line, 80)!r}")
        minor, status = int(status_line[1]), int(status_line[2])
        reason = (status_line[3] or b"").decode("latin-1").strip()
        headers = framing.fields()
        if status == 101:  # RFC 9110 15.2.2: only in answer to an Upgrade, never sent here
            raise HttpProtocolError("101 Switching Protocols without an Upgrade asked for")
        if not 100 <= status < 200:
            break
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    will_close = "close" in tokens or (minor == 0 and "keep-alive" not in tokens)
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if status in (204, 304):
        body = b""
    elif coding is not None:
        if length is not None:  # RFC 9112 6.3 item 3: smuggling or splitting, an error
            raise HttpProtocolError("both Transfer-Encoding and Content-Length")
        if minor == 0:  # RFC 9112 6.1: faulty framing in HTTP/1.0
            raise HttpProtocolError("Transfer-Encoding in an HTTP/1.0 response")
        if coding.strip(" \t").lower() != "chunked":  # no TE asked for other codings
            raise HttpProtocolError(f"transfer coding {_shown(coding, 40)!r} not supported"
                                    " (only chunked)")
        body = _read_chunked(framing, limit)
    elif length is not None:
        body = _read_exactly(reader, _content_length(length, limit))
    else:  # delimited by the end of the connection (RFC 9112 6.3, item 8)
        body = reader.read(limit + 1)
        will_close = True
        if len(body) > limit:
            raise HttpProtocolError(f"response body over {limit} bytes")
    return HttpResponse(status, reason, headers, body, will_close)


class _Connection:
    """One open connection to the server: its socket and a buffered reader over it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def quiet(self) -> bool:
        """Whether the server sent nothing since the last response: bytes after a response's
        framing must not be read as the next request's response (RFC 9112 6.3). An end of
        the connection is not told apart here: the next read finds it."""
        self.sock.settimeout(0)
        try:
            return not self.reader.peek(1)
        except BlockingIOError:
            return True
        except OSError as exc:  # over TLS, nothing to read is ssl.SSLWantReadError
            ssl = sys.modules.get("ssl")
            return ssl is not None and isinstance(exc, ssl.SSLWantReadError)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@dataclass(frozen=True)
class ServerUrl:
    """A parsed ``http[s]://host[:port]/path`` CMP server URL; ``text`` is the URL as given
    (``http://`` may be left out), and what ``str()`` shows."""

    text: str
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> ServerUrl:
        """*url* checked before it is sent: urlsplit would drop a CR, LF or tab unseen (a
        ``server url esc`` of ``\\x0d\\x0a``), and the request line takes no space, control
        or non-ASCII character (RFC 9112 3.2; a host name may be an IDN). User information
        (``user:password@``) is refused without repeating the URL: it would not be sent, and
        the URL is logged and shown with it (RFC 9110 4.2.4: treat it as an error)."""
        authority = url.split("://", 1)[-1]
        for end in "/?#":
            authority = authority.split(end, 1)[0]
        if "@" in authority:
            raise ValueError("CMP server URL: user information (NAME:PASSWORD@ before the host)"
                             " is not supported: it would not be sent, and the URL is logged"
                             " with it; remove it (RFC 9110 4.2.4)")
        if any(ord(c) <= 0x20 or 0x7f <= ord(c) <= 0x9f for c in url):
            raise ValueError(f"CMP server URL {_shown(url)!r}: spaces and control characters"
                             " must be percent-encoded")
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
        if not path.isascii():
            raise ValueError(f"CMP server URL {_shown(url)!r}: non-ASCII characters in the path"
                             " must be percent-encoded")
        return cls(url, parts.scheme, parts.hostname, port, path)

    def __str__(self) -> str:
        return self.text


def _resolvable(host: str) -> str | bytes:
    """*host* as :func:`socket.getaddrinfo` is given it: it encodes a text host with the
    ``idna`` codec, whose import (with ``stringprep`` and ``unicodedata``) costs
    ``cmp-agent cmp ir`` 2 % of its instructions; an ASCII host whose labels that codec
    takes as they are (1 to 63 characters; the last may be empty) is given as the bytes
    it would make, any other as text, for the codec to encode or refuse as before."""
    if host.isascii():
        *labels, last = host.split(".")
        if all(0 < len(label) < 64 for label in labels) and len(last) < 64:
            return host.encode("ascii")
    return host


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
        url: ServerUrl | str,
        *,
        connect_timeout: float = 10.0,
        source_address: str | None = None,
        keep_alive: bool = True,
        tls_context: ssl.SSLContext | None = None,
        tls_host: str | None = None,
    ):
        self.url = url if isinstance(url, ServerUrl) else ServerUrl.parse(url)
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
        sock = socket.create_connection((_resolvable(self.url.host), self.url.port), timeout,
                                        source)
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
        except OSError as exc:  # the fresh connection closed as well (ServerClosed is one)
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
            if self._conn is not None and not self._conn.quiet():
                self._drop()  # the extra bytes are discarded with the connection
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
        status = f"HTTP {response.status} {_shown(response.reason, 80)}".rstrip()
        body = response.body
        if 300 <= response.status < 400:
            location = response.header("Location")
            self._drop()
            raise TransportError(
                f"{self._where()}: {status}, redirect to "
                f"{_shown(location) if location else '(no Location header)'} not followed"
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
