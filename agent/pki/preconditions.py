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

from agent.pki.config import RequestType, SessionConfig


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
