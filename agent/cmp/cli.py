"""Run one CMP transaction from the shell, like ``openssl cmp``: a certificate (ir, cr,
kur, p10cr), a revocation (rr) or general information (genm, RFC 9483 4.3).

Examples::

    cmp-agent cmp ir --server http://ca.example.net:8080/pkix/ --ref 3078 \\
        --secret env:CMP_SECRET --newkey router.key --subject /CN=router1 \\
        --recipient "/C=DE/O=Example/CN=Example CA" --certout router.pem
    cmp-agent cmp kur --server http://ca/pkix/ --cert router.pem --key router.key \\
        --newkey router-new.key --srvcert ca-cmp.pem --certout router-new.pem
    cmp-agent cmp p10cr --server http://ca/pkix/ --ref 3078 --secret env:CMP_SECRET \\
        --csr router.csr --certout router.pem
    cmp-agent cmp rr --server http://ca/pkix/ --oldcert router.pem --key router.key \\
        --revreason 1 --srvcert ca-cmp.pem
    cmp-agent cmp genm --server http://ca/pkix/ --ref 3078 --secret env:CMP_SECRET \\
        --infotype rootCaCert --oldwithold root.pem --newwithnew new-root.pem

Secrets and key passwords are given as OpenSSL password sources: ``pass:TEXT``,
``env:VAR``, ``file:PATH`` (first line) or ``stdin``; they are never printed.
``pass:TEXT`` is on the command line, which other users of the machine see (ps,
/proc/PID/cmdline) while the command runs, and which shell history keeps: for a
real secret use ``env:``, ``file:`` (mode 0600) or ``stdin``.
Exit status: 0 done, 1 the transaction failed, 2 bad arguments or input files.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.atomic import atomic_write
from agent.clock import yang_datetime

from . import protection
from . import messages as m
from .client import KINDS, EnrollmentRequest, MacCredentials, Polling, SignerCredentials, enroll
from .names import NameSyntaxError, SubjectAltNames, parse_dn
from .pool import not_der
from .protection import PrivateKey, ProtectionError
from .transaction import Enrolled, GeneralResponse, Revoked


class UsageError(Exception):
    """Bad arguments or unreadable input; exit status 2."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("cmp_command", choices=KINDS, metavar="{" + ",".join(KINDS) + "}",
                        help="ir: initial request, cr: certificate request, kur: key update,"
                             " p10cr: PKCS#10 request, rr: revocation request,"
                             " genm: general message (CA certificates, root CA update,"
                             " request template, CRL)")
    server = parser.add_argument_group("server")
    server.add_argument("--server", required=True, metavar="URL",
                        help="http[s]://host[:port]/path of the CMP server")
    server.add_argument("--recipient", metavar="DN", help='CA name, e.g. "/C=DE/O=Example/CN=CA"')
    server.add_argument("--srvcert", metavar="FILE",
                        help="pinned certificate of the CMP server: its responses must be signed"
                             " by exactly this certificate, whose path is not validated (then"
                             " --trusted serves only the new certificate's chain)")
    server.add_argument("--trusted", metavar="FILE",
                        help="trust anchors for the server's signer and the new certificate"
                             " (without them, and without caPubs under the MAC, the new"
                             " certificate's chain is not checked, and the output says so)")
    server.add_argument("--untrusted", metavar="FILE",
                        help="intermediate CA certificates that may complete those paths")
    server.add_argument("--ignore-keyusage", action="store_true",
                        help="accept a server signer certificate without digitalSignature"
                             " key usage (only that check is relaxed)")
    server.add_argument("--tls-trusted", metavar="FILE",
                        help="CAs trusted for the https server's TLS certificate "
                             "(default: the system's)")
    server.add_argument("--tls-cert", metavar="FILE",
                        help="our TLS client certificate (and its chain), if the server asks")
    server.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert")
    server.add_argument("--tls-keypass", metavar="SOURCE", help="password of --tls-key")
    server.add_argument("--tls-host", metavar="NAME",
                        help="name the server's TLS certificate must carry "
                             "(default: the host of --server)")
    server.add_argument("--source-address", metavar="IP", help="local address to connect from")
    server.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="bound on opening each connection to the server (default 10)")
    server.add_argument("--msg-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="bound on each HTTP exchange, connect to last byte (default 120)")
    server.add_argument("--total-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="bound on the whole transaction, polling included "
                             "(default 0: poll as long as the CA asks, RFC 4210 5.3.22)")
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--ref", metavar="VALUE", help="MAC reference value (senderKID)")
    auth.add_argument("--secret", metavar="SOURCE", help="MAC secret: env:VAR, file:PATH, stdin, or pass:TEXT"
                      " (visible to other users in the process list)")
    auth.add_argument("--mac", choices=tuple(protection.MAC_SCHEMES), default="hmac-sha256",
                      help="MAC with --secret: PBM (hmac-*, RFC 4210 5.1.3.1) or PBMAC1 "
                           "(pbmac1-*, RFC 9481 6.1.1); default hmac-sha256")
    auth.add_argument("--digest", choices=protection.DIGESTS, metavar="NAME",
                      help="hash of our signatures (protection and proof of possession): "
                           f"{', '.join(protection.DIGESTS)}; default sha256, the curve's hash "
                           "for P-384 and P-521")
    auth.add_argument("--weak-algorithms", action="store_true",
                      help="allow SHA-1 (hmac-sha1, --digest sha1) and accept responses using "
                           "it; refused otherwise")
    auth.add_argument("--cert", metavar="FILE", help="our certificate for signature protection "
                      "(for kur: the certificate to update)")
    auth.add_argument("--key", metavar="FILE", help="private key of --cert")
    auth.add_argument("--keypass", metavar="SOURCE", help="password of --key")
    auth.add_argument("--extracerts", metavar="FILE", help="chain of --cert to send")
    request = parser.add_argument_group("request")
    request.add_argument("--newkey", metavar="FILE",
                         help="private key to certify (ir/cr/kur; with --csr, the CSR's key,"
                              " for proof of possession)")
    request.add_argument("--newkeypass", metavar="SOURCE", help="password of --newkey")
    request.add_argument("--subject", metavar="DN", help='subject, e.g. "/O=Example/CN=router1"')
    request.add_argument("--sans", metavar="NAMES",
                         help="subject alternative names, comma-separated: DNS names, IP "
                              "addresses, e-mail addresses (e.g. router1.example.net,192.0.2.1)")
    request.add_argument("--csr", metavar="FILE",
                         help="PKCS#10 request: p10cr sends it; ir/cr/kur take its subject,"
                              " extensions and public key")
    request.add_argument("--implicit-confirm", action="store_true",
                         help="ask the CA to waive certConf")
    request.add_argument("--profile", metavar="NAME",
                         help="certificate profile to ask for (RFC 9480 certProfile)")
    revocation = parser.add_argument_group("revocation (rr)")
    revocation.add_argument("--oldcert", metavar="FILE",
                            help="certificate to revoke (rr) or to update (kur)")
    revocation.add_argument("--revreason", type=int, default=None, metavar="N",
                            help="CRLReason (RFC 5280 5.3.1): 0..6, 8..10; -1: none (default)")
    general = parser.add_argument_group("general message (genm)")
    general.add_argument("--infotype", choices=tuple(m.INFO_TYPES),
                         help="what to ask for (RFC 9483 4.3)")
    general.add_argument("--oldwithold", metavar="FILE",
                         help="rootCaCert: the root CA certificate trusted now")
    general.add_argument("--newwithnew", metavar="FILE",
                         help="rootCaCert: where to write the new root (after it is checked)")
    general.add_argument("--newwithold", metavar="FILE", help="rootCaCert: where to write newWithOld")
    general.add_argument("--oldwithnew", metavar="FILE", help="rootCaCert: where to write oldWithNew")
    general.add_argument("--template", metavar="FILE",
                         help="certReqTemplate: where to write the template (DER)")
    general.add_argument("--crlcert", metavar="FILE",
                         help="crlStatusList: a certificate whose CRL is wanted")
    general.add_argument("--oldcrl", metavar="FILE", help="crlStatusList: the CRL held now")
    general.add_argument("--crlout", metavar="FILE", help="crlStatusList: where to write the CRL")
    output = parser.add_argument_group("output")
    output.add_argument("--certout", metavar="FILE", help="where to write the new certificate")
    output.add_argument("--cacertsout", metavar="FILE",
                        help="where to write caPubs (genm caCerts: the CA certificates)")
    output.add_argument("--extracertsout", metavar="FILE", help="where to write extraCerts")
    output.add_argument("--certform", choices=("pem", "der"), default="pem",
                        help="encoding of the certificate files written (default pem)")


def read_password(source: str, what: str) -> bytes:
    """An OpenSSL-style password source (``openssl-passphrase-options(1)``)."""
    kind, _, rest = source.partition(":")
    if kind == "pass":
        return rest.encode()
    if kind == "env":
        if rest not in os.environ:
            raise UsageError(f"{what}: environment variable {rest!r} is not set")
        return os.environ[rest].encode()
    if kind == "file":
        try:
            with open(rest, "rb") as handle:
                return handle.readline().rstrip(b"\r\n")
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {rest}: {exc.strerror}") from None
    if source == "stdin":
        return sys.stdin.buffer.readline().rstrip(b"\r\n")
    raise UsageError(f"{what}: use pass:TEXT, env:VAR, file:PATH or stdin")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None


def load_certificates(path: str, what: str) -> tuple[x509.Certificate, ...]:
    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise UsageError(f"{what}: {path} holds no certificate: {exc}") from None


def load_checked(path: str, what: str, role: str) -> tuple[x509.Certificate, ...]:
    """The certificates of *path*, whatever the option does with them (trust them as
    *role*, offer them as intermediates, sign with, name, send or present them over TLS):
    one that is not DER is refused now, by file, name and cause, rather than at the first
    response, as a traceback, or never (OpenSSL, which checks the TLS certificates and
    the CA, which reads what we send, may accept it; cryptography reads only DER
    extensions; README "Trust model"). Every certificate file option loads through here."""
    certs = load_certificates(path, what)
    for cert in certs:
        refusal = not_der(cert, role)
        if refusal is not None:
            raise UsageError(f"{what}: {path}: {refusal}")
    return certs


def load_key(path: str, password_source: str | None, what: str) -> tuple[PrivateKey, bool]:
    """The private key in *path* and whether it is an RSA-PSS key (signs with RSASSA-PSS
    only, as OpenSSL does with such a key)."""
    data = _read(path, what)
    password = read_password(password_source, what) if password_source else None
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{what}: cannot load private key {path}: {exc}") from None
    return key, protection.is_rsa_pss_key_file(data)


def load_new_key(path: str, password_source: str | None) -> PrivateKey:
    """The key to certify. An RSA-PSS key is refused, as the agent's key-pair-import
    refuses it: its certTemplate would need an id-RSASSA-PSS SubjectPublicKeyInfo (RFC
    4055 1.2), which RFC 9483 does not profile, and certifying it as rsaEncryption (what
    was sent before) would lift the key's PSS-only restriction."""
    key, rsa_pss = load_key(path, password_source, "--newkey")
    if rsa_pss:
        raise UsageError(
            f"--newkey: {path} is an RSA-PSS key (id-RSASSA-PSS, RFC 4055), which may sign"
            " only with RSASSA-PSS; a certificate is requested here for RSA (rsaEncryption)"
            " or EC keys only. Use an RSA key (openssl genpkey -algorithm RSA) or an EC key;"
            " an RSA key still signs with RSASSA-PSS under a certificate that names"
            " id-RSASSA-PSS (--key)")
    return key


def parse_sans(text: str | None) -> SubjectAltNames:
    import ipaddress

    dns, ips, emails = [], [], []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            ipaddress.ip_address(item)
            ips.append(item)
        except ValueError:
            (emails if "@" in item else dns).append(item)
    return SubjectAltNames(tuple(dns), tuple(ips), tuple(emails))


def load_csr(path: str) -> x509.CertificateSigningRequest:
    data = _read(path, "--csr")
    try:
        csr = (x509.load_pem_x509_csr(data) if b"-----BEGIN" in data
               else x509.load_der_x509_csr(data))
    except ValueError as exc:
        raise UsageError(f"--csr: {path} holds no PKCS#10 request: {exc}") from None
    if not csr.is_signature_valid:
        raise UsageError(f"--csr: the signature of {path} does not verify")
    return csr


def _general_entries(args: argparse.Namespace) -> tuple[m.InfoTypeAndValue, ...]:
    if args.infotype is None:
        raise UsageError("genm needs --infotype " + "|".join(m.INFO_TYPES))
    old_root = None
    statuses = []
    if args.infotype == "rootCaCert":
        if not args.oldwithold:
            raise UsageError("rootCaCert needs --oldwithold: the root trusted now, which the"
                             " new one must be chained to")
        old_root = load_checked(args.oldwithold, "--oldwithold", "trust anchor")[0]
    if args.infotype == "crlStatusList":
        if not args.crlcert:
            raise UsageError("crlStatusList needs --crlcert: a certificate whose CRL is wanted")
        crl = None
        if args.oldcrl:
            data = _read(args.oldcrl, "--oldcrl")
            try:
                crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN" in data
                       else x509.load_der_x509_crl(data))
            except ValueError as exc:
                raise UsageError(f"--oldcrl: {args.oldcrl} holds no CRL: {exc}") from None
        statuses.append(m.crl_status_for(load_checked(args.crlcert, "--crlcert", "certificate")[0], crl))
    from . import genm  # only genm needs it

    return genm.request_entries(args.infotype, old_root=old_root, crl_statuses=statuses)


def build_request(args: argparse.Namespace) -> EnrollmentRequest:
    kind = args.cmp_command
    mac = signer = None
    if args.secret is not None:
        if args.ref is None:
            raise UsageError("--secret needs --ref (the reference value the CA gave you)")
        try:
            mac = MacCredentials(args.ref.encode(), read_password(args.secret, "--secret"), args.mac)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    old = load_checked(args.oldcert, "--oldcert", "certificate")[0] if args.oldcert else None
    cert_file = args.cert or (args.oldcert if kind == "rr" and args.key else None)
    if cert_file or args.key:
        if not (cert_file and args.key):
            raise UsageError("--cert and --key go together")
        chain = (load_checked(args.extracerts, "--extracerts", "certificate") if args.extracerts
                 else ())
        key, rsa_pss = load_key(args.key, args.keypass, "--key")
        try:
            signer = SignerCredentials(load_checked(cert_file, "--cert", "certificate")[0], key, chain,
                                       rsa_pss)
        except ValueError as exc:  # refused before anything is sent
            raise UsageError(f"--cert/--key: {exc}") from None
    tls_client = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise UsageError("--tls-cert and --tls-key go together")
        tls_chain = load_checked(args.tls_cert, "--tls-cert", "TLS client certificate")
        try:
            tls_client = SignerCredentials(
                tls_chain[0], load_key(args.tls_key, args.tls_keypass, "--tls-key")[0], tls_chain[1:]
            )
        except ValueError as exc:
            raise UsageError(f"--tls-cert/--tls-key: {exc}") from None
    if mac is None and signer is None:
        raise UsageError("give --ref and --secret, or --cert and --key")
    if kind == "kur" and signer is None:
        raise UsageError("kur is signed with the certificate to update: give --cert and --key")
    if kind == "rr" and old is None:
        raise UsageError("rr needs --oldcert: the certificate to revoke")
    csr = load_csr(args.csr) if args.csr else None
    if kind in ("ir", "cr", "kur") and args.newkey is None:
        raise UsageError(f"{kind} needs --newkey: the key to certify (with --csr, the CSR's"
                         " key, for proof of possession)")
    if kind == "p10cr" and csr is None and args.newkey is None:
        raise UsageError("p10cr needs --csr, or --newkey and --subject to build one")
    reason = args.revreason if args.revreason is not None and args.revreason >= 0 else None
    try:
        subject = parse_dn(args.subject) if args.subject else x509.Name([])
        recipient = parse_dn(args.recipient) if args.recipient else None
    except NameSyntaxError as exc:
        raise UsageError(str(exc)) from None
    new_key = load_new_key(args.newkey, args.newkeypass) if args.newkey else None
    try:
        return EnrollmentRequest(
            kind=kind,
            server_url=args.server,
            new_key=new_key,
            digest=args.digest,
            weak_algorithms=args.weak_algorithms,
            subject=subject,
            san=parse_sans(args.sans),
            recipient=recipient,
            mac=mac,
            signer=signer,
            old_certificate=old,
            server_cert=(load_checked(args.srvcert, "--srvcert", "server certificate")[0]
                         if args.srvcert else None),
            trusted=load_checked(args.trusted, "--trusted", "trust anchor") if args.trusted else (),
            untrusted=(load_checked(args.untrusted, "--untrusted", "untrusted certificate")
                       if args.untrusted else ()),
            ignore_keyusage=args.ignore_keyusage,
            implicit_confirm=args.implicit_confirm,
            cert_profile=args.profile,
            csr=csr,
            revocation_reason=reason,
            general=_general_entries(args) if kind == "genm" else (),
            tls_trusted=(load_checked(args.tls_trusted, "--tls-trusted", "TLS trust anchor")
                         if args.tls_trusted else None),
            tls_client=tls_client,
            tls_host=args.tls_host,
            source_address=args.source_address,
            connect_timeout=args.connect_timeout,
            message_timeout=args.msg_timeout,
            total_timeout=args.total_timeout or None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _encode(certs, form: str) -> bytes:
    if form == "der":
        if len(certs) > 1:
            raise UsageError("DER holds one certificate; use --certform pem for several")
        return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write(path: str | None, certs, form: str) -> None:
    if path and certs:
        atomic_write(path, _encode(certs, form), mode=0o644)


def _save_general(args: argparse.Namespace, result: GeneralResponse, request: EnrollmentRequest) -> str:
    """Write what the genp brought to the --*out files; a line for the operator."""
    from . import genm

    value = genm.response_value(args.infotype, result.entries)
    if args.infotype == "caCerts":
        certs = m.read_certificates(value)
        _write(args.cacertsout, certs, args.certform)
        return f"caCerts: {len(certs)} certificate(s)"
    if args.infotype == "rootCaCert":
        update = m.read_root_ca_key_update(value)
        if update is None:
            return "rootCaCert: no root CA key update"
        old_root = x509.load_der_x509_certificate(request.general[0].value)  # --oldwithold
        new_root = genm.verify_root_update(update, old_root, datetime.now(timezone.utc))
        _write(args.newwithnew, [new_root], args.certform)
        _write(args.newwithold, [update.new_with_old], args.certform)
        _write(args.oldwithnew, [update.old_with_new] if update.old_with_new else [], args.certform)
        return f"rootCaCert: new root {new_root.subject.rfc4514_string()}, checked against the old one"
    if args.infotype == "certReqTemplate":
        template = m.read_cert_req_template(value)
        if template is None:
            return "certReqTemplate: the CA has no template"
        if args.template:
            atomic_write(args.template, template.to_der(), mode=0o644)
        return "certReqTemplate: received"
    crls = m.read_crls(value)
    if args.crlout and crls:
        crl = crls[0]
        encoding = serialization.Encoding.DER if args.certform == "der" else serialization.Encoding.PEM
        atomic_write(args.crlout, crl.public_bytes(encoding), mode=0o644)
    return f"crlStatusList: {len(crls)} newer CRL(s)" if crls else "crlStatusList: no newer CRL"


def validity_warning(cert: x509.Certificate, now: datetime) -> str | None:
    """What ``openssl cmp`` warns of a --cert outside its validity (RFC 5280 4.1.2.5,
    notAfter inclusive), which it sends all the same; None while it is valid."""
    if now > cert.not_valid_after_utc:
        when = f"expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    elif now < cert.not_valid_before_utc:
        when = f"is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
    else:
        return None
    subject = cert.subject.rfc4514_string() or "empty subject"
    return f"({subject}, serial {cert.serial_number:X}) {when}"


def run(args: argparse.Namespace) -> int:
    try:
        request = build_request(args)
    except UsageError as exc:
        print(f"cmp-agent cmp: {exc}", file=sys.stderr)
        return 2
    # Like openssl cmp, a signer certificate outside its validity is sent with a warning,
    # not refused: this command is also how one checks that a CA refuses it. (The agent's
    # sessions refuse such a request before sending: agent.pki.preconditions.signer_problem.)
    warning = (validity_warning(request.signer.certificate, datetime.now(timezone.utc))
               if request.signer else None)
    if warning:
        print(f"cmp-agent cmp: warning: --cert {args.cert or args.oldcert} {warning}; a"
              " conforming CA refuses a request signed with it", file=sys.stderr)
    def polling(progress: Polling) -> None:  # a line per poll, with what the CA says
        print(f"cmp-agent cmp {args.cmp_command}: {progress}", file=sys.stderr, flush=True)

    result = enroll(request, on_poll=polling)
    if not result.ok:
        cause = ""
        if "badMessageCheck" in result.failure_info:  # RFC 4210 5.2.3: our protection failed
            cause = ("the CA could not verify the request: the MAC secret (--secret) or reference"
                     " (--ref) is wrong" if request.mac else
                     "the CA could not verify the request's signature: it does not accept --cert")
            cause += "\n  the CA's answer: "
        print(f"cmp-agent cmp {args.cmp_command} failed: {cause}{result}", file=sys.stderr)
        return 1
    try:
        if isinstance(result, Revoked):
            print(f"{result.status}: revoked serial {request.old_cert.serial_number:X}"
                  f" of {request.old_cert.issuer.rfc4514_string()}")
            return 0
        if isinstance(result, GeneralResponse):
            try:
                print(_save_general(args, result, request))
            except (m.MessageError, ProtectionError) as exc:
                print(f"cmp-agent cmp genm failed: {exc}", file=sys.stderr)
                return 1
            return 0
        assert isinstance(result, Enrolled)
        _write(args.certout, [result.certificate], args.certform)
        _write(args.cacertsout, result.ca_pubs, args.certform)
        _write(args.extracertsout, result.extra_certs, args.certform)
    except BrokenPipeError:
        raise  # stdout's reader went away: agent.cli.main ends quietly
    except (UsageError, OSError) as exc:
        print(f"cmp-agent cmp: done, but cannot write output: {exc}", file=sys.stderr)
        return 2
    cert = result.certificate
    if not result.chain_checked:
        print("cmp-agent cmp: warning: the new certificate's chain was not checked: no trust"
              " anchor (give --trusted; --srvcert pins only the server's signer)", file=sys.stderr)
    # the forms of the agent's model (certificate-file serial, yang:date-and-time): openssl cmp
    # prints no such line, there is nothing of its to mimic
    print(f"{result.status}: subject {cert.subject.rfc4514_string()}, serial {cert.serial_number:X}, "
          f"issuer {cert.issuer.rfc4514_string()}, valid until {yang_datetime(cert.not_valid_after_utc)}")
    return 0
