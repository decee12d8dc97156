"""RFC 6712 over real HTTP: status codes, redirects and a CA that trickles its answer.

A small HTTP proxy (http_proxy.py) sits in front of OpenSSL's mock server and changes
only the status line and headers around the mock's valid CMP body.
"""

from __future__ import annotations

import io

import pytest
from http_proxy import CmpHttpProxy
from test_mock_server import assert_enrolled, request

from agent.cmp.client import enroll
from agent.cmp.transaction import Failed, FailureKind
from agent.cmp.transport import HttpProtocolError, HttpTransport, ServerClosed, read_response


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
])
def test_read_response_refuses(raw, error):
    with pytest.raises(error):
        read(raw, limit=1500)


def test_a_path_with_spaces_or_controls_is_refused():
    for url in ("http://ca/pki x/", "http://ca/pkix/\r\nX: y", "http://ca/pkíx/"):
        with pytest.raises(ValueError, match="percent-encoded"):
            HttpTransport(url)
