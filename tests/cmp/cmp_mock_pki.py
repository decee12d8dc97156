"""A throw-away test PKI (cryptography) and OpenSSL's mock CMP server as a subprocess.

Shared by tests/cmp/conftest.py and tools/bench/bench_cmp.py.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

SECRET = "test-secret-1234"
#: a DNS name in the TLS server certificate (the URL says 127.0.0.1: --tls-host's case)
TLS_SERVER_NAME = "cmp-ca.test.example"
REFERENCE = "3078"


def _name(*pairs: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def issue(subject: x509.Name, public_key, issuer: x509.Name, issuer_key, *, ca: bool,
          days: int = 30, serial: int | None = None, san: list | None = None,
          not_before: datetime.datetime | None = None) -> x509.Certificate:
    now = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def with_oid_replaced(cert: x509.Certificate, old: str, new: str) -> x509.Certificate:
    """*cert* with the DER of OID *old* replaced by *new* (same length) wherever it is: a
    signature or key algorithm that cryptography does not know, or an extension twice.
    The signature no longer verifies."""
    from agent.cmp import der

    data = cert.public_bytes(serialization.Encoding.DER)
    old_der, new_der = der.encode_oid(old), der.encode_oid(new)
    assert len(old_der) == len(new_der) and old_der in data
    return x509.load_der_x509_certificate(data.replace(old_der, new_der))


#: basicConstraints with ``cA FALSE`` written out: a DEFAULT value, which DER leaves out
#: (X.690 11.5), as Insta Certifier encodes it (tests/data/vectors/cmp/insta_ip_pbm.der)
EXPLICIT_CA_FALSE = bytes.fromhex("3003010100")


def with_extension_value(cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
                         oid: str, value: bytes) -> x509.Certificate:
    """*cert* with the value (the extnValue's content) of its extension *oid* replaced by
    *value*, signed again by *issuer_key* (ECDSA with SHA-256): a certificate whose
    signature verifies but whose extension is encoded as the test wants, e.g. not DER
    (:data:`EXPLICIT_CA_FALSE`). The TBS is re-encoded by pyasn1, the value kept as given."""
    from pyasn1.codec.der import decoder
    from pyasn1_alt_modules import rfc5280

    tbs, _ = decoder.decode(cert.tbs_certificate_bytes, asn1Spec=rfc5280.TBSCertificate())
    found = [ext for ext in tbs["extensions"] if str(ext["extnID"]) == oid]
    assert len(found) == 1, f"{oid} is not an extension of the certificate"
    found[0]["extnValue"] = value
    return _signed_again(tbs, issuer_key)


def with_key_algorithm(cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
                       oid: str) -> x509.Certificate:
    """*cert* with its subjectPublicKeyInfo's algorithm set to *oid*, signed again by
    *issuer_key*: a certificate whose signature verifies but whose key cryptography
    cannot load when *oid* names a key type it does not know."""
    from pyasn1.codec.der import decoder
    from pyasn1.type import univ
    from pyasn1_alt_modules import rfc5280

    tbs, _ = decoder.decode(cert.tbs_certificate_bytes, asn1Spec=rfc5280.TBSCertificate())
    tbs["subjectPublicKeyInfo"]["algorithm"]["algorithm"] = univ.ObjectIdentifier(oid)
    return _signed_again(tbs, issuer_key)


def _signed_again(tbs, issuer_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """The certificate of pyasn1 TBSCertificate *tbs*, signed by *issuer_key* (ECDSA with
    SHA-256, the algorithm *tbs* names for the certificates of this module)."""
    from pyasn1.codec.der import encoder
    from pyasn1.type import univ
    from pyasn1_alt_modules import rfc5280

    outer = rfc5280.Certificate()
    outer["tbsCertificate"] = tbs
    outer["signatureAlgorithm"] = tbs["signature"]
    outer["signature"] = univ.BitString.fromOctetString(
        issuer_key.sign(encoder.encode(tbs), ec.ECDSA(hashes.SHA256())))
    return x509.load_der_x509_certificate(encoder.encode(outer))


def write_pem(path: Path, *items) -> Path:
    data = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            data += item.public_bytes(serialization.Encoding.PEM)
        else:
            data += item.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    path.write_bytes(data)
    return path


@dataclass
class TestPki:
    """Root CA, the CMP server's signing cert, a client identity, and certs for new keys."""

    __test__ = False  # not a pytest test class

    directory: Path
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    server_key: ec.EllipticCurvePrivateKey
    server: x509.Certificate
    client_key: ec.EllipticCurvePrivateKey
    client: x509.Certificate
    new_key: ec.EllipticCurvePrivateKey
    issued: x509.Certificate  # the mock's -rsp_cert: for new_key
    other_root: x509.Certificate = field(default=None)

    @classmethod
    def create(cls, directory: Path) -> "TestPki":
        directory.mkdir(parents=True, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name((NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Test"),
                          (NameOID.COMMON_NAME, "Test Root CA"))
        root = issue(root_name, root_key.public_key(), root_name, root_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = issue(
            _name((NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Test"),
                  (NameOID.COMMON_NAME, "Test CMP Server")),
            server_key.public_key(), root_name, root_key, ca=False,
        )
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = issue(_name((NameOID.COMMON_NAME, "router1.example.net"),), client_key.public_key(),
                       root_name, root_key, ca=False)
        new_key = ec.generate_private_key(ec.SECP256R1())
        other_key = ec.generate_private_key(ec.SECP256R1())
        other_name = _name((NameOID.COMMON_NAME, "Other Root"),)
        pki = cls(directory, root_key, root, server_key, server, client_key, client, new_key,
                  None, issue(other_name, other_key.public_key(), other_name, other_key, ca=True))
        pki.issued = pki.issue_for(new_key.public_key())
        write_pem(directory / "root.pem", root)
        write_pem(directory / "other_root.pem", pki.other_root)
        write_pem(directory / "server.pem", server)
        write_pem(directory / "server.key", server_key)
        write_pem(directory / "client.pem", client)
        write_pem(directory / "client.key", client_key)
        write_pem(directory / "new.key", new_key)
        write_pem(directory / "issued.pem", pki.issued)
        return pki

    def tls_server(self) -> tuple[str, str]:
        """PEM files (certificate, key) of a TLS server certificate for 127.0.0.1."""
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(_name((NameOID.COMMON_NAME, "127.0.0.1"),), key.public_key(),
                     self.root.subject, self.root_key, ca=False,
                     san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                          x509.DNSName(TLS_SERVER_NAME)])
        return (str(write_pem(self.directory / "tls.pem", cert)),
                str(write_pem(self.directory / "tls.key", key)))

    def issue_for(self, public_key, cn: str = "router1.example.net") -> x509.Certificate:
        return issue(_name((NameOID.COMMON_NAME, cn),), public_key, self.root.subject,
                     self.root_key, ca=False)

    def path(self, name: str) -> str:
        return str(self.directory / name)


class MockCmpServer:
    """``openssl cmp -port 0`` serving /pkix/ until stopped.

    OpenSSL 3.0's mock server protects its answers to MAC-protected requests with PBM and
    HMAC-SHA1 whatever it is asked (its fixed default): a client that accepts them must
    enable weak algorithms.
    """

    def __init__(self, pki: TestPki, *extra: str, rsp_cert: str | None = None,
                 mac: bool = True, signer: bool = True, srv_cert: str | None = None,
                 srv_key: str | None = None):
        args = ["openssl", "cmp", "-port", "0", "-max_msgs", "0"]
        if mac:
            args += ["-srv_ref", REFERENCE, "-srv_secret", f"pass:{SECRET}"]
        if signer:
            args += ["-srv_cert", srv_cert or pki.path("server.pem"),
                     "-srv_key", srv_key or pki.path("server.key")]
        args += [
            "-srv_trusted", pki.path("root.pem"),
            "-rsp_cert", rsp_cert or pki.path("issued.pem"),
            "-rsp_capubs", pki.path("root.pem"),
            "-rsp_extracerts", pki.path("root.pem"),
            *extra,
        ]
        self.args = args
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.output: list[str] = []
        self.port = self._await_port()
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _await_port(self) -> int:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self.output.append(line)
            found = re.search(r"ACCEPT \S*:(\d+)", line)
            if found:
                return int(found.group(1))
        raise RuntimeError("openssl cmp mock server did not start:\n" + "".join(self.output))

    def _read_rest(self) -> None:
        for raw in self.process.stdout:
            self.output.append(raw.decode(errors="replace"))

    def log_once_it_says(self, text: str, timeout: float = 20.0) -> str:
        """The server's output so far, after waiting until it contains ``text``.

        Its output is read by a thread of its own, so a line it wrote just before it
        answered may not have been read yet when the client has the answer. Returns the
        output even when ``text`` never came, for the caller's assertion to show it.
        """
        deadline = time.monotonic() + timeout
        while text not in "".join(self.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        return "".join(self.output)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pkix/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class TlsProxy:
    """Terminates TLS on 127.0.0.1 and forwards the bytes to a plain-HTTP port."""

    def __init__(self, target_port: int, certfile: str, keyfile: str,
                 client_ca: str | None = None):
        """With *client_ca*, a TLS client certificate from that CA is required."""
        import socket
        import ssl

        self._socket_module = socket
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile, keyfile)
        if client_ca:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        """Relay one connection in one thread: an SSL socket is not used by two
        threads at once (a reader and a writer would race on its state)."""
        import select

        try:
            client = self.context.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        upstream = self._socket_module.create_connection(("127.0.0.1", self.target_port))
        try:
            while not self._stopped:
                readable, _, _ = select.select([client, upstream], [], [], 30)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    while source is client and client.pending():  # decrypted, not yet read
                        data += client.recv(client.pending())
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self._stopped = True
        self.listener.close()
