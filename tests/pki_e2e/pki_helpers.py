"""Driving the PKI service through NETCONF with ncclient, as an operator would."""

from __future__ import annotations

import datetime
import subprocess
import time
from pathlib import Path
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError
from ncclient.xml_ import to_ele

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
PKI_NS = "urn:cmp-agent:yang:cmp-agent-pki"
NS = {"p": PKI_NS}


def rpc(m, operation: str, /, **leaves: str) -> etree._Element:
    """Call a cmp-agent-pki RPC; the reply's data as an lxml element."""
    body = "".join(f"<{k.replace('_', '-')}>{escape(v)}</{k.replace('_', '-')}>"
                   for k, v in leaves.items())
    reply = m.dispatch(to_ele(f"<{operation} xmlns=\"{PKI_NS}\">{body}</{operation}>"))
    return etree.fromstring(reply.xml.encode())


def out(reply: etree._Element, leaf: str) -> str | None:
    return reply.findtext(f"p:{leaf}", namespaces=NS)


#: OpenSSL 3.0's mock server answers MAC-protected requests with HMAC-SHA1 (weak)
WEAK_FOR_THE_MOCK = "<weak-algorithms-enabled>true</weak-algorithms-enabled>"


def rpc_failure(m, operation: str, /, **leaves: str) -> RPCError:
    """Call a request RPC that must fail: ncclient raises RPCError (operation-failed)."""
    with pytest.raises(RPCError) as raised:
        rpc(m, operation, **leaves)
    assert raised.value.tag == "operation-failed", raised.value.to_dict()
    return raised.value


def error_info(error: RPCError, leaf: str) -> list[str]:
    """The values of a cmp-agent-pki element of the rpc-error's error-info."""
    return [el.text for el in error.xml.iterfind(f"{{{NC_NS}}}error-info/{{{PKI_NS}}}{leaf}")]


def next_event(m, wanted: str, deadline: float) -> etree._Element | None:
    """The next notification whose event is *wanted* (a cmp-agent-pki name), skipping
    others, or None if none comes before *deadline* (time.monotonic())."""
    while time.monotonic() < deadline:
        note = m.take_notification(block=True, timeout=max(0.1, deadline - time.monotonic()))
        if note is None:
            return None
        event = etree.fromstring(note.notification_xml.encode())
        found = event.find(f"{{{PKI_NS}}}{wanted}")
        if found is not None:
            return found
    return None


def commit_pki(m, inner_xml: str) -> None:
    """edit-config of /pki on candidate, then commit (the seed's step 13)."""
    m.edit_config(target="candidate",
                  config=f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">{inner_xml}</pki></config>')
    m.commit()


def mac_session(name: str, ca, *, entity: str = "e1", key: str = "rsa1", extra: str = "") -> str:
    return (
        f"<cmp-session><name>{name}</name><entity>{entity}</entity>"
        f"<ca-name>/C=CN/O=cmp-agent/CN=cmp-agent test CA</ca-name>"
        f"<server-url><url>{ca.url}</url></server-url>"
        f"<local-key-pair><name>{key}</name></local-key-pair>"
        f"<message-authentication-code><reference-value>{ca.ref}</reference-value>"
        f"<secret-value>{ca.secret}</secret-value></message-authentication-code>"
        f"{extra}</cmp-session>"
    )


ENTITY = ("<entity><name>e1</name><common-name>router1</common-name><country>CN</country>"
          "<organization>Example</organization><fqdn>router1.example.net</fqdn>"
          "<ip-address>192.0.2.1</ip-address></entity>")


def state(m) -> etree._Element:
    """/pki from <get> (configuration and state)."""
    reply = m.get(filter=("subtree", f'<pki xmlns="{PKI_NS}"/>'))
    return etree.fromstring(reply.data_xml.encode()).find("p:pki", NS)


def counter(tree: etree._Element, session: str, path: str) -> int:
    value = tree.xpath(f"//p:cmp-session[p:name='{session}']/p:statistics/{path}/text()",
                       namespaces=NS)
    return int(value[0]) if value else 0


def openssl_verify(ca_pem: Path, cert_file: Path, der: bool = False) -> subprocess.CompletedProcess:
    if der:
        pem = cert_file.with_suffix(".converted.pem")
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(cert_file),
                        "-out", str(pem)], check=True, capture_output=True)
        cert_file = pem
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca_pem), str(cert_file)],
                          capture_output=True, text=True)


def external_identity(directory: Path, cn: str = "router1-identity"):
    """Another CA and an identity certificate from it (seed 11: external identity certificate).

    Returns (root_pem_path, cert_pem_text, key_pem_text)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Manufacturer Root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(root_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(root_key, hashes.SHA256()))
    root_file = directory / "manufacturer-root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return root_file, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem
