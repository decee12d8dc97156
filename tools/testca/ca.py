"""A small CMP CA (RFC 4210/9480) for tests and demos, built on the agent's own
ASN.1 layer (:mod:`agent.cmp.messages`) and ``cryptography``.

Unlike OpenSSL's mock server, which always returns the same certificate, it
issues a certificate for the key that was asked for, with a configurable
validity in seconds, so that key regeneration and automatic update can be
shown. :class:`TestCa` is sans-IO (PKIMessage bytes in, bytes out); the HTTP
adapter is in ``__main__.py``.

It handles IR, CR, KUR and P10CR protected by password-based MAC or by signature,
certConf/pkiConf, implicit confirm, optional polling (of genm too) and optional rejection;
revocation (RR/RP, RFC 9483 4.2) of the certificates it issued; and the general
messages of RFC 9483 4.3: caCerts, rootCaCert (after :meth:`TestCa.roll_root`, the
new root with its link certificates), certReqTemplate and crlStatusList (a CRL of
what it revoked, signed by its current key).
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
from agent.cmp import der
from agent.cmp import messages as m
from agent.cmp import protection
from agent.cmp.protection import ProtectionError

_SAN_OID = x509.ObjectIdentifier("2.5.29.17")
_STATUS = {"accepted": 0, "rejection": 2, "waiting": 3}
_BAD_REQUEST, _BAD_MESSAGE_CHECK, _BAD_CERT_ID, _BAD_POP, _CERT_REVOKED = 2, 1, 4, 9, 10
_CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cmp-agent"),
    x509.NameAttribute(NameOID.COMMON_NAME, "cmp-agent test CA"),
])
#: certReqTemplate keySpec: id-regCtrl-algId (RFC 9483 4.3.3) with EC P-256
_OID_REG_CTRL_ALG_ID = "1.3.6.1.5.5.7.5.1.11"
_REASON_FLAGS = {
    0: x509.ReasonFlags.unspecified, 1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise, 3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded, 5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold, 8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn, 10: x509.ReasonFlags.aa_compromise,
}
_EC_P256 = "30130607" + "2a8648ce3d0201" + "0608" + "2a8648ce3d030107"


@dataclass
class CaSettings:
    """What the CA accepts and how it answers."""

    reference: bytes | None = None
    secret: bytes | None = field(default=None, repr=False)
    validity: datetime.timedelta = datetime.timedelta(days=365)
    #: no certificate valid after this (a CA that caps validity at its own notAfter)
    not_after_cap: datetime.datetime | None = None
    #: certificates whose holders may sign IR/CR (external identity certificates' CAs)
    trusted: tuple[x509.Certificate, ...] = ()
    #: answer ``waiting`` and this many pollReps before the certificate
    poll_count: int = 0
    check_after: int = 1
    #: what it writes with "waiting": the statusString of its first answer and each
    #: pollRep's reason (RFC 4210 5.3.22); empty: nothing
    poll_reason: str = "issuing"
    #: refuse every request with this text (PKIStatus rejection, badRequest)
    reject: str | None = None
    grant_implicit_confirm: bool = True


@dataclass
class _Pending:
    kind: str
    certificate: x509.Certificate | None  # None: a genm's (its genp is *answer*)
    polls_left: int
    mac: str | None  # the MAC name of a MAC-protected transaction
    reference: bytes | None
    confirmed: bool = False
    cert_req_id: int = 0
    #: the genp body given after the last poll
    answer: bytes | None = None


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
        self.directory = directory
        self.key, self.certificate = self._load_or_create(directory)
        #: after roll_root: the old root, and the link certificates (RFC 4210 4.4)
        self.root_update: m.RootCaKeyUpdate | None = self._load_root_update(directory)
        self.previous_roots: tuple[x509.Certificate, ...] = tuple(
            x509.load_pem_x509_certificates((directory / "ca-old.pem").read_bytes())
        ) if (directory / "ca-old.pem").exists() else ()
        self._pending: dict[bytes, _Pending] = {}
        self._lock = threading.Lock()
        self.issued: list[x509.Certificate] = []
        #: serial -> CRLReason of the certificates revoked by rr
        self.revoked: dict[int, int] = {}
        self.crl_updated = self.clock.now().replace(microsecond=0)

    @staticmethod
    def _ca_certificate(subject_key, issuer_key=None) -> x509.Certificate:
        """A CA certificate for *subject_key* signed by *issuer_key* (itself by default)."""
        issuer_key = issuer_key or subject_key
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(_CA_NAME)
            .issuer_name(_CA_NAME)
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )

    @classmethod
    def _load_or_create(cls, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        key_file, cert_file = directory / "ca-key.pem", directory / "ca.pem"
        if key_file.exists() and cert_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            return key, x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = cls._ca_certificate(key)
        cls._write_ca(directory, key, cert)
        return key, cert

    @staticmethod
    def _write_ca(directory: Path, key, cert: x509.Certificate) -> None:
        atomic_write(directory / "ca-key.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), mode=0o600)
        atomic_write(directory / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), mode=0o644)

    @staticmethod
    def _load_root_update(directory: Path) -> m.RootCaKeyUpdate | None:
        links = directory / "root-update.pem"
        if not links.exists():
            return None
        new_with_new, new_with_old, old_with_new = x509.load_pem_x509_certificates(links.read_bytes())
        return m.RootCaKeyUpdate(new_with_new, new_with_old, old_with_new)

    def roll_root(self) -> m.RootCaKeyUpdate:
        """Replace the root key (RFC 4210 4.4): a new self-signed root (newWithNew) and the
        link certificates newWithOld (the new key certified by the old one) and oldWithNew.
        Certificates issued by the old root still authenticate requests."""
        with self._lock:
            new_key = ec.generate_private_key(ec.SECP256R1())
            update = m.RootCaKeyUpdate(
                new_with_new=self._ca_certificate(new_key),
                new_with_old=self._ca_certificate(new_key, issuer_key=self.key),
                old_with_new=self._ca_certificate(self.key, issuer_key=new_key),
            )
            self.previous_roots = (*self.previous_roots, self.certificate)
            atomic_write(self.directory / "ca-old.pem", b"".join(
                c.public_bytes(serialization.Encoding.PEM) for c in self.previous_roots), mode=0o644)
            atomic_write(self.directory / "root-update.pem", b"".join(
                c.public_bytes(serialization.Encoding.PEM)
                for c in (update.new_with_new, update.new_with_old, update.old_with_new)), mode=0o644)
            self._write_ca(self.directory, new_key, update.new_with_new)
            self.key, self.certificate, self.root_update = new_key, update.new_with_new, update
            return update

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
        if kind == "p10cr":
            return self._p10_request(request, mac)
        if kind in m.RESPONSE_TYPE:
            return self._certificate_request(request, mac)
        if kind == "rr":
            return self._revocation_request(request, mac)
        if kind == "genm":
            return self._general_message(request, mac)
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
        own = [self.certificate, *self.previous_roots]  # what this CA issued, before a root roll
        anchors = own if kind in ("kur", "rr") else [*own, *self.settings.trusted]
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
        return self._answer_request(request, certificate, req.cert_req_id, mac)

    def _answer_request(self, request: m.DecodedMessage, certificate: x509.Certificate,
                        cert_req_id: int, mac: bool) -> bytes:
        kind = request.body_type
        implicit = request.implicit_confirm and self.settings.grant_implicit_confirm
        pending = _Pending(kind, certificate, self.settings.poll_count, mac, request.sender_kid,
                           cert_req_id=cert_req_id)
        if not implicit:
            self._pending[request.transaction_id] = pending
        if pending.polls_left:
            self._pending[request.transaction_id] = pending
            return self._respond(request, m.cert_rep_body(m.RESPONSE_TYPE[kind], m.CertRepContent(
                (m.CertResponse(cert_req_id, m.StatusInfo(_STATUS["waiting"], self._poll_texts())),))),
                mac)
        return self._granted(request, pending, implicit)

    def _p10_request(self, request: m.DecodedMessage, mac: bool) -> bytes:
        """RFC 9483 4.1.4: the CSR's own signature is the proof of possession; the
        response's certReqId is -1 (RFC 9480 2.9)."""
        if self.settings.reject:
            return self._respond(request, m.cert_rep_body("cp", m.CertRepContent((
                m.CertResponse(m.P10CR_CERT_REQ_ID, m.StatusInfo(
                    _STATUS["rejection"], (self.settings.reject,), (_BAD_REQUEST,))),))), mac)
        csr = m.p10_request(request)
        if not csr.is_signature_valid:
            raise CaError("the PKCS#10 signature does not verify", _BAD_POP)
        if not len(csr.subject):
            raise CaError("the PKCS#10 request has no subject")
        san = None
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        certificate = self._issue(csr.subject, csr.public_key(), None, san)
        return self._answer_request(request, certificate, m.P10CR_CERT_REQ_ID, mac)

    # ----------------------------------------------------------- revocation
    def _revocation_request(self, request: m.DecodedMessage, mac: bool) -> bytes:
        """RFC 9483 4.2: revoke one certificate this CA issued, for the given reason."""
        (details,) = m.revocation_requests(request)[:1]
        issued = next((c for c in self.issued if c.serial_number == details.serial
                       and c.issuer == details.issuer), None)
        if issued is None:
            status = m.StatusInfo(_STATUS["rejection"], ("no such certificate issued here",),
                                  (_BAD_CERT_ID,))
        elif details.serial in self.revoked:
            status = m.StatusInfo(_STATUS["rejection"], ("already revoked",), (_CERT_REVOKED,))
        else:
            if not mac and request.extra_certs[0].serial_number != details.serial:
                raise CaError("an rr is signed with the certificate it revokes (RFC 9483 4.2)",
                              _BAD_MESSAGE_CHECK)
            self.revoked[details.serial] = details.reason or 0
            self.crl_updated = self.clock.now().replace(microsecond=0)
            status = m.StatusInfo(_STATUS["accepted"])
        return self._respond(request, m.rp_body(m.RevocationResponse((status,))), mac)

    def crl(self) -> x509.CertificateRevocationList:
        """The CRL of what this CA revoked, signed with its current key."""
        now = self.clock.now().replace(microsecond=0)
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.certificate.subject)
                   .last_update(self.crl_updated)
                   .next_update(now + datetime.timedelta(days=1)))
        for serial, reason in sorted(self.revoked.items()):
            entry = (x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
                     .add_extension(x509.CRLReason(_REASON_FLAGS[reason]), critical=False)
                     .build())
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256())

    # ----------------------------------------------------- general messages
    def _general_message(self, request: m.DecodedMessage, mac: bool) -> bytes:
        """RFC 9483 4.3: answer each info type asked for; others are left out."""
        answers = []
        for entry in m.general_entries(request):
            if entry.oid == m.INFO_TYPES["caCerts"][0]:
                answers.append(m.InfoTypeAndValue(entry.oid, m.ca_certs_value(
                    (self.certificate, *self.previous_roots))))
            elif entry.oid == m.INFO_TYPES["rootCaCert"][0]:
                update = self.root_update
                if entry.value is not None and update is not None:
                    current = x509.load_der_x509_certificate(entry.value)
                    if current == update.new_with_new:  # the client has the newest root
                        update = None
                answers.append(m.InfoTypeAndValue(
                    m.INFO_TYPES["rootCaCert"][1],
                    m.root_ca_key_update_value(update) if update is not None else None))
            elif entry.oid == m.INFO_TYPES["certReqTemplate"][0]:
                template = m.cert_template(x509.Name([
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cmp-agent")]))
                key_spec = der.tlv(0x30, der.tlv(0x30, der.encode_oid(_OID_REG_CTRL_ALG_ID)
                                                 + bytes.fromhex(_EC_P256)))
                answers.append(m.InfoTypeAndValue(
                    entry.oid, m.CertReqTemplate(template, key_spec).to_der()))
            elif entry.oid == m.INFO_TYPES["crlStatusList"][0]:
                crl = self.crl()
                # lenient: a client that sends no CRLStatus (OpenSSL 3.0) gets the CRL
                statuses = m.read_crl_statuses(entry.value) if entry.value is not None else []
                held = [s.this_update for s in statuses]
                newer = all(t is None or t < crl.last_update_utc for t in held)
                answers.append(m.InfoTypeAndValue(m.INFO_TYPES["crlStatusList"][1],
                                                  m.crls_value((crl,) if newer else ())))
        if self.settings.poll_count:  # RFC 9483 4.4: "waiting" in an error message, then
            # pollRep for certReqId -1 (RFC 4210 5.3.22 as RFC 9480 extends it to genm)
            self._pending[request.transaction_id] = _Pending(
                "genm", None, self.settings.poll_count, mac, request.sender_kid, cert_req_id=-1,
                answer=m.genp_body(answers))
            return self._respond(request, m.error_body(m.ErrorContent(
                m.StatusInfo(_STATUS["waiting"], self._poll_texts()))), mac)
        return self._respond(request, m.genp_body(answers), mac)

    def _issue(self, subject: x509.Name, public_key, extensions_der: bytes | None,
               san_extension: x509.Extension | None = None) -> x509.Certificate:
        now = self.clock.now().replace(microsecond=0)
        not_after = now + self.settings.validity
        if self.settings.not_after_cap is not None:
            not_after = min(not_after, self.settings.not_after_cap)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(int.from_bytes(self.rng(8), "big") >> 1 or 1)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        san = _requested_san(extensions_der)
        if san_extension is not None:
            san = (san_extension.value, san_extension.critical)
        if san is not None:
            builder = builder.add_extension(san[0], critical=san[1])
        certificate = builder.sign(self.key, hashes.SHA256())
        self.issued.append(certificate)
        return certificate

    def _granted(self, request: m.DecodedMessage, pending: _Pending, implicit: bool) -> bytes:
        kind = m.RESPONSE_TYPE[pending.kind]
        ca_pubs = (self.certificate,) if pending.kind == "ir" else ()
        body = m.cert_rep_body(kind, m.CertRepContent((m.CertResponse(
            pending.cert_req_id, m.StatusInfo(_STATUS["accepted"]), pending.certificate),), ca_pubs))
        return self._respond(request, body, pending.mac, implicit_confirm=implicit)

    def _poll(self, request: m.DecodedMessage, pending: _Pending) -> bytes:
        pending.polls_left -= 1
        if pending.polls_left > 0:
            body = m.poll_rep_body([m.PollResponse(pending.cert_req_id, self.settings.check_after,
                                                   self._poll_texts())])
            return self._respond(request, body, pending.mac)
        if pending.answer is not None:
            del self._pending[request.transaction_id]
            return self._respond(request, pending.answer, pending.mac)
        return self._granted(request, pending, implicit=False)

    def _poll_texts(self) -> tuple[str, ...]:
        return (self.settings.poll_reason,) if self.settings.poll_reason else ()

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
