"""A three-level test PKI (root -> issuing CA -> CMP signer) with signer variants, and a
rewrite for the test HTTP proxy that strips extraCerts from chosen responses.

Shared by tests/cmp/test_trust.py and tests/pki_e2e/test_trust_e2e.py.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cmp_mock_pki import write_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.cmp import der
from agent.cmp import messages as m

CMC_RA = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.28")
NOW = datetime.datetime.now(datetime.timezone.utc)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Trust Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(subject: x509.Name, key, issuer: x509.Certificate | None, issuer_key, *,
                ca: bool, usage: tuple[str, ...] = ("digital_signature",),
                eku: tuple[x509.ObjectIdentifier, ...] = (), expired: bool = False,
                san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    """A certificate with exactly the key usage bits in *usage* and the EKUs in *eku*."""
    start = NOW - datetime.timedelta(days=30 if expired else 1)
    end = NOW - datetime.timedelta(days=1) if expired else NOW + datetime.timedelta(days=30)
    bits = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                          "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                          "encipher_only", "decipher_only"), False)
    bits.update(dict.fromkeys(usage, True))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**bits), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    eddsa = isinstance(issuer_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
    return builder.sign(issuer_key, None if eddsa else hashes.SHA256())


class TrustPki:
    """root -> issuing CA -> CMP signers; a client identity and an enrolled certificate
    under the issuing CA. Files are written to *directory* by name."""

    __test__ = False

    def __init__(self, directory: Path, label: str = "Trust"):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = certificate(name(f"{label} Root"), self.root_key, None, self.root_key,
                                ca=True, usage=("key_cert_sign", "crl_sign"))
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = certificate(name(f"{label} Issuing CA"), self.ca_key, self.root, self.root_key,
                              ca=True, usage=("key_cert_sign", "crl_sign"))
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client = certificate(name("router1 identity"), self.client_key, self.ca, self.ca_key,
                                  ca=False)
        self.new_key = ec.generate_private_key(ec.SECP256R1())
        self.issued = certificate(name("router1"), self.new_key, self.ca, self.ca_key, ca=False,
                                  usage=("digital_signature", "key_encipherment"),
                                  eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        for file, item in (("root.pem", self.root), ("ca.pem", self.ca), ("client.pem", self.client),
                           ("client.key", self.client_key), ("new.key", self.new_key),
                           ("issued.pem", self.issued)):
            write_pem(directory / file, item)
        self.signer("good")

    def signer(self, label: str, *, usage=("digital_signature",), eku=(CMC_RA,),
               expired: bool = False) -> tuple[str, str]:
        """A CMP signer certificate under the issuing CA: (cert file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(name(f"CMP signer {label}"), key, self.ca, self.ca_key, ca=False,
                           usage=usage, eku=eku, expired=expired)
        return (str(write_pem(self.directory / f"signer-{label}.pem", cert)),
                str(write_pem(self.directory / f"signer-{label}.key", key)))

    def path(self, file: str) -> str:
        return str(self.directory / file)

    def mock_args(self, signer: str | None = "good", *, capubs: str | None = None,
                  clients: "TrustPki | None" = None) -> list[str]:
        """``openssl cmp`` server options: sign with *signer* (None: no signer), chain
        (issuing CA) in extraCerts, accept requests signed by *clients*' certificates.
        Given after :class:`MockCmpServer`'s own options, they override them."""
        clients = clients or self
        args = ["-srv_trusted", clients.path("root.pem"), "-srv_untrusted", clients.path("ca.pem"),
                "-rsp_cert", self.path("issued.pem"), "-rsp_extracerts", self.path("ca.pem"),
                "-rsp_capubs", capubs or self.path("root.pem")]
        if signer is not None:
            args += ["-srv_cert", self.path(f"signer-{signer}.pem"),
                     "-srv_key", self.path(f"signer-{signer}.key")]
        return args


def strip_extra_certs(message: bytes) -> bytes:
    """The PKIMessage without its extraCerts [1] (outside the protection, RFC 4210 5.1)."""
    outer = der.read_tlv(message)
    # header and body first (an ip's body is [1] too), then protection [0] and extraCerts [1]
    kept = b"".join(
        message[item.start:item.end] for index, item in enumerate(der.children(message, outer))
        if index < 2 or item.tag != 0xA1
    )
    return der.tlv(0x30, kept)


class ExtraCertsStripper:
    """A ``rewrite`` for :class:`http_proxy.CmpHttpProxy`: removes extraCerts from the
    responses of the body types in *strip*, and records (body type, stripped)."""

    def __init__(self, strip: tuple[str, ...]):
        self.strip = strip
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, data: bytes) -> bytes:
        message = m.decode_message(data)
        stripped = message.body_type in self.strip and bool(message.extra_certs)
        self.seen.append((message.body_type, stripped))
        return strip_extra_certs(data) if stripped else data
