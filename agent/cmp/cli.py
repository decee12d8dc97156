"""Run one CMP transaction (ir, cr, kur) from the shell, like ``openssl cmp``.

Examples::

    cmp-agent cmp ir --server http://ca.example.net:8080/pkix/ --ref 3078 \\
        --secret env:CMP_SECRET --newkey router.key --subject /CN=router1 \\
        --recipient "/C=DE/O=Example/CN=Example CA" --certout router.pem
    cmp-agent cmp kur --server http://ca/pkix/ --cert router.pem --key router.key \\
        --newkey router-new.key --srvcert ca-cmp.pem --certout router-new.pem

Secrets and key passwords are given as OpenSSL password sources: ``pass:TEXT``,
``env:VAR``, ``file:PATH`` (first line) or ``stdin``; they are never printed.
Exit status: 0 enrolled, 1 the transaction failed, 2 bad arguments or input files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.atomic import atomic_write

from . import protection
from .client import KINDS, EnrollmentRequest, MacCredentials, SignerCredentials, enroll
from .names import NameSyntaxError, SubjectAltNames, parse_dn
from .protection import PrivateKey
from .transaction import Enrolled


class UsageError(Exception):
    """Bad arguments or unreadable input; exit status 2."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("cmp_command", choices=KINDS, metavar="{ir,cr,kur}",
                        help="ir: initial request, cr: certificate request, kur: key update")
    server = parser.add_argument_group("server")
    server.add_argument("--server", required=True, metavar="URL",
                        help="http[s]://host[:port]/path of the CMP server")
    server.add_argument("--recipient", metavar="DN", help='CA name, e.g. "/C=DE/O=Example/CN=CA"')
    server.add_argument("--srvcert", metavar="FILE",
                        help="pinned certificate of the CMP server (then --trusted is not used"
                             " for responses)")
    server.add_argument("--trusted", metavar="FILE",
                        help="trust anchors for the server's signer and the new certificate")
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
    server.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS")
    server.add_argument("--msg-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="bound on each HTTP exchange, connect to last byte (default 120)")
    server.add_argument("--total-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="bound on the whole transaction, polling included "
                             "(default 0: poll as long as the CA asks, RFC 4210 5.3.22)")
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--ref", metavar="VALUE", help="MAC reference value (senderKID)")
    auth.add_argument("--secret", metavar="SOURCE", help="MAC secret: pass:, env:, file: or stdin")
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
    request.add_argument("--newkey", required=True, metavar="FILE", help="private key to certify")
    request.add_argument("--newkeypass", metavar="SOURCE", help="password of --newkey")
    request.add_argument("--subject", metavar="DN", help='subject, e.g. "/O=Example/CN=router1"')
    request.add_argument("--sans", metavar="NAMES",
                         help="subject alternative names, comma-separated: DNS names, IP "
                              "addresses, e-mail addresses (e.g. router1.example.net,192.0.2.1)")
    request.add_argument("--implicit-confirm", action="store_true",
                         help="ask the CA to waive certConf")
    output = parser.add_argument_group("output")
    output.add_argument("--certout", metavar="FILE", help="where to write the new certificate")
    output.add_argument("--cacertsout", metavar="FILE", help="where to write caPubs")
    output.add_argument("--extracertsout", metavar="FILE", help="where to write extraCerts")
    output.add_argument("--certform", choices=("pem", "der"), default="pem")


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


def build_request(args: argparse.Namespace) -> EnrollmentRequest:
    mac = signer = None
    if args.secret is not None:
        if args.ref is None:
            raise UsageError("--secret needs --ref (the reference value the CA gave you)")
        try:
            mac = MacCredentials(args.ref.encode(), read_password(args.secret, "--secret"), args.mac)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise UsageError("--cert and --key go together")
        chain = load_certificates(args.extracerts, "--extracerts") if args.extracerts else ()
        key, rsa_pss = load_key(args.key, args.keypass, "--key")
        try:
            signer = SignerCredentials(load_certificates(args.cert, "--cert")[0], key, chain,
                                       rsa_pss)
        except ValueError as exc:  # refused before anything is sent
            raise UsageError(f"--cert/--key: {exc}") from None
    tls_client = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise UsageError("--tls-cert and --tls-key go together")
        tls_chain = load_certificates(args.tls_cert, "--tls-cert")
        try:
            tls_client = SignerCredentials(
                tls_chain[0], load_key(args.tls_key, args.tls_keypass, "--tls-key")[0], tls_chain[1:]
            )
        except ValueError as exc:
            raise UsageError(f"--tls-cert/--tls-key: {exc}") from None
    if mac is None and signer is None:
        raise UsageError("give --ref and --secret, or --cert and --key")
    if args.cmp_command == "kur" and signer is None:
        raise UsageError("kur is signed with the certificate to update: give --cert and --key")
    try:
        subject = parse_dn(args.subject) if args.subject else x509.Name([])
        recipient = parse_dn(args.recipient) if args.recipient else None
    except NameSyntaxError as exc:
        raise UsageError(str(exc)) from None
    new_key, new_key_rsa_pss = load_key(args.newkey, args.newkeypass, "--newkey")
    try:
        return EnrollmentRequest(
            kind=args.cmp_command,
            server_url=args.server,
            new_key=new_key,
            new_key_rsa_pss=new_key_rsa_pss,
            digest=args.digest,
            weak_algorithms=args.weak_algorithms,
            subject=subject,
            san=parse_sans(args.sans),
            recipient=recipient,
            mac=mac,
            signer=signer,
            server_cert=load_certificates(args.srvcert, "--srvcert")[0] if args.srvcert else None,
            trusted=load_certificates(args.trusted, "--trusted") if args.trusted else (),
            untrusted=load_certificates(args.untrusted, "--untrusted") if args.untrusted else (),
            ignore_keyusage=args.ignore_keyusage,
            implicit_confirm=args.implicit_confirm,
            tls_trusted=load_certificates(args.tls_trusted, "--tls-trusted") if args.tls_trusted else None,
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


def run(args: argparse.Namespace) -> int:
    try:
        request = build_request(args)
    except UsageError as exc:
        print(f"cmp-agent cmp: {exc}", file=sys.stderr)
        return 2
    result = enroll(request)
    if not isinstance(result, Enrolled):
        print(f"cmp-agent cmp {args.cmp_command} failed: {result}", file=sys.stderr)
        return 1
    try:
        if args.certout:
            atomic_write(args.certout, _encode([result.certificate], args.certform), mode=0o644)
        if args.cacertsout and result.ca_pubs:
            atomic_write(args.cacertsout, _encode(result.ca_pubs, args.certform), mode=0o644)
        if args.extracertsout and result.extra_certs:
            atomic_write(args.extracertsout, _encode(result.extra_certs, args.certform), mode=0o644)
    except (UsageError, OSError) as exc:
        print(f"cmp-agent cmp: enrolled, but cannot write output: {exc}", file=sys.stderr)
        return 2
    cert = result.certificate
    print(f"{result.status}: subject {cert.subject.rfc4514_string()}, serial {cert.serial_number:x}, "
          f"issuer {cert.issuer.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}")
    return 0
