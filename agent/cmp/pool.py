"""Untrusted certificates indexed the ways signature verification looks for them
(:mod:`agent.cmp.verify`); light to import: the certificate store keeps one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from cryptography import x509

#: what cryptography raises when a certificate's extensions, parsed only when first
#: read, do not decode: a duplicate extension (RFC 5280 4.2), a value that is not DER
#: (ValueError, see :func:`not_der`), a GeneralName it does not support
EXTENSION_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def not_der(cert: x509.Certificate, role: str) -> str | None:
    """Why *cert* is refused when its extensions are not DER (RFC 5280 4.1, X.690 11), or None.

    cryptography parses extensions only when first read and then accepts DER only: e.g.
    a basicConstraints with ``cA FALSE`` written out (a DEFAULT value, which DER leaves
    out, X.690 11.5), as Insta Certifier's certificate in tests/data/vectors/cmp has it.
    Its path validation refuses such a CA certificate or anchor without naming it ("ASN.1
    parsing error"), and with our extension policies does not read an end entity's
    extensions at all; OpenSSL accepts it. It cannot be re-encoded: the signature covers
    its bytes.
    """
    try:
        cert.extensions
    except ValueError as exc:
        name = cert.subject.rfc4514_string() or "<empty subject>"
        return (f"{role} {name} (serial {cert.serial_number:X}) is refused: its extensions are not"
                f" DER-encoded ({exc}); the CA must re-issue it; cmp-agent's path validation"
                " (cryptography) refuses non-DER certificates")
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        pass
    return None


def may_issue(cert: x509.Certificate) -> bool:
    """Whether *cert* may be an intermediate of a path (RFC 5280 6.1.4 (k)): it says it is
    a CA's (basicConstraints cA), or its extensions are not DER, so that it may be one:
    offered all the same, path validation then refuses it by name
    (:func:`agent.cmp.verify.validate_path`) rather than as missing."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except ValueError:
        return True
    except (x509.ExtensionNotFound, *EXTENSION_ERRORS):
        return False


@dataclass(frozen=True)
class CertificatePool:
    """Untrusted certificates, found the two ways verification looks for them: by
    subject (the signer a message's sender names, RFC 4210 5.1.1) and as intermediates
    (CA certificates only, :func:`may_issue`). Neither look-up reads every
    certificate, so a device with thousands of its own certificates pays nothing for
    them per message; :meth:`of` indexes a sequence, the certificate store keeps its
    index up to date as files change.
    """

    #: DER of a subject name -> the certificates with that subject
    by_subject: Mapping[bytes, tuple[x509.Certificate, ...]] = field(default_factory=dict)
    #: the CA certificates among them (and any whose extensions are not DER, :func:`may_issue`)
    authorities: tuple[x509.Certificate, ...] = ()
    #: left out of every answer (the trust anchors of a session: not untrusted)
    excluded: frozenset[x509.Certificate] = frozenset()

    @classmethod
    def of(cls, certificates: Iterable[x509.Certificate]) -> CertificatePool:
        by_subject: dict[bytes, tuple[x509.Certificate, ...]] = {}
        for cert in unique(list(certificates)):
            key = cert.subject.public_bytes()
            by_subject[key] = (*by_subject.get(key, ()), cert)
        return cls(by_subject, tuple(c for certs in by_subject.values() for c in certs
                                     if may_issue(c)))

    def named(self, subject: x509.Name | None) -> list[x509.Certificate]:
        """The certificates whose subject is *subject*."""
        if subject is None:
            return []
        return [c for c in self.by_subject.get(subject.public_bytes(), ()) if c not in self.excluded]

    def intermediates(self) -> list[x509.Certificate]:
        return [c for c in self.authorities if c not in self.excluded]

    def without(self, certificates: Iterable[x509.Certificate]) -> CertificatePool:
        return replace(self, excluded=self.excluded | frozenset(certificates))

    def __iter__(self) -> Iterator[x509.Certificate]:
        """Every certificate of the pool (only a failed verification reads them all)."""
        return (c for certs in self.by_subject.values() for c in certs if c not in self.excluded)


def unique(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[x509.Certificate] = set()
    out = []
    for cert in certs:
        if cert not in seen:
            seen.add(cert)
            out.append(cert)
    return out
