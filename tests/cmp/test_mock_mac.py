"""MAC-protected answers with parameters a careful client refuses, crafted by the test
with the shared secret on a real exchange (a proxy re-protects OpenSSL's mock's answers):
each is refused, naming the check, before anything is hashed."""

from __future__ import annotations

import os
import time

import pytest
from cmp_mock_pki import SECRET
from cmp_resign import Remac
from http_proxy import CmpHttpProxy
from test_mock_server import assert_enrolled, request

from agent.clock import SystemClock
from agent.cmp.client import enroll, transaction_params
from agent.cmp.protection import MAC_PARAMETER_BOUNDS, Pbmac1Parameters, PbmParameters
from agent.cmp.transaction import EnrollmentTransaction, Failed, FailureKind, Finished
from agent.cmp.transport import HttpTransport

SHA256, SHA1 = "2.16.840.1.101.3.4.2.1", "1.3.14.3.2.26"
HMAC_SHA256 = "1.2.840.113549.2.9"
SALT = b"\x42" * 16

HOSTILE = [
    (PbmParameters(SALT, SHA256, 1, HMAC_SHA256), "PBM iteration count 1 below the minimum 100"),
    (PbmParameters(SALT, SHA256, 10**9, HMAC_SHA256),
     "PBM iteration count 1000000000 above the maximum 100000"),
    (PbmParameters(b"\x42", SHA256, 500, HMAC_SHA256),
     "PBM salt of 1 bytes shorter than the minimum 8"),
    (PbmParameters(SALT, SHA1, 500, HMAC_SHA256), "PBM one-way function uses SHA-1, a weak algorithm"),
    (Pbmac1Parameters(SALT, 10**9, 32, HMAC_SHA256, HMAC_SHA256),
     "PBKDF2 iteration count 1000000000 above the maximum 100000"),
    (Pbmac1Parameters(b"\x42", 1000, 32, HMAC_SHA256, HMAC_SHA256),
     "PBMAC1 salt of 1 bytes shorter than the minimum 8"),
]


@pytest.fixture
def remac_proxy(pki, mock_server):
    started: list[CmpHttpProxy] = []

    def start(params) -> CmpHttpProxy:
        proxy = CmpHttpProxy(mock_server().port, rewrite=Remac(SECRET.encode(), params))
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.mark.parametrize("params,reason", HOSTILE, ids=[r for _, r in HOSTILE])
def test_crafted_mac_answers_refused_within_a_second(pki, remac_proxy, params, reason):
    proxy = remac_proxy(params)
    transaction = EnrollmentTransaction(
        transaction_params(request(pki, proxy, weak_algorithms=False), os.urandom),
        SystemClock(), os.urandom)
    with HttpTransport(proxy.url) as transport:
        answer = transport.post(transaction.start().message, 20)
    start = time.monotonic()
    done = transaction.receive(answer)
    refused_in = time.monotonic() - start
    assert isinstance(done, Finished) and isinstance(done.result, Failed)
    assert done.result.kind is FailureKind.PROTECTION
    assert f"ip refused: {reason}" in done.result.message
    # the bound; 10^9 iterations would take minutes: the bounds come first
    assert refused_in < 1.0, refused_in


@pytest.mark.parametrize("params", [
    PbmParameters(SALT, SHA256, MAC_PARAMETER_BOUNDS.max_iterations, HMAC_SHA256),
    Pbmac1Parameters(SALT[:MAC_PARAMETER_BOUNDS.min_salt_length], MAC_PARAMETER_BOUNDS.min_iterations,
                     32, HMAC_SHA256, HMAC_SHA256),
    Pbmac1Parameters(SALT, 10_000, 64, "1.2.840.113549.2.11", "1.2.840.113549.2.11"),
], ids=["pbm-at-the-maximum", "pbmac1-at-the-minimums", "pbmac1-sha512"])
def test_mac_answers_within_the_bounds_are_believed(pki, remac_proxy, params):
    proxy = remac_proxy(params)
    result = enroll(request(pki, proxy, weak_algorithms=False))
    assert_enrolled(result, pki)
    assert proxy.rewrite.remaced == 2  # ip and pkiConf
