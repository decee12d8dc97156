"""General messages: genm and genp (RFC 4210 5.3.19/5.3.20) with the info types of the
Lightweight CMP Profile (RFC 9483 4.3, values defined in RFC 9480 2.3-2.5 and 2.18).

A genm carries InfoTypeAndValue entries, each an OID and an optional value; the genp
answers with entries of its own. The request and response values of each info type:

==================  ===================================  ==========================================
info type           genm value                           genp value
==================  ===================================  ==========================================
caCerts             absent                               SEQUENCE OF CMPCertificate (or absent)
rootCaCert          the current root (optional)          rootCaKeyUpdate: newWithNew, [0]
                                                         newWithOld, [1] oldWithNew (or absent)
certReqTemplate     absent                               CertReqTemplateContent (or absent)
crlStatusList       SEQUENCE OF CRLStatus                crls: SEQUENCE OF CertificateList (or
                                                         absent)
==================  ===================================  ==========================================

Values are built and read directly over the DER, certificates and CRLs from their own
bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import der
from .common import MessageError, certificate_sequence, decode_der, general_name
from .header import DecodedMessage

@dataclass(frozen=True)
class InfoTypeAndValue:
    """One InfoTypeAndValue: the OID and the DER of its value (None when absent)."""

    oid: str
    value: bytes | None = None

    def encode(self) -> bytes:
        return der.tlv(0x30, der.encode_oid(self.oid) + (self.value or b""))


def genm_body(entries: Sequence[InfoTypeAndValue]) -> bytes:
    """DER of a genm body [21] (RFC 4210 5.3.19)."""
    return der.tlv(0xB5, der.tlv(0x30, b"".join(e.encode() for e in entries)))


def genp_body(entries: Sequence[InfoTypeAndValue]) -> bytes:
    """DER of a genp body [22] (RFC 4210 5.3.20; CA side)."""
    return der.tlv(0xB6, der.tlv(0x30, b"".join(e.encode() for e in entries)))


def general_entries(message: DecodedMessage) -> list[InfoTypeAndValue]:
    """The InfoTypeAndValue entries of a genm or genp, values as received."""
    if message.body_type not in ("genm", "genp"):
        raise MessageError(f"{message.body_type} is not genm or genp")
    data = message.body_der
    try:
        content = der.read_tlv(data, der.read_tlv(data).content_start)
        result = []
        for entry in der.children(data, content):
            fields = der.children(data, entry)
            if entry.tag != 0x30 or not 1 <= len(fields) <= 2:
                raise der.DerError("InfoTypeAndValue expected")
            value = data[fields[1].start : fields[1].end] if len(fields) == 2 else None
            result.append(InfoTypeAndValue(der.decode_oid(data, fields[0]), value))
    except der.DerError as exc:
        raise MessageError(f"malformed {message.body_type}: {exc}") from None
    return result


# -- caCerts (RFC 9483 4.3.1) ----------------------------------------------------------------

def ca_certs_value(certificates: Sequence[x509.Certificate]) -> bytes | None:
    """The caCerts value of a genp; absent when there are none (RFC 9480 2.18)."""
    if not certificates:
        return None
    return der.tlv(0x30, b"".join(c.public_bytes(serialization.Encoding.DER) for c in certificates))


def read_certificates(value: bytes | None) -> tuple[x509.Certificate, ...]:
    """A SEQUENCE OF CMPCertificate value; absent means none."""
    if value is None:
        return ()
    try:
        return certificate_sequence(value, der.read_tlv(value))
    except der.DerError as exc:
        raise MessageError(f"bad certificate sequence: {exc}") from None


# -- rootCaCert / rootCaKeyUpdate (RFC 9483 4.3.2) -------------------------------------------

@dataclass(frozen=True)
class RootCaKeyUpdate:
    """RootCaKeyUpdateContent (RFC 9480 2.4): the new root, self-signed, and the link
    certificates: the new root's key certified by the old one, and the reverse."""

    new_with_new: x509.Certificate
    new_with_old: x509.Certificate | None = None
    old_with_new: x509.Certificate | None = None


def root_ca_cert_value(current_root: x509.Certificate | None) -> bytes | None:
    """The rootCaCert value of a genm: the root the client trusts now (optional)."""
    return current_root.public_bytes(serialization.Encoding.DER) if current_root else None


def root_ca_key_update_value(update: RootCaKeyUpdate) -> bytes:
    """DER RootCaKeyUpdateContent (CA side); [0] and [1] are EXPLICIT (RFC 9480 module)."""
    out = update.new_with_new.public_bytes(serialization.Encoding.DER)
    if update.new_with_old is not None:
        out += der.tlv(0xA0, update.new_with_old.public_bytes(serialization.Encoding.DER))
    if update.old_with_new is not None:
        out += der.tlv(0xA1, update.old_with_new.public_bytes(serialization.Encoding.DER))
    return der.tlv(0x30, out)


def read_root_ca_key_update(value: bytes | None) -> RootCaKeyUpdate | None:
    """The rootCaKeyUpdate of a genp; None when the CA has no update (value absent)."""
    if value is None:
        return None
    try:
        outer = der.read_tlv(value)
        fields = der.children(value, outer)
        if outer.tag != 0x30 or not fields or fields[0].tag != 0x30:
            raise der.DerError("RootCaKeyUpdateContent expected")
        found: dict[int, x509.Certificate] = {}
        for item in fields[1:]:
            if item.tag not in (0xA0, 0xA1):
                raise der.DerError(f"unexpected tag 0x{item.tag:02x}")
            inner = der.read_tlv(value, item.content_start)
            found[item.tag & 1] = x509.load_der_x509_certificate(value[inner.start : inner.end])
        new_with_new = x509.load_der_x509_certificate(value[fields[0].start : fields[0].end])
    except (der.DerError, ValueError) as exc:
        raise MessageError(f"bad rootCaKeyUpdate: {exc}") from None
    return RootCaKeyUpdate(new_with_new, found.get(0), found.get(1))


# -- certReqTemplate (RFC 9483 4.3.3) ----------------------------------------------------------

@dataclass(frozen=True)
class CertReqTemplate:
    """CertReqTemplateContent (RFC 9480 2.5): the CertTemplate the CA wants filled in,
    and keySpec controls (algorithm, RSA key length), each as DER."""

    cert_template: bytes
    key_spec: bytes | None = None

    def to_der(self) -> bytes:
        return der.tlv(0x30, self.cert_template + (self.key_spec or b""))


def read_cert_req_template(value: bytes | None) -> CertReqTemplate | None:
    """The certReqTemplate of a genp; None when the CA has no template (value absent)."""
    if value is None:
        return None
    try:
        outer = der.read_tlv(value)
        fields = der.children(value, outer)
        if outer.tag != 0x30 or not 1 <= len(fields) <= 2 or fields[0].tag != 0x30:
            raise der.DerError("CertReqTemplateContent expected")
    except der.DerError as exc:
        raise MessageError(f"bad certReqTemplate: {exc}") from None
    key_spec = value[fields[1].start : fields[1].end] if len(fields) == 2 else None
    return CertReqTemplate(value[fields[0].start : fields[0].end], key_spec)


def cert_template(subject: x509.Name | None, extensions: Sequence[x509.Extension] = ()) -> bytes:
    """DER CertTemplate (RFC 4211 5) with *subject* [5] and *extensions* [9] (CA side)."""
    out = der.tlv(0xA5, subject.public_bytes()) if subject is not None else b""
    if extensions:
        items = b""
        for ext in extensions:
            critical = b"\x01\x01\xff" if ext.critical else b""
            items += der.tlv(0x30, der.encode_oid(ext.oid.dotted_string) + critical
                             + der.tlv(0x04, ext.value.public_bytes()))
        out += der.tlv(0xA9, items)
    return der.tlv(0x30, out)


# -- crlStatusList / crls (RFC 9483 4.3.4) -------------------------------------------------------

@dataclass(frozen=True)
class CrlStatus:
    """One CRLStatus (RFC 9480 2.3): where the CRL comes from (the distribution point
    URIs of a certificate, or its issuer) and the thisUpdate of the CRL held, if any."""

    issuer: x509.Name | None = None
    distribution_point: tuple[str, ...] = ()
    this_update: datetime | None = None

    def encode(self) -> bytes:
        if self.distribution_point:
            names = b"".join(der.tlv(0x86, uri.encode()) for uri in self.distribution_point)
            source = der.tlv(0xA0, der.tlv(0xA0, names))  # dpn [0] fullName [0] GeneralNames
        elif self.issuer is not None:
            general_names = der.tlv(0x30, der.tlv(0xA4, self.issuer.public_bytes()))
            source = der.tlv(0xA1, general_names)  # issuer [1] GeneralNames
        else:
            raise ValueError("a CRLStatus names a distribution point or an issuer")
        out = source
        if self.this_update is not None:
            out += _time(self.this_update)
        return der.tlv(0x30, out)


def _time(moment: datetime) -> bytes:
    """RFC 5280 Time: UTCTime through 2049, GeneralizedTime after."""
    moment = moment.astimezone(timezone.utc)
    if moment.year < 2050:
        return der.tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return der.tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def crl_status_for(certificate: x509.Certificate,
                   crl: x509.CertificateRevocationList | None = None) -> CrlStatus:
    """The CRLStatus asking for the CRL that covers *certificate* (RFC 9483 4.3.4): its
    CRL distribution point URIs, else its issuer; thisUpdate of the CRL held."""
    uris: list[str] = []
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        for point in points.value:
            uris += [n.value for n in point.full_name or () if isinstance(n, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    this_update = crl.last_update_utc if crl is not None else None
    if uris:
        return CrlStatus(distribution_point=tuple(uris), this_update=this_update)
    return CrlStatus(issuer=certificate.issuer, this_update=this_update)


def crl_status_list_value(statuses: Sequence[CrlStatus]) -> bytes:
    """The crlStatusList value of a genm: SEQUENCE SIZE (1..MAX) OF CRLStatus."""
    if not statuses:
        raise ValueError("crlStatusList needs at least one CRLStatus")
    return der.tlv(0x30, b"".join(s.encode() for s in statuses))


def read_crl_statuses(value: bytes | None) -> list[CrlStatus]:
    """The CRLStatus entries of a crlStatusList (CA side)."""
    if value is None:
        raise MessageError("crlStatusList without a value")
    from pyasn1_alt_modules import rfc9480  # the whole of CMP: only a CA reads this
    result = []
    for status in decode_der(value, rfc9480.CRLStatusListValue()):
        source = status["source"]
        issuer, uris = None, ()
        if source.getName() == "issuer":
            issuer = next((general_name(n) for n in source["issuer"] if general_name(n)), None)
        else:
            dpn = source["dpn"]
            if dpn.getName() == "fullName":
                uris = tuple(str(n["uniformResourceIdentifier"]) for n in dpn["fullName"]
                             if n.getName() == "uniformResourceIdentifier")
        this_update = None
        if status["thisUpdate"].isValue:
            choice = status["thisUpdate"]
            this_update = choice[choice.getName()].asDateTime.astimezone(timezone.utc)
        result.append(CrlStatus(issuer, uris, this_update))
    return result


def crls_value(crls: Sequence[x509.CertificateRevocationList]) -> bytes | None:
    """The crls value of a genp; absent when no CRL is newer than the client's."""
    if not crls:
        return None
    return der.tlv(0x30, b"".join(c.public_bytes(serialization.Encoding.DER) for c in crls))


def read_crls(value: bytes | None) -> tuple[x509.CertificateRevocationList, ...]:
    """The CRLs of a genp's crls entry; absent means none newer than ours."""
    if value is None:
        return ()
    try:
        outer = der.read_tlv(value)
        if outer.tag != 0x30:
            raise der.DerError("SEQUENCE OF CertificateList expected")
        return tuple(x509.load_der_x509_crl(value[item.start : item.end])
                     for item in der.children(value, outer))
    except (der.DerError, ValueError) as exc:
        raise MessageError(f"bad crls: {exc}") from None
