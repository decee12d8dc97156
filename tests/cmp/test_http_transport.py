"""RFC 6712 over real HTTP: status codes, redirects and a CA that trickles its answer.

A small HTTP proxy (http_proxy.py) sits in front of OpenSSL's mock server and changes
only the status line and headers around the mock's valid CMP body.
"""

from __future__ import annotations

import pytest
from http_proxy import CmpHttpProxy
from test_mock_server import assert_enrolled, request

from agent.cmp.client import enroll
from agent.cmp.transaction import Failed, FailureKind


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
