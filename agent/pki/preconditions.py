"""Seed step 11/12: "the system first checks the CMP session configuration to
determine whether the certificate application condition is met. If the
condition is not met, an error message is displayed."

Each request type needs certain items; :func:`problems` names every one that
is missing or inconsistent, so that the operator fixes them all in one go.
Rules that hold for every committed configuration (types, leafrefs, the
refusal of hmac-sha1 unless weak algorithms are enabled) are the YANG
module's and are not repeated here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from agent.pki.config import RequestType, SessionConfig
from agent.pki.statistics import yang_datetime
from agent.pki.stores import CertificateInfo


def problems(
    session: SessionConfig,
    request: RequestType,
    certificate_exists: Callable[[str], bool],
) -> list[str]:
    """Everything that stops *request* on *session*; empty when it may start."""
    found: list[str] = []
    if not session.url:
        found.append("no server-url")
    if not session.key_pair_name:
        found.append("no local-key-pair name")
    if request in ("ir", "cr", "p10cr") and session.entity is None:
        if session.entity_name:
            found.append(f"entity {session.entity_name!r} is not configured under /pki/entity")
        else:
            found.append("no entity (the subject of the request)")
    by_mac = request in ("ir", "p10cr") and session.origin_authentication == "message-authentication-code"
    if by_mac:
        if not session.mac_reference:
            found.append("message-authentication-code has no reference-value")
        if not session.mac_secret_ciphertext:
            found.append("message-authentication-code has no secret-value")
    elif not session.authentication_cert:
        what = {"ir": "an IR by signature", "cr": "a CR", "kur": "a KUR",
                "p10cr": "a P10CR by signature"}[request]
        found.append(f"no authentication-cert: {what} is signed with it")
    if session.tls_client_key_pair and not session.tls_client_cert:
        found.append("tls client-key-pair without client-cert")
    for leaf, name in (
        ("authentication-cert", None if by_mac else session.authentication_cert),
        ("verification-cert", session.verification_cert),
        ("tls client-cert", session.tls_client_cert),
        *(("tls trusted-cert", name) for name in session.tls_trusted),
    ):
        if name and not certificate_exists(name):
            found.append(f"{leaf} {name!r} is not in the certificate store")
    return found


#: what each signed request asks of the certificate it is signed with (RFC 9483 3.5: the
#: receiver validates the signer's certificate, RFC 5280 6.1, its validity included)
_SIGNER_RULES = {
    "kur": "a key update request (KUR) must be signed with a valid certificate"
           " (RFC 4210 5.3.5, RFC 9483 4.1.3)",
    "cr": "a certificate request (CR) must be signed with a valid certificate"
          " (RFC 9483 3.5, 4.1.2)",
    "ir": "an initial request (IR) by signature must be signed with a valid certificate"
          " (RFC 9483 3.5, 4.1.1)",
    "p10cr": "a PKCS#10 request (P10CR) by signature must be signed with a valid certificate"
             " (RFC 9483 3.5, 4.1.4)",
    "rr": "a revocation request (RR) must be signed with a valid certificate"
          " (RFC 9483 3.5, 4.2)",
    "genm": "a general message (GENM) by signature must be signed with a valid certificate"
            " (RFC 9483 3.5, 4.3)",
    "tls": "the CA's TLS server accepts a valid client certificate only"
           " (RFC 5280 4.1.2.5, 6.1.3)",
}


def _after_expiry(session_name: str, kind: str, leaf: str) -> str:
    """What the operator does when the certificate *leaf* names has expired."""
    if kind in ("kur", "cr"):  # renewing needs the certificate renewed: enrol anew
        return ("a new initial request is needed: cmp-initial-request (CLI: pki cmp"
                f" initial-request session {session_name}), authenticated by"
                " message-authentication-code or another valid certificate")
    if leaf == "certificate-file":  # an rr signed with the certificate it revokes
        return ("an expired certificate needs no revocation request: a CRL need not list it"
                " (RFC 5280 3.3); to have it revoked all the same, ask the CA's operator"
                " (RFC 9483 5.3.2)")
    if kind == "tls":
        return "import a valid client certificate and name it in tls client-cert"
    return ("authenticate by message-authentication-code, or name another valid certificate"
            " in authentication-cert")


def signer_problem(session_name: str, cert: CertificateInfo, now: datetime, kind: str = "kur",
                   leaf: str = "authentication-cert") -> str | None:
    """Why *cert*, which session *session_name* names in *leaf*, cannot sign (or, for
    *kind* ``tls``, present as TLS client certificate) a request of *kind* at *now*;
    None when it can.

    A certificate authenticates only within its validity period, notBefore through
    notAfter inclusive (RFC 5280 4.1.2.5, 6.1.3 (a)(2)): at notAfter exactly it still
    may, a moment later it may not, and a conforming CA refuses what is signed with it
    (RFC 9483 3.5). A KUR is protected with the certificate it updates (RFC 4210 5.3.5 and
    appendix D.6, RFC 9483 4.1.3), a CR with the current one (4.1.2): an expired
    certificate is not renewed at all, the device enrols again with an initial request
    authenticated otherwise. An rr is signed with the certificate it revokes (RFC 9483
    4.2): an expired one cannot ask for its own revocation.
    """
    what = f"{leaf} {cert.name} ({cert.subject or 'empty subject'}, serial {cert.serial})"
    rule = _SIGNER_RULES[kind]
    if now > cert.not_after:
        return (f"{what} expired at {yang_datetime(cert.not_after)}: {rule};"
                f" {_after_expiry(session_name, kind, leaf)}")
    if now < cert.not_before:
        return (f"{what} is not valid before {yang_datetime(cert.not_before)}: {rule};"
                " check the device's clock, or wait until then")
    return None
