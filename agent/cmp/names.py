"""Distinguished names and subject alternative names for CMP headers and templates.

A CA name is written as OpenSSL does, ``/C=CN/O=Example/CN=Example CA``: one RDN per
``/``, several attributes of one RDN joined by ``+``, ``\\`` escaping either. The field
order is kept exactly, because a CMP server compares the recipient with the DN of its
certificate (RFC 4210 5.1.1: recipient; the vendor guide: "the field sequence in the CA
name must be the same as that in the CA certificate").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

#: short names accepted in a DN string, as OpenSSL prints them
ATTRIBUTE_OIDS: dict[str, x509.ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "street": NameOID.STREET_ADDRESS,
    "title": NameOID.TITLE,
    "GN": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
}
_BY_LOWER = {key.lower(): oid for key, oid in ATTRIBUTE_OIDS.items()}
_BY_LOWER["email"] = NameOID.EMAIL_ADDRESS


class NameSyntaxError(ValueError):
    """A DN string that cannot be parsed; the message says where."""


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise NameSyntaxError("DN ends with a lone backslash")
    parts.append("".join(current))
    return parts




def parse_dn(text: str) -> x509.Name:
    """Parse ``/C=../O=../CN=..`` into a :class:`x509.Name`, keeping the field order.

    An empty string or ``/`` is the NULL-DN (an empty RDN sequence).
    """
    text = text.strip()
    if text in ("", "/"):
        return x509.Name([])
    if not text.startswith("/"):
        raise NameSyntaxError(f"DN {text!r} must start with '/', e.g. /C=DE/O=Example/CN=CA")
    rdns = []
    # split RDNs first on unescaped '/', keeping escapes for '+' splitting
    raw_rdns, current, escaped = [], [], False
    for char in text[1:]:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "/":
            raw_rdns.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise NameSyntaxError("DN ends with a lone backslash")
    raw_rdns.append("".join(current))
    for raw_rdn in raw_rdns:
        attributes = []
        for ava in _split_unescaped(raw_rdn, "+"):
            key, sep, value = ava.partition("=")
            if not sep or not key:
                raise NameSyntaxError(f"{ava!r} in DN {text!r} is not TYPE=value")
            oid = _BY_LOWER.get(key.strip().lower())
            if oid is None:
                raise NameSyntaxError(
                    f"unknown attribute {key!r} in DN {text!r}; known: {', '.join(ATTRIBUTE_OIDS)}"
                )
            if oid == NameOID.COUNTRY_NAME and len(value) != 2:
                raise NameSyntaxError(f"country {value!r} in DN {text!r} must be two letters")
            if not value:
                raise NameSyntaxError(f"attribute {key!r} in DN {text!r} has an empty value")
            attributes.append(x509.NameAttribute(oid, value))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


_SHORT_BY_OID = {oid: key for key, oid in ATTRIBUTE_OIDS.items()}


def format_dn(name: x509.Name) -> str:
    """The OpenSSL-style one-line form of *name*, inverse of :func:`parse_dn`."""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+")

    parts = []
    for rdn in name.rdns:
        parts.append(
            "+".join(
                f"{_SHORT_BY_OID.get(a.oid, a.oid.dotted_string)}={escape(str(a.value))}"
                for a in rdn
            )
        )
    return "/" + "/".join(parts) if parts else "/"


@dataclass(frozen=True)
class Subject:
    """The subject fields of a PKI entity (vendor guide: common-name, country, state,
    locality, organization, organization-unit, email); absent fields are ``None``."""

    common_name: str | None = None
    country: str | None = None
    state: str | None = None
    locality: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None
    email: str | None = None

    def to_name(self) -> x509.Name:
        """The subject DN, ordered C, ST, L, O, OU, CN, emailAddress."""
        fields = [
            (NameOID.COUNTRY_NAME, self.country),
            (NameOID.STATE_OR_PROVINCE_NAME, self.state),
            (NameOID.LOCALITY_NAME, self.locality),
            (NameOID.ORGANIZATION_NAME, self.organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.organizational_unit),
            (NameOID.COMMON_NAME, self.common_name),
            (NameOID.EMAIL_ADDRESS, self.email),
        ]
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in fields if value])


@dataclass(frozen=True)
class SubjectAltNames:
    """Subject alternative names for the template (RFC 5280 4.2.1.6)."""

    dns: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()
    email: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dns or self.ip or self.email)

    def to_extension(self) -> x509.SubjectAlternativeName:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in self.ip]
        names += [x509.RFC822Name(e) for e in self.email]
        return x509.SubjectAlternativeName(names)
