"""What a client asks with general messages and what it checks in the answers
(Lightweight CMP RFC 9483 4.3), for the CLI and the PKI service alike.

- :func:`request_entries`: the genm entries of one info type (RFC 9483 4.3.1-4.3.4).
- :func:`verify_root_update`: a root CA key update is accepted only when the new root
  is chained to the root we trust now (RFC 9483 4.3.2, RFC 4210 4.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from . import messages as m
from .pool import not_der
from .protection import ProtectionError


def request_entries(
    info_type: str,
    *,
    old_root: x509.Certificate | None = None,
    crl_statuses: Sequence[m.CrlStatus] = (),
) -> tuple[m.InfoTypeAndValue, ...]:
    """The genm entry asking for *info_type* (a name of :data:`messages.INFO_TYPES`).

    rootCaCert carries the root trusted now (*old_root*); crlStatusList needs at least
    one CRLStatus (RFC 9483 4.3.4).
    """
    if info_type not in m.INFO_TYPES:
        raise ValueError(f"info type must be one of {', '.join(m.INFO_TYPES)}")
    oid = m.INFO_TYPES[info_type][0]
    if info_type == "rootCaCert":
        return (m.InfoTypeAndValue(oid, m.root_ca_cert_value(old_root)),)
    if info_type == "crlStatusList":
        return (m.InfoTypeAndValue(oid, m.crl_status_list_value(crl_statuses)),)
    return (m.InfoTypeAndValue(oid),)


def response_value(info_type: str, entries: Sequence[m.InfoTypeAndValue]) -> bytes | None:
    """The value of the genp entry that answers *info_type*: None when the entry has no
    value (the CA has nothing to send). A genp without that entry does not answer the
    genm (RFC 9483 4.3.1-4.3.4: its infoType MUST be the answering one): MessageError,
    not "nothing to send"."""
    wanted = m.INFO_TYPES[info_type][1]
    for entry in entries:
        if entry.oid == wanted:
            return entry.value
    sent = ", ".join(e.oid for e in entries) or "none"
    raise m.MessageError(f"the genp does not answer {info_type}: no entry of infoType {wanted}"
                         f" (its entries: {sent})")


def _public(cert: x509.Certificate, what: str) -> bytes:
    """*cert*'s SubjectPublicKeyInfo, DER; ProtectionError naming *what* when cryptography
    cannot load the key (a key type it does not know: the CA sent it, a refusal, not a crash)."""
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise ProtectionError(f"{what}: its public key cannot be read"
                              f" ({type(exc).__name__}: {exc})") from None
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise ProtectionError(f"{what} does not verify: {type(exc).__name__} {exc}".rstrip()) from None


def _valid(cert: x509.Certificate, now: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ProtectionError(f"{what} is not valid at {now:%Y-%m-%dT%H:%M:%SZ}")


def verify_root_update(update: m.RootCaKeyUpdate, old_root: x509.Certificate,
                       now: datetime) -> x509.Certificate:
    """The new root (newWithNew) once it is chained to *old_root*, and DER
    (:func:`agent.cmp.pool.not_der`); ProtectionError otherwise.

    RFC 9483 4.3.2: newWithNew is self-signed; newWithOld, the new key certified by the
    old one, verifies with *old_root*'s key and certifies newWithNew's key; oldWithNew,
    when sent, is *old_root*'s key certified by the new one.
    """
    new = update.new_with_new
    refusal = not_der(new, "newWithNew")  # an anchor that no path validation could use
    if refusal is not None:
        raise ProtectionError(refusal)
    _signed_by(new, new, "newWithNew (self-signed)")
    _valid(new, now, "newWithNew")
    link = update.new_with_old
    if link is None:
        raise ProtectionError("the CA sent no newWithOld: the new root cannot be chained to"
                              " the current one")
    _signed_by(link, old_root, "newWithOld (signed with the current root's key)")
    _valid(link, now, "newWithOld")
    if _public(link, "newWithOld") != _public(new, "newWithNew") or link.subject != new.subject:
        raise ProtectionError("newWithOld does not certify newWithNew's key and name")
    if update.old_with_new is not None:
        _signed_by(update.old_with_new, new, "oldWithNew (signed with the new root's key)")
        if _public(update.old_with_new, "oldWithNew") != _public(old_root, "the current root"):
            raise ProtectionError("oldWithNew does not certify the current root's key")
    return new
