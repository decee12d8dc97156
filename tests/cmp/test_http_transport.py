"""RFC 6712 over real HTTP: status codes, redirects and a CA that trickles its answer.

A small HTTP proxy (http_proxy.py) sits in front of OpenSSL's mock server and changes
only the status line and headers around the mock's valid CMP body.
"""

from __future__ import annotations

import io
import socket
import threading
from types import SimpleNamespace

import pytest
from http_proxy import CmpHttpProxy
from test_mock_server import assert_enrolled, request

from agent.cmp.client import enroll
from agent.cmp.transaction import Failed, FailureKind
from agent.cmp.transport import (MAX_LINE, HttpProtocolError, HttpTransport, ServerClosed,
                                 TransportError, read_response)


@pytest.fixture
def proxy(mock_server):
    """A factory: ``proxy(*mock_args, status=..., headers=..., ...)``."""
    started: list[CmpHttpProxy] = []

    def start(*mock_args: str, **kwargs) -> CmpHttpProxy:
        server = mock_server(*mock_args)
        started.append(CmpHttpProxy(server.port, **kwargs))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def failed(result) -> Failed:
    assert isinstance(result, Failed), f"enrolled although the HTTP answer was wrong: {result}"
    assert result.kind is FailureKind.TRANSPORT, str(result)
    return result


def test_proxy_passes_a_200_through(pki, proxy):
    """The proxy itself is transparent: the other tests fail because of what they change."""
    relay = proxy()
    assert_enrolled(enroll(request(pki, relay, total_timeout=20)), pki)


def test_500_with_the_cas_error_text(pki, proxy):
    relay = proxy("-send_error", status=500)
    result = failed(enroll(request(pki, relay)))
    assert "HTTP 500 Internal Server Error instead of 200" in result.message
    # the CA's own words survive: status, failInfo, freeText
    assert result.status == "rejection"
    assert "badRequest" in result.failure_info
    assert result.status_texts
    assert "PKIFailureInfo=badRequest" in str(result)
    assert result.messages.sent == {"ir": 1}  # nothing after a failed exchange


def test_500_around_a_valid_ip_does_not_enrol(pki, proxy):
    relay = proxy(status=500)
    result = failed(enroll(request(pki, relay)))
    assert "HTTP 500" in result.message
    assert result.status == "accepted"  # what the body said, for the operator
    assert result.messages.sent == {"ir": 1}


def test_202_does_not_enrol(pki, proxy):
    relay = proxy(status=202)
    result = failed(enroll(request(pki, relay)))
    assert "HTTP 202 Accepted instead of 200" in result.message


def test_redirect_not_followed_and_named(pki, proxy):
    target = "http://elsewhere.example.net/pkix/"
    relay = proxy(status=307, headers={"Location": target})
    result = failed(enroll(request(pki, relay)))
    assert f"HTTP 307 Temporary Redirect, redirect to {target} not followed" in result.message
    assert relay.requests == 1


def test_total_timeout_is_a_deadline_over_headers_and_body(pki, proxy):
    """Issue 9: ``Content-Length: 100000`` then one byte per second; each read returns
    within any per-read timeout, yet the exchange ends at the total timeout."""
    relay = proxy(content_length=100_000, trickle=1.0)
    result = enroll(request(pki, relay, total_timeout=2))
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.TIMEOUT, str(result)
    assert "timed out" in result.message


@pytest.mark.parametrize("framing, interim, connections", [
    ("chunked", False, 1), ("close", False, 2), ("length", True, 1)])
def test_response_framings(pki, proxy, framing, interim, connections):
    """A body in chunked transfer coding (extensions, a trailer) keeps the connection for
    the certConf; one delimited by the end of the connection needs a new one; an
    interim 100 Continue before the response is skipped (RFC 9112 6.3, 7.1; RFC 9110 15.2)."""
    relay = proxy(framing=framing, interim=interim)
    with HttpTransport(relay.url) as transport:
        result = assert_enrolled(enroll(request(pki, relay), transport=transport), pki)
        assert result.messages.sent == {"ir": 1, "certConf": 1}
        assert transport.connections_opened == connections


def read(raw: bytes, limit: int = 1 << 20):
    return read_response(io.BufferedReader(io.BytesIO(raw)), limit)


def test_read_response_heads_and_bodies():
    ok = read(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\n"
              b"Content-Length: 3\r\nVia: a\r\nvia: b\r\n\r\nabcXYZ")
    assert (ok.status, ok.reason, ok.body, ok.will_close) == (200, "OK", b"abc", False)
    assert ok.header("content-type") == "application/pkixcmp" and ok.header("Via") == "a, b"
    old = read(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert old.will_close  # HTTP/1.0 without keep-alive
    assert not read(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").will_close
    assert read(b"HTTP/1.1 204 No Content\r\n\r\nnext").body == b""
    until_close = read(b"HTTP/1.1 200 OK\r\n\r\nthe rest")
    assert (until_close.body, until_close.will_close) == (b"the rest", True)
    chunked = read(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\nab\r\nA;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n")
    assert (chunked.status, chunked.body) == (500, b"ab0123456789")
    assert read(b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\nabcd").body == b"abcd"
    # RFC 9112 5.2: a user agent replaces an obs-fold by a space
    folded = read(b"HTTP/1.1 200 OK\r\nContent-Type: application/\r\n\t pkixcmp\r\n"
                  b"Content-Length: 0\r\n\r\n")
    assert folded.header("Content-Type") == "application/ pkixcmp"
    # interim responses of any 1xx but 101 are skipped (RFC 9110 15.2); no reason phrase;
    # chunk sizes in upper case, white space before an extension
    late = read(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </>\r\n\r\n"
                b"HTTP/1.1 200\r\nTransfer-Encoding: Chunked\r\n\r\n00A ;x\r\n0123456789\r\n0\r\n\r\n")
    assert (late.status, late.reason, late.body, late.header("link")) == (200, "", b"0123456789", None)


def test_read_response_bounds_what_is_not_body():
    """The head (interim responses included), chunk size lines and trailers: each line
    within MAX_LINE, all of them within MAX_OVERHEAD; the body within the limit."""
    field = b"X: " + b"y" * 700 + b"\r\n"
    within = read(b"HTTP/1.1 200 OK\r\n" + field * 90 + b"Content-Length: 1\r\n\r\nz")
    assert within.body == b"z" and len(within.header("x")) == 90 * 702 - 2
    refusals = {
        b"HTTP/1.1 200 " + b"K" * MAX_LINE + b"\r\n\r\n": "status line longer than 8192",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_LINE + b"\r\n\r\n": "field longer than 8192",
        b"HTTP/1.1 200 OK\r\n" + field * 99 + b"\r\n": "over 65536 bytes",
        b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + b"HTTP/1.1 200 OK\r\n\r\n": "over 65536 bytes",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * MAX_LINE + b"\r\n":
            "chunk size line longer than 8192",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"1;" + b"e" * 5000
                                                                 + b"\r\nx\r\n") * 14: "over 65536 bytes",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"T: v\r\n" * 101:
            "more than 100 trailer fields",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1501\r\n\r\n": "1501 bytes, over 1500",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n": "over 1500",
        b"HTTP/1.1 200 OK\r\n\r\n" + bytes(1501): "body over 1500 bytes",  # until the close
    }
    for raw, error in refusals.items():
        with pytest.raises(HttpProtocolError, match=error):
            read(raw, limit=1500)


@pytest.mark.parametrize("raw, error", [
    (b"", ServerClosed),  # a kept-alive connection the server had closed
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3", HttpProtocolError),  # not to be sent again
    (b"SSH-2.0-OpenSSH\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 2000 OK\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"3e8\r\n" + bytes(1000)
     + b"\r\n" + b"3e8\r\n" + bytes(1000), HttpProtocolError),  # over the limit
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", HttpProtocolError),
    # the status line: HTTP/1.DIGIT, three ASCII digits, no control in the reason
    (b"HTTP/1.x 200 OK\r\n\r\n", HttpProtocolError),
    (b"HTTP/2 200 OK\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 2\xb20 OK\r\n\r\n", HttpProtocolError),  # a superscript two is no digit
    (b"HTTP/1.1 200 O\x1bK\r\n\r\n", HttpProtocolError),
    # 101 only answers an Upgrade, which is never asked for: not an interim response to skip
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
     HttpProtocolError),
    # fields: a token, a colon without white space before it, no CR, NUL or control inside
    (b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\n Folded: before any field\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nX-A\x00: b\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 0\r\n\r\n", HttpProtocolError),  # bare CR
    (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", HttpProtocolError),
    # Content-Length: ASCII digits only, values agreeing
    (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nabc", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb3\r\n\r\nabc", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", HttpProtocolError),
    # RFC 9112 6.3 item 3 and 6.1: Transfer-Encoding with Content-Length (request smuggling,
    # response splitting), in HTTP/1.0, or any coding but chunked alone
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
     HttpProtocolError),
    # chunk sizes: hex digits only (no sign, 0x or underscore), 64 bits at most
    *[(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nabc\r\n0\r\n\r\n",
       HttpProtocolError)
      for size in (b"0x3", b"-3", b"+3", b"0_3", b"", b"3 3", b"1" + b"0" * 16, b"\xb3")],
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
     HttpProtocolError),  # the data longer than its size
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", HttpProtocolError),
])
def test_read_response_refuses(raw, error):
    with pytest.raises(error):
        read(raw, limit=1500)


def test_a_path_with_spaces_or_controls_is_refused():
    for url in ("http://ca/pki x/", "http://ca/pkix/\r\nX: y", "http://ca/pkíx/"):
        with pytest.raises(ValueError, match="percent-encoded"):
            HttpTransport(url)


class RawServer:
    """A TCP server on 127.0.0.1 that reads each POST (head and Content-Length body) and
    answers with the next of *answers*, bytes as given; a ``None`` after an answer closes
    the connection: a CA or proxy that speaks HTTP as it likes."""

    def __init__(self, *answers: bytes | None):
        self.answers = list(answers)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/pkix/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            with conn, conn.makefile("rb") as reader:
                try:
                    self._answer(conn, reader)
                except OSError:  # the client gave up the connection
                    pass

    def _answer(self, conn: socket.socket, reader) -> None:
        while self.answers:
            head = reader.readline()
            while head.endswith(b"\n") and not head.endswith(b"\r\n\r\n"):
                head += reader.readline()
            if not head.endswith(b"\r\n\r\n"):
                return
            reader.read(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
            conn.sendall(self.answers.pop(0))
            if self.answers and self.answers[0] is None:
                self.answers.pop(0)
                return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


CMP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 2\r\n\r\nok"


def test_hostile_heads_end_the_exchange_at_once_with_the_reason():
    """A server that sends header fields without end, or frames a body both ways
    (RFC 9112 6.3 item 3), fails the exchange at once, not at the timeout; the
    connection is not used again."""
    endless = b"HTTP/1.1 200 OK\r\n" + (b"X-Padding: " + b"p" * 1000 + b"\r\n") * 80
    both = (b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    server = RawServer(endless, None, both, CMP_OK)
    try:
        with HttpTransport(server.url) as transport:
            with pytest.raises(TransportError, match="over 65536 bytes") as err:
                transport.post(b"ir", 10)
            assert not err.value.timed_out
            with pytest.raises(TransportError, match="both Transfer-Encoding and Content-Length"):
                transport.post(b"ir", 10)
            assert transport.post(b"certConf", 10) == b"ok"
            assert transport.connections_opened == 3
    finally:
        server.close()


def test_what_the_server_names_is_shown_printable():
    """A reason phrase or Location with a terminal control (obs-text, the C1 CSI) reaches
    the operator's error message as '?', not as control sequences."""
    server = RawServer(b"HTTP/1.1 302 Found\x9b31m\r\nLocation: http://x/\x9b2J\r\n"
                       b"Content-Length: 0\r\n\r\n", None)
    try:
        with HttpTransport(server.url) as transport, pytest.raises(TransportError) as err:
            transport.post(b"ir", 10)
        message = str(err.value)
        assert "HTTP 302 Found?31m, redirect to http://x/?2J not followed" in message
        assert message.isprintable()
    finally:
        server.close()


def test_a_request_with_a_url_that_cannot_be_sent_is_refused_at_once(pki):
    """An EnrollmentRequest (the CLI's --server, the agent's server-url after esc) whose
    URL urlsplit would silently change or the request line cannot take."""
    for url in ("http://ca/pkix/\r\nX-Injected: 1", "http://ca/pkix\t/", "http://ca/p\x85/"):
        with pytest.raises(ValueError, match="control characters must be percent-encoded"):
            request(pki, SimpleNamespace(url=url))
    assert HttpTransport("http://bücher.example/pkix/").url.host == "bücher.example"  # an IDN
    for url in ("http://user:pw-99@ca/pkix/", "https://pw-99@ca:8443/", "ca:x@pw-99:80/pkix/"):
        with pytest.raises(ValueError, match="user information") as refused:
            request(pki, SimpleNamespace(url=url))
        assert "pw-99" not in str(refused.value)
    assert HttpTransport("http://ca/pkix/?from=a@b").url.path == "/pkix/?from=a@b"


def test_a_host_is_resolved_as_the_idna_codec_gives_it():
    """The host goes to getaddrinfo as the bytes the idna codec (which getaddrinfo applies
    to a text host) makes of it, unencoded where that is the same; a host the codec would
    refuse or change stays text, for the codec to refuse or encode as before."""
    from agent.cmp.transport import _resolvable

    for host in ("127.0.0.1", "ca.example.net", "ca.example.net.", "::1", "xn--bcher-kva.de",
                 "a" * 63 + ".b", "", "a..b", ".a", "a" * 64 + ".b", "b." + "a" * 64, ".",
                 "bücher.example"):
        try:
            encoded = host.encode("idna")
        except UnicodeError:
            encoded = None
        given = _resolvable(host)
        assert given == encoded if isinstance(given, bytes) else given == host
        assert isinstance(given, bytes) == (host.isascii() and encoded is not None)


def test_bytes_after_a_response_are_not_the_next_response():
    """RFC 9112 6.3: data after a response's framing on a kept-alive connection is not
    processed as a separate response: the next request goes over a new connection."""
    smuggled = (b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\n"
                b"Content-Length: 4\r\n\r\nevil")
    second = CMP_OK.replace(b"Length: 2", b"Length: 6").replace(b"\r\n\r\nok", b"\r\n\r\nsecond")
    server = RawServer(CMP_OK + smuggled, second)
    try:
        with HttpTransport(server.url) as transport:
            assert transport.post(b"ir", 10) == b"ok"
            assert transport.post(b"certConf", 10) == b"second"
            assert transport.connections_opened == 2
    finally:
        server.close()
