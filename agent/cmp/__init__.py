"""CMPv2 client engine (RFC 4210 as updated by RFC 9480, HTTP transfer per RFC 6712).

Layers, each in its own module:

- :mod:`agent.cmp.der`: slicing raw DER so protection is checked over the bytes as received.
- :mod:`agent.cmp.names`: distinguished names ("/C=../O=../CN=..", field order kept), SANs.
- :mod:`agent.cmp.protection`: PKIProtection (RFC 4210 5.1.3): password-based MAC and signatures.
- :mod:`agent.cmp.messages`: building and decoding PKIMessages (RFC 4210/4211/9480), one module
  per part of the message (header, protection, requests, responses, confirmation, ...).
- :mod:`agent.cmp.pool`: untrusted certificates indexed by subject, their CA certificates.
- :mod:`agent.cmp.verify`: trust in responses (signer, path to an anchor, issued certificate).
- :mod:`agent.cmp.transaction`: the sans-IO enrollment state machine.
- :mod:`agent.cmp.transport`: HTTP POST of ``application/pkixcmp`` (RFC 6712).
- :mod:`agent.cmp.client`: configuration dataclasses and the synchronous driver :func:`enroll`.
- :mod:`agent.cmp.cli`: ``cmp-agent cmp ir|cr|kur|p10cr|rr|genm``.
"""

from __future__ import annotations

import importlib

#: the names this package offers, by the module that defines them; imported on first
#: use (PEP 562), so that importing one layer (e.g. :mod:`.der`) does not load them all
_EXPORTS = {
    **dict.fromkeys(("EnrollmentRequest", "MacCredentials", "SignerCredentials", "enroll",
                     "enroll_async"), "client"),
    **dict.fromkeys(("Subject", "SubjectAltNames", "format_dn", "parse_dn"), "names"),
    **dict.fromkeys(("Enrolled", "EnrollmentResult", "Failed", "GeneralResponse",
                     "MessageCounts", "Revoked", "TransactionResult"), "transaction"),
    "FailureKind": "failure",
    **dict.fromkeys(("HttpTransport", "TransportError"), "transport"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
