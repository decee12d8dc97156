"""A small CMP CA (RFC 4210/9480) for tests and demos, built on the agent's own
ASN.1 layer (:mod:`agent.cmp.messages`) and ``cryptography``.

Unlike OpenSSL's mock server, which always returns the same certificate, it
issues a certificate for the key that was asked for, with a configurable
validity in seconds, so that key regeneration and automatic update can be
shown. :class:`TestCa` is sans-IO (PKIMessage bytes in, bytes out); the HTTP
adapter is in ``__main__.py``.

It handles IR, CR and KUR protected by password-based MAC or by signature,
certConf/pkiConf, implicit confirm, optional polling and optional rejection.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.atomic import atomic_write
from agent.clock import Clock, SystemClock
from agent.cmp import messages as m
from agent.cmp import protection
from agent.cmp.protection import ProtectionError

_SAN_OID = x509.ObjectIdentifier("2.5.29.17")
_STATUS = {"accepted": 0, "rejection": 2, "waiting": 3}
_BAD_REQUEST, _BAD_MESSAGE_CHECK, _BAD_POP = 2, 1, 9


@dataclass
class CaSettings:
    """What the CA accepts and how it answers."""

    reference: bytes | None = None
    secret: bytes | None = field(default=None, repr=False)
    validity: datetime.timedelta = datetime.timedelta(days=365)
    #: certificates whose holders may sign IR/CR (external identity certificates' CAs)
    trusted: tuple[x509.Certificate, ...] = ()
    #: answer ``waiting`` and this many pollReps before the certificate
    poll_count: int = 0
    check_after: int = 1
    #: refuse every request with this text (PKIStatus rejection, badRequest)
    reject: str | None = None
    grant_implicit_confirm: bool = True


@dataclass
class _Pending:
    kind: str
    certificate: x509.Certificate
    polls_left: int
    mac: str | None  # the MAC name of a MAC-protected transaction
    reference: bytes | None
    confirmed: bool = False


class CaError(Exception):
    """A request the CA refuses with an error message."""

    def __init__(self, text: str, bit: int = _BAD_REQUEST):
        super().__init__(text)
        self.bit = bit


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TestCa:
    """The CA's state: its key and certificate, and the open transactions."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, settings: CaSettings, *, clock: Clock | None = None,
                 rng: Callable[[int], bytes] = os.urandom):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.rng = rng
        self.key, self.certificate = self._load_or_create(directory)
        self._pending: dict[bytes, _Pending] = {}
        self._lock = threading.Lock()
        self.issued: list[x509.Certificate] = []

    @staticmethod
    def _load_or_create(directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        key_file, cert_file = directory / "ca-key.pem", directory / "ca.pem"
        if key_file.exists() and cert_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            return key, x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cmp-agent"),
            x509.NameAttribute(NameOID.COMMON_NAME, "cmp-agent test CA"),
        ])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        atomic_write(key_file, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), mode=0o600)
        atomic_write(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return key, cert

    # ---------------------------------------------------------------- entry
    def handle(self, data: bytes) -> bytes:
        """Answer one PKIMessage (RFC 4210 5.3)."""
        with self._lock:
            try:
                request = m.decode_message(data)
            except m.MessageError as exc:
                return self._error(None, f"not a PKIMessage: {exc}", _BAD_REQUEST)
            try:
                mac = self._check_protection(request)
                return self._dispatch(request, mac)
            except CaError as exc:
                return self._error(request, str(exc), exc.bit)
            except Exception as exc:  # a request this CA cannot make sense of
                return self._error(request, f"bad request: {type(exc).__name__}: {exc}",
                                   _BAD_REQUEST)

    def _dispatch(self, request: m.DecodedMessage, mac: str | None) -> bytes:
        kind = request.body_type
        if kind == "kur" and mac:
            raise CaError("a KUR is signed with the certificate it updates (RFC 4210 5.3.5),"
                          " not MAC-protected", _BAD_MESSAGE_CHECK)
        if kind in m.RESPONSE_TYPE:
            return self._certificate_request(request, mac)
        pending = self._pending.get(request.transaction_id or b"")
        if pending is None:
            raise CaError(f"{kind} for an unknown transaction")
        if kind == "pollReq":
            return self._poll(request, pending)
        if kind == "certConf":
            return self._cert_conf(request, pending)
        raise CaError(f"unsupported message type {kind}")

    # ----------------------------------------------------------- protection
    def _check_protection(self, request: m.DecodedMessage) -> str | None:
        """The MAC's name (:data:`agent.cmp.protection.MAC_SCHEMES`) for MAC protection,
        PBM or PBMAC1, answered with the same MAC; ``None`` for signature protection, checked
        against the CA itself and the trusted certificates. Raises CaError."""
        if request.protection is None or request.protection_alg is None:
            raise CaError("unprotected requests are not accepted", _BAD_MESSAGE_CHECK)
        alg = request.protection_alg
        try:
            if alg.oid in (protection.OID_PASSWORD_BASED_MAC, protection.OID_PBMAC1):
                if self.settings.secret is None:
                    raise CaError("this CA does not accept MAC protection", _BAD_MESSAGE_CHECK)
                if self.settings.reference and request.sender_kid != self.settings.reference:
                    raise CaError("unknown reference value (senderKID)", _BAD_MESSAGE_CHECK)
                params = m.decode_mac_parameters(alg)
                protection.verify_mac(self.settings.secret, params, request.protected_part,
                                      request.protection, weak_allowed=True)
                return _mac_name(params)
            if not request.extra_certs:
                raise CaError("signed request without its certificate in extraCerts",
                              _BAD_MESSAGE_CHECK)
            signer = request.extra_certs[0]
            protection.verify_signature(signer.public_key(), m.decode_signature_algorithm(alg),
                                        request.protected_part, request.protection)
            self._check_signer(signer, request.body_type)
            return None
        except (ProtectionError, m.MessageError) as exc:
            raise CaError(f"protection check failed: {exc}", _BAD_MESSAGE_CHECK) from None

    def _check_signer(self, signer: x509.Certificate, kind: str) -> None:
        anchors = [self.certificate] if kind == "kur" else [self.certificate, *self.settings.trusted]
        now = self.clock.now()
        if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
            raise CaError("the signer's certificate is not valid now", _BAD_MESSAGE_CHECK)
        for anchor in anchors:
            if signer.issuer != anchor.subject:
                continue
            try:
                signer.verify_directly_issued_by(anchor)
                return
            except (ValueError, TypeError, Exception):  # InvalidSignature and friends
                continue
        raise CaError("the signer's certificate is not issued by a CA this CA trusts",
                      _BAD_MESSAGE_CHECK)

    # ------------------------------------------------------------- requests
    def _certificate_request(self, request: m.DecodedMessage, mac: str | None) -> bytes:
        kind = request.body_type
        if self.settings.reject:
            return self._respond(request, m.cert_rep_body(m.RESPONSE_TYPE[kind], m.CertRepContent((
                m.CertResponse(0, m.StatusInfo(_STATUS["rejection"], (self.settings.reject,),
                                               (_BAD_REQUEST,))),))), mac)
        (req,) = m.cert_requests(request)[:1]
        if req.public_key_info is None or req.pop_signature is None:
            raise CaError("the request needs a public key and signature proof of possession", _BAD_POP)
        public_key = serialization.load_der_public_key(req.public_key_info)
        try:
            protection.verify_signature(public_key, m.decode_signature_algorithm(req.pop_algorithm),
                                        req.cert_request_der, req.pop_signature)
        except ProtectionError:
            raise CaError("proof of possession does not verify", _BAD_POP) from None
        subject = req.subject
        if kind == "kur":
            old = request.extra_certs[0]
            if req.old_cert_id and req.old_cert_id[1] != old.serial_number:
                raise CaError("oldCertID does not name the certificate that signed the KUR")
            subject = subject if subject is not None and len(subject) else old.subject
        if subject is None or not len(subject):
            raise CaError("the certificate template has no subject")
        certificate = self._issue(subject, public_key, req.extensions_der)
        implicit = request.implicit_confirm and self.settings.grant_implicit_confirm
        pending = _Pending(kind, certificate, self.settings.poll_count, mac, request.sender_kid)
        if not implicit:
            self._pending[request.transaction_id] = pending
        if pending.polls_left:
            self._pending[request.transaction_id] = pending
            return self._respond(request, m.cert_rep_body(m.RESPONSE_TYPE[kind], m.CertRepContent(
                (m.CertResponse(req.cert_req_id, m.StatusInfo(_STATUS["waiting"])),))), mac)
        return self._granted(request, pending, implicit)

    def _issue(self, subject: x509.Name, public_key, extensions_der: bytes | None) -> x509.Certificate:
        now = self.clock.now().replace(microsecond=0)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(int.from_bytes(self.rng(8), "big") >> 1 or 1)
            .not_valid_before(now)
            .not_valid_after(now + self.settings.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        san = _requested_san(extensions_der)
        if san is not None:
            builder = builder.add_extension(san[0], critical=san[1])
        certificate = builder.sign(self.key, hashes.SHA256())
        self.issued.append(certificate)
        return certificate

    def _granted(self, request: m.DecodedMessage, pending: _Pending, implicit: bool) -> bytes:
        kind = m.RESPONSE_TYPE[pending.kind]
        ca_pubs = (self.certificate,) if pending.kind == "ir" else ()
        body = m.cert_rep_body(kind, m.CertRepContent(
            (m.CertResponse(0, m.StatusInfo(_STATUS["accepted"]), pending.certificate),), ca_pubs))
        return self._respond(request, body, pending.mac, implicit_confirm=implicit)

    def _poll(self, request: m.DecodedMessage, pending: _Pending) -> bytes:
        pending.polls_left -= 1
        if pending.polls_left > 0:
            body = m.poll_rep_body([m.PollResponse(0, self.settings.check_after, ("issuing",))])
            return self._respond(request, body, pending.mac)
        return self._granted(request, pending, implicit=False)

    def _cert_conf(self, request: m.DecodedMessage, pending: _Pending) -> bytes:
        entries = m.cert_conf_entries(request)
        expected, _ = m.cert_hash(pending.certificate)
        if entries and entries[0].cert_hash != expected:
            raise CaError("certHash does not match the certificate issued", _BAD_MESSAGE_CHECK)
        del self._pending[request.transaction_id]
        return self._respond(request, m.pki_conf_body(), pending.mac)

    # ------------------------------------------------------------ responses
    def _respond(self, request: m.DecodedMessage, body, mac: str | None, implicit_confirm: bool = False) -> bytes:
        fields = m.HeaderFields(
            sender=self.certificate.subject,
            recipient=request.sender or x509.Name([]),
            transaction_id=request.transaction_id or self.rng(16),
            sender_nonce=self.rng(16),
            recip_nonce=request.sender_nonce,
            message_time=self.clock.now(),
            implicit_confirm=implicit_confirm,
        )
        protector: m.Protector
        if mac:
            protector = m.MacProtector(self.settings.reference or b"", self.settings.secret,
                                       mac, rng=self.rng)
        else:
            protector = m.SignatureProtector(self.certificate, self.key)
        return m.encode_message(fields, body, protector)

    def _error(self, request: m.DecodedMessage | None, text: str, bit: int) -> bytes:
        body = m.error_body(m.ErrorContent(m.StatusInfo(_STATUS["rejection"], (text,), (bit,))))
        fields = m.HeaderFields(
            sender=self.certificate.subject,
            recipient=(request.sender if request else None) or x509.Name([]),
            transaction_id=(request.transaction_id if request else None) or self.rng(16),
            sender_nonce=self.rng(16),
            recip_nonce=request.sender_nonce if request else None,
            message_time=self.clock.now(),
        )
        return m.encode_message(fields, body, m.SignatureProtector(self.certificate, self.key))


def _mac_name(params: protection.MacParameters) -> str:
    """The configured name of the MAC a request used, to answer with the same."""
    hash_name = protection.MAC_OIDS.get(params.mac)
    kind = "pbm" if isinstance(params, protection.PbmParameters) else "pbmac1"
    for name, scheme in protection.MAC_SCHEMES.items():
        if scheme == protection.MacScheme(kind, hash_name):
            return name
    raise CaError(f"this CA does not answer with MAC {params.mac}", _BAD_MESSAGE_CHECK)


def _requested_san(extensions_der: bytes | None) -> tuple[x509.ExtensionType, bool] | None:
    """The subjectAltName of the template, copied as requested."""
    if not extensions_der:
        return None
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_alt_modules import rfc5280

    extensions, _ = decoder.decode(extensions_der, asn1Spec=rfc5280.Extensions())
    for ext in extensions:
        if str(ext["extnID"]) == _SAN_OID.dotted_string:
            value = ext["extnValue"].asOctets()
            return x509.UnrecognizedExtension(_SAN_OID, value), bool(ext["critical"])
    del encoder
    return None
