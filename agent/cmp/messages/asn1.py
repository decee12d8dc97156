"""The few ASN.1 types of RFC 4210 (as updated by RFC 9480) that a client decodes
responses with: PKIHeader, PKIStatusInfo, ErrorMsgContent and PollRepContent,
over RFC 5280's types alone.

``pyasn1_alt_modules.rfc9480`` defines the whole of CMP and pulls in CRMF, CMS,
PKCS #10 and #12 and more: importing it costs about a second, which every
``cmp-agent cmp`` run and every agent start paid before sending anything. These
definitions are the module's own, copied with their tags, with named values
left out (the decoders read numbers and bits) and ``infoValue`` kept as ANY
(the decoders never ask pyasn1 to decode open types). The full module is still
used, imported on first use, for message bodies decoded with pyasn1 (the
server side of the test CA) and for the table check in
tests/cmp/test_messages.py, which also decodes headers with both and compares.
"""

from __future__ import annotations

from pyasn1.type import char, constraint, namedtype, tag, univ, useful
from pyasn1_alt_modules import rfc5280

MAX = float("inf")


def _explicit(spec, number: int):
    return spec.subtype(explicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, number))


class PKIFreeText(univ.SequenceOf):
    """RFC 4210 5.1.1: SEQUENCE SIZE (1..MAX) OF UTF8String."""

    componentType = char.UTF8String()
    subtypeSpec = constraint.ValueSizeConstraint(1, MAX)


class PKIStatusInfo(univ.Sequence):
    """RFC 4210 5.2.3."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("status", univ.Integer()),
        namedtype.OptionalNamedType("statusString", PKIFreeText()),
        namedtype.OptionalNamedType("failInfo", univ.BitString()),
    )


class InfoTypeAndValue(univ.Sequence):
    """RFC 4210 5.3.19 (the value undecoded)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("infoType", univ.ObjectIdentifier()),
        namedtype.OptionalNamedType("infoValue", univ.Any()),
    )


class PKIHeader(univ.Sequence):
    """RFC 4210 5.1.1 (pvno cmp2021(3) added by RFC 9480)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("pvno", univ.Integer()),
        namedtype.NamedType("sender", rfc5280.GeneralName()),
        namedtype.NamedType("recipient", rfc5280.GeneralName()),
        namedtype.OptionalNamedType("messageTime", _explicit(useful.GeneralizedTime(), 0)),
        namedtype.OptionalNamedType("protectionAlg", _explicit(rfc5280.AlgorithmIdentifier(), 1)),
        namedtype.OptionalNamedType("senderKID", _explicit(rfc5280.KeyIdentifier(), 2)),
        namedtype.OptionalNamedType("recipKID", _explicit(rfc5280.KeyIdentifier(), 3)),
        namedtype.OptionalNamedType("transactionID", _explicit(univ.OctetString(), 4)),
        namedtype.OptionalNamedType("senderNonce", _explicit(univ.OctetString(), 5)),
        namedtype.OptionalNamedType("recipNonce", _explicit(univ.OctetString(), 6)),
        namedtype.OptionalNamedType("freeText", _explicit(PKIFreeText(), 7)),
        namedtype.OptionalNamedType("generalInfo", _explicit(univ.SequenceOf(
            componentType=InfoTypeAndValue()).subtype(
                subtypeSpec=constraint.ValueSizeConstraint(1, MAX)), 8)),
    )


class ErrorMsgContent(univ.Sequence):
    """RFC 4210 5.3.21."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("pKIStatusInfo", PKIStatusInfo()),
        namedtype.OptionalNamedType("errorCode", univ.Integer()),
        namedtype.OptionalNamedType("errorDetails", PKIFreeText()),
    )


class PollRep(univ.Sequence):
    """One entry of PollRepContent (RFC 4210 5.3.22)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("certReqId", univ.Integer()),
        namedtype.NamedType("checkAfter", univ.Integer()),
        namedtype.OptionalNamedType("reason", PKIFreeText()),
    )


class PollRepContent(univ.SequenceOf):
    componentType = PollRep()


#: PKIBody alternatives by context tag number (RFC 4210 5.1.2, RFC 9480 2.2)
BODY_TYPES: dict[int, str] = dict(enumerate((
    "ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr", "krp",
    "rr", "rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf", "nested",
    "genm", "genp", "error", "certConf", "pollReq", "pollRep",
)))
