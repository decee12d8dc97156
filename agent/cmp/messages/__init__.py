"""Building and decoding PKIMessages (RFC 4210 5.1, 5.3 as updated by RFC 9480; CRMF RFC 4211).

Both sides of a CMP exchange use this package: the client builds requests (ir, cr, kur,
p10cr, rr, genm, certConf, pollReq) and reads responses (ip, cp, kup, rp, genp, pkiConf,
pollRep, error); a test
CA (issue 4) can build responses with :func:`cert_rep_body`, :func:`pki_conf_body`,
:func:`poll_rep_body` and :func:`error_body` and read requests with
:func:`decode_message` and :func:`cert_requests`.

Every message is built from a :class:`HeaderFields` and a PKIBody by
:func:`encode_message`, which applies a :class:`Protector`. Building writes DER
directly (the tagging of the ASN.1 modules, EXPLICIT for CMP and IMPLICIT for CRMF, is
spelled out at each field); it is several times faster than building pyasn1 objects,
and the tests check every builder against pyasn1's decoder and against OpenSSL (its
mock server reads our requests, its client our ip and error bodies). What a client
reads (the outer structure, the header, PKIStatusInfo, certificate responses, error,
pollRep, rp, PBMParameter) is read from the DER directly (:mod:`agent.cmp.der`), so
that certificates are loaded from their own bytes and a client imports neither pyasn1
nor its ASN.1 modules; what a CA reads (requests, certConf, genm values) is decoded with
the pyasn1-alt-modules specs (rfc9480, rfc4211, rfc5280), imported on first use. The
tests decode every vector both ways and compare. A :class:`DecodedMessage` keeps the
bytes as received, so that protection is verified over them
(:func:`agent.cmp.der.protected_part`).

One module per part of the message: :mod:`.common` (constants, DER and name helpers),
:mod:`.status` (PKIStatusInfo), :mod:`.protection` (protectionAlg, PBMParameter,
protectors), :mod:`.header` (PKIHeader, envelope, decoding), :mod:`.requests`
(ir/cr/kur/p10cr), :mod:`.responses` (ip/cp/kup), :mod:`.confirmation` (certConf/pkiConf),
:mod:`.polling` (pollReq/pollRep), :mod:`.revocation` (rr/rp), :mod:`.general` (genm/genp
and their info types) and :mod:`.errors` (error).
"""

from __future__ import annotations

import importlib

#: the names this package offers, by the module that defines them; each module is
#: imported on first use of one of its names (PEP 562), so that a reader of one part
#: (the agent's certificate store needs the header and protection parts) does not load
#: the builders and decoders of every other message
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("FAILURE_BIT_NAMES", "INFO_TYPES", "MessageError", "OID_CERT_PROFILE",
                     "OID_IMPLICIT_CONFIRM", "OID_OLD_CERT_ID", "OID_SUBJECT_ALT_NAME",
                     "PKI_STATUS_NAMES", "RESPONSE_TYPE", "x509_name"), "common"),
    **dict.fromkeys(("CertStatusEntry", "cert_conf_body", "cert_conf_entries", "cert_hash",
                     "pki_conf_body"), "confirmation"),
    **dict.fromkeys(("ErrorContent", "error_body", "error_content"), "errors"),
    **dict.fromkeys(("CertReqTemplate", "CrlStatus", "InfoTypeAndValue",
                     "RootCaKeyUpdate", "ca_certs_value", "cert_template",
                     "crl_status_for", "crl_status_list_value", "crls_value",
                     "general_entries", "genm_body", "genp_body", "read_cert_req_template",
                     "read_certificates", "read_crl_statuses", "read_crls",
                     "read_root_ca_key_update", "root_ca_cert_value",
                     "root_ca_key_update_value"), "general"),
    **dict.fromkeys(("BODY_TYPES", "DecodedMessage", "HeaderFields", "decode_message",
                     "encode_header", "encode_message"), "header"),
    **dict.fromkeys(("PollResponse", "poll_rep_body", "poll_req_body", "poll_req_ids",
                     "poll_responses"), "polling"),
    **dict.fromkeys(("MacProtector", "ProtectionAlgorithm", "Protector", "PssParameters",
                     "SignatureProtector", "decode_mac_parameters",
                     "decode_pbm_parameters", "decode_pbmac1_parameters",
                     "decode_signature_algorithm", "encode_algorithm",
                     "encode_mac_algorithm", "encode_pbm_parameters",
                     "encode_pbmac1_parameters", "encode_signature_algorithm",
                     "rsa_pss_key_parameters"), "protection"),
    **dict.fromkeys(("CertRequestSpec", "P10CR_CERT_REQ_ID", "ReceivedCertRequest",
                     "build_csr", "cert_request_body", "cert_requests",
                     "encode_cert_request", "p10_request", "p10cr_body"), "requests"),
    **dict.fromkeys(("CertRepContent", "CertResponse", "cert_rep_body", "cert_rep_content"),
                    "responses"),
    **dict.fromkeys(("CRL_REASONS", "RevocationDetails", "RevocationResponse",
                     "revocation_requests", "revocation_response", "rp_body", "rr_body"),
                    "revocation"),
    **dict.fromkeys(("StatusInfo", "encode_status_info", "status_info"), "status"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain attribute lookup
    return value
