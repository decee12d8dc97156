"""Every request signed with a device certificate, not only a KUR, is refused before
anything is sent when that certificate is outside its validity (RFC 5280 4.1.2.5: from
notBefore through notAfter; RFC 9483 3.5: the CA validates the signer): an IR, CR or P10CR
by signature, an rr (signed with the certificate it revokes, RFC 9483 4.2, or with the
authentication-cert), a genm by signature, and the TLS client certificate of an https CA.
A request authenticated by MAC does not use the certificate and is not refused. Real
peers: tools/testca, behind a TLS endpoint for https."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from cmp_mock_pki import TlsProxy
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.netconf.errors import RpcError
from agent.pki.service import PkiService
from agent.pki.statistics import yang_datetime
from pki_helpers import ENTITY, NC_NS, PKI_NS, mac_session
from test_expired_certificate import issued_by_testca
from testca_process import run_testca

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)
SIGNED = "<origin-authentication-method>signature</origin-authentication-method>"


@pytest.fixture(scope="module")
def model():
    return Model.load()


def refusal(coroutine) -> RpcError:
    with pytest.raises(RpcError) as refused:
        asyncio.run(coroutine)
    assert refused.value.tag == "operation-failed", refused.value.message
    assert refused.value.app_tag == "precondition", refused.value.message
    return refused.value


def test_requests_signed_with_a_certificate_outside_its_validity_are_not_sent(
        model, mock_pki, tmp_path):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    with run_testca(tmp_path / "ca") as ca:
        proxy = TlsProxy(ca.port, *mock_pki.tls_server(), client_ca=str(ca.directory / "ca.pem"))
        try:
            datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
            service = PkiService(datastores, tmp_path, datastores.secrets)
            for name, key, not_before, not_after, serial in (
                    ("old.pem", "k-old", now - 30 * DAY, now - DAY, 0x1A2B),
                    ("future.pem", "k-future", now + DAY, now + 30 * DAY, 0x3C4D),
                    ("valid.pem", "k-valid", now - DAY, now + 30 * DAY, 0x5E6F),
                    ("nokey.pem", None, now - DAY, now + 30 * DAY, 0x7A8B)):
                cert_pem, key_pem = issued_by_testca(ca, not_before, not_after, serial)
                service.certs.save(name, x509.load_pem_x509_certificate(cert_pem.encode()), "pem")
                if key:
                    service.keys.save(key, serialization.load_pem_private_key(key_pem.encode(), None))
            service.certs.save("mock-root.pem", mock_pki.root, "pem")
            https = mac_session("t1", ca, key="k-t1").replace(
                ca.url, f"https://127.0.0.1:{proxy.port}/pkix/")
            datastores.edit_config("candidate", etree.fromstring(
                f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">{ENTITY}'
                + mac_session("s1", ca, key="k-old",
                              extra=SIGNED + "<authentication-cert>old.pem</authentication-cert>")
                + mac_session("s2", ca, key="k-future",
                              extra=SIGNED + "<authentication-cert>future.pem</authentication-cert>")
                # by MAC: the expired authentication-cert signs nothing, nothing is refused
                + mac_session("s3", ca, key="k-s3",
                              extra="<authentication-cert>old.pem</authentication-cert>")
                + https.replace("</cmp-session>", "<tls><trusted-cert>mock-root.pem</trusted-cert>"
                                "<client-cert>old.pem</client-cert></tls></cmp-session>")
                + "</pki></config>"))
            datastores.commit()

            old = "authentication-cert old.pem (CN=router1, serial 1A2B)"
            expired = f"expired at {yang_datetime(now - DAY)}"
            other = ("authenticate by message-authentication-code, or name another valid"
                     " certificate in authentication-cert")
            for kind, rule in (
                    ("ir", "an initial request (IR) by signature must be signed with a valid"
                           " certificate (RFC 9483 3.5, 4.1.1)"),
                    ("p10cr", "a PKCS#10 request (P10CR) by signature must be signed"),
                    ("cr", "a certificate request (CR) must be signed with a valid certificate")):
                message = refusal(service.request("s1", kind)).message
                assert f"session s1: {old} {expired}: {rule}" in message, message
                remedy = "cmp-initial-request (CLI: pki cmp initial-request session s1)" \
                    if kind == "cr" else other
                assert remedy in message, message
            message = refusal(service.general("s1", "ca-certs")).message
            assert f"{old} {expired}: a general message (GENM) by signature" in message
            assert other in message, message

            # an rr signed with the certificate it revokes (RFC 9483 4.2), or, without its
            # key, with the authentication-cert: either way the signer must be valid
            message = refusal(service.revoke("s1", "old.pem", "superseded")).message
            assert (f"certificate-file old.pem (CN=router1, serial 1A2B) {expired}: a revocation"
                    " request (RR) must be signed with a valid certificate" in message), message
            assert "needs no revocation request" in message, message
            message = refusal(service.revoke("s1", "nokey.pem", "superseded")).message
            assert f"{old} {expired}: a revocation request (RR)" in message, message

            message = refusal(service.request("s2", "ir")).message
            assert ("authentication-cert future.pem (CN=router1, serial 3C4D) is not valid before"
                    f" {yang_datetime(now + DAY)}") in message, message
            assert "check the device's clock" in message

            message = refusal(service.request("t1", "ir")).message
            assert (f"tls client-cert old.pem (CN=router1, serial 1A2B) {expired}: the CA's TLS"
                    " server accepts a valid client certificate only") in message, message
            assert "name it in tls client-cert" in message

            # nothing of the above reached the CA
            for name in ("s1", "s2", "t1"):
                assert sum(service.stats_for(name).sent.values()) == 0, name

            # what does not sign with the expired certificate goes through
            assert asyncio.run(service.request("s3", "ir")).status == "success"
            datastores.edit_config("candidate", etree.fromstring(
                f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><cmp-session><name>t1</name>'
                "<tls><client-cert>valid.pem</client-cert></tls></cmp-session></pki></config>"))
            datastores.commit()
            assert asyncio.run(service.request("t1", "ir")).status == "success"
        finally:
            proxy.stop()
