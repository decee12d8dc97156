"""The ASN.1 and protection layers: third-party vectors, round trips, names, certHash."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from cmp_mock_pki import issue, with_oid_replaced
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1_alt_modules import rfc9480

from agent.cmp import der, messages as m, protection
from agent.cmp.names import NameSyntaxError, Subject, SubjectAltNames, format_dn, parse_dn
from agent.cmp.protection import ProtectionError
from agent.cmp.verify import ResponseVerifier

#: third-party messages (OpenSSL's CMP test data), copied into the repository: see their README
VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "cmp"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def vector(name: str) -> m.DecodedMessage:
    return m.decode_message((VECTORS / name).read_bytes())


def counter_rng():
    state = {"n": 0}

    def rng(size: int) -> bytes:
        state["n"] += 1
        return bytes([state["n"]]) * size

    return rng


# -- third-party messages -----------------------------------------------------


def test_insta_ip_decodes_and_mac_verifies():
    msg = vector("insta_ip_pbm.der")
    assert msg.body_type == "ip"
    assert msg.sender_kid == b"3078"
    params = m.decode_pbm_parameters(msg.protection_alg.parameters)
    assert (params.owf, params.iteration_count, params.mac) == ("1.3.14.3.2.26", 1024, "1.3.6.1.5.5.8.1.2")
    ResponseVerifier(secret=b"insta", weak_algorithms=True).verify(msg, NOW)
    content = m.cert_rep_content(msg)
    assert content.responses[0].status.status_name == "accepted"
    assert content.responses[0].certificate.subject == parse_dn("/CN=test2")
    assert msg.extra_certs


def test_insta_ip_wrong_secret_and_sha1_refused_unless_weak():
    msg = vector("insta_ip_pbm.der")
    with pytest.raises(ProtectionError, match="wrong secret"):
        ResponseVerifier(secret=b"instA", weak_algorithms=True).verify(msg, NOW)
    with pytest.raises(ProtectionError, match="PBM one-way function uses SHA-1, a weak algorithm"):
        ResponseVerifier(secret=b"insta").verify(msg, NOW)


def test_unprotected_ir_reported_unprotected():
    msg = vector("ir_unprotected.der")
    assert msg.body_type == "ir" and msg.protection is None and msg.protection_alg is None
    with pytest.raises(ProtectionError, match="not protected"):
        ResponseVerifier(secret=b"x", trusted=(), server_cert=None).verify(msg, NOW)
    request = m.cert_requests(msg)[0]
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DvO_test"


def test_protection_is_over_bytes_as_received():
    """ir_protected.der carries an empty extraCerts that a re-encoding drops."""
    raw = (VECTORS / "ir_protected.der").read_bytes()
    msg = m.decode_message(raw)
    assert msg.extra_certs == ()
    reencoded = encoder.encode(decoder.decode(raw, asn1Spec=rfc9480.PKIMessage())[0])
    assert reencoded != raw and len(reencoded) < len(raw)
    # the protected part is taken from the received header and body bytes
    outer = der.read_tlv(raw)
    header = der.read_tlv(raw, outer.content_start)
    body = der.read_tlv(raw, header.end)
    assert msg.protected_part[-(body.end - header.start):] == raw[header.start:body.end]
    assert msg.protection_alg.oid == "1.2.840.113549.1.1.11"
    # the signer's certificate is not in the message: nothing to verify with
    with pytest.raises(ProtectionError, match="no certificate"):
        ResponseVerifier(trusted=(_self_signed(),)).verify(msg, NOW)


def test_ed25519_genm_decodes():
    msg = vector("genm_protected_ed25519.der")
    assert msg.body_type == "genm"
    assert msg.protection_alg.oid == "1.3.101.112"
    assert len(msg.protection) == 64
    # a wrong pinned key is refused, never believed
    with pytest.raises(ProtectionError, match="does not match the key|invalid"):
        ResponseVerifier(server_cert=_self_signed()).verify(msg, NOW)


def _self_signed(key=None) -> x509.Certificate:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = parse_dn("/CN=Somebody")
    return issue(name, key.public_key(), name, key, ca=True, not_before=datetime(2025, 1, 1, tzinfo=timezone.utc), days=3650)


# -- round trips ------------------------------------------------------------------


def _spki(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_ir_round_trip_with_mac():
    rng = counter_rng()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = parse_dn("/C=DE/ST=Bavaria/L=Munich/O=Example/OU=Net/CN=router1/emailAddress=a@b.c")
    san = SubjectAltNames(("r1.example.net",), ("192.0.2.1",), ("a@b.c",)).to_extension()
    spec = m.CertRequestSpec(_spki(key), subject, san)
    fields = m.HeaderFields(
        sender=subject, recipient=parse_dn("/O=CA/CN=Issuing CA"), transaction_id=b"T" * 16,
        sender_nonce=b"N" * 16, message_time=NOW, implicit_confirm=True,
    )
    protector = m.MacProtector(b"3078", b"secret", "hmac-sha256", 500, rng)
    raw = m.encode_message(fields, m.cert_request_body("ir", spec, key), protector)
    msg = m.decode_message(raw)
    assert (msg.body_type, msg.transaction_id, msg.sender_nonce, msg.recip_nonce) == ("ir", b"T" * 16, b"N" * 16, None)
    assert msg.sender == subject and msg.recipient == parse_dn("/O=CA/CN=Issuing CA")
    assert [a.oid for a in msg.sender] == [a.oid for a in subject]  # order kept
    assert msg.implicit_confirm and msg.message_time == NOW and msg.sender_kid == b"3078"
    ResponseVerifier(secret=b"secret").verify(msg, NOW)
    with pytest.raises(ProtectionError):
        ResponseVerifier(secret=b"other").verify(msg, NOW)
    request = m.cert_requests(msg)[0]
    assert request.subject == subject and request.public_key_info == _spki(key)
    assert b"r1.example.net" in request.extensions_der
    protection.verify_signature(key.public_key(), m.decode_signature_algorithm(request.pop_algorithm),
                                request.cert_request_der, request.pop_signature)
    assert encoder.encode(decoder.decode(raw, asn1Spec=rfc9480.PKIMessage())[0]) == raw


@pytest.mark.parametrize("key_type", ["rsa", "ec", "ed25519"])
def test_kur_round_trip_signed(key_type):
    key = {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "ec": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[key_type]()
    signer_cert = _self_signed(key)
    spec = m.CertRequestSpec(_spki(key), signer_cert.subject,
                             old_cert_id=(signer_cert.issuer, signer_cert.serial_number))
    fields = m.HeaderFields(signer_cert.subject, x509.Name([]), b"t" * 16, b"n" * 16, NOW, b"r" * 16)
    raw = m.encode_message(fields, m.cert_request_body("kur", spec, key),
                           m.SignatureProtector(signer_cert, key))
    msg = m.decode_message(raw)
    assert msg.recipient == x509.Name([]) and msg.recip_nonce == b"r" * 16
    assert msg.extra_certs == (signer_cert,)
    ResponseVerifier(server_cert=signer_cert).verify(msg, NOW)
    ResponseVerifier(trusted=(signer_cert,)).verify(msg, NOW)
    request = m.cert_requests(msg)[0]
    assert request.old_cert_id == (signer_cert.issuer, signer_cert.serial_number)


def test_ca_side_bodies_round_trip():
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key)
    fields = m.HeaderFields(parse_dn("/CN=CA"), parse_dn("/CN=EE"), b"t" * 16, b"s" * 16, NOW, b"r" * 16)
    protector = m.MacProtector(b"ref", b"pw", "hmac-sha256", 100, counter_rng())
    status = m.StatusInfo(1, ("with mods",), ())
    ip = m.decode_message(m.encode_message(fields, m.cert_rep_body(
        "ip", m.CertRepContent((m.CertResponse(0, status, cert),), (cert,))), protector))
    assert m.cert_rep_content(ip) == m.CertRepContent((m.CertResponse(0, status, cert),), (cert,))
    rep = m.decode_message(m.encode_message(fields, m.poll_rep_body([m.PollResponse(0, 7, ("busy",))]), protector))
    assert m.poll_responses(rep) == [m.PollResponse(0, 7, ("busy",))]
    err = m.ErrorContent(m.StatusInfo(2, ("no",), (1, 25)), 42, ("details",))
    got = m.error_content(m.decode_message(m.encode_message(fields, m.error_body(err), None)))
    assert got == err and got.status.failure_names == ("badMessageCheck", "systemFailure")
    conf = m.decode_message(m.encode_message(fields, m.pki_conf_body(), protector))
    assert conf.body_type == "pkiconf"
    ResponseVerifier(secret=b"pw").verify(conf, NOW)
    entries = [m.CertStatusEntry(b"h" * 64, 0, m.StatusInfo(2, ("bad",), (19,)), "2.16.840.1.101.3.4.2.3")]
    cc = m.decode_message(m.encode_message(fields, m.cert_conf_body(entries), protector))
    assert m.cert_conf_entries(cc) == entries
    poll = m.decode_message(m.encode_message(fields, m.poll_req_body([0]), protector))
    assert m.poll_req_ids(poll) == [0]
    # the hand-written DER is what pyasn1 itself would encode (canonical DER)
    for message in (ip, rep, conf, cc, poll):
        assert encoder.encode(decoder.decode(message.raw, asn1Spec=rfc9480.PKIMessage())[0]) == message.raw


def test_cert_hash_uses_hash_alg_for_eddsa():
    ec_cert = _self_signed()
    digest, hash_alg = m.cert_hash(ec_cert)
    assert hash_alg is None and len(digest) == 32  # ecdsa-with-SHA256
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_cert = _self_signed(ed_key)
    digest, hash_alg = m.cert_hash(ed_cert)
    assert hash_alg == "2.16.840.1.101.3.4.2.3" and len(digest) == 64  # SHA-512


def test_garbage_is_a_clear_error():
    for data in (b"", b"\x30\x03\x02\x01", b"\x04\x00", b"\x30\x80\x00\x00", b"\x30\x00"):
        with pytest.raises(m.MessageError):
            m.decode_message(data)


# -- names ---------------------------------------------------------------------------


def test_parse_dn_keeps_order_and_escapes():
    name = parse_dn("/CN=Example CA/O=Ex\\/ample/C=DE/OU=a+OU=b")
    assert [a.oid for a in name] == [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME,
                                      NameOID.COUNTRY_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
                                      NameOID.ORGANIZATIONAL_UNIT_NAME]
    assert name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Ex/ample"
    assert len(name.rdns) == 4
    assert parse_dn(format_dn(name)) == name
    assert parse_dn("") == x509.Name([]) == parse_dn("/")


@pytest.mark.parametrize("bad,why", [("CN=x", "must start"), ("/XX=1", "unknown attribute"),
                                     ("/C=DEU", "two letters"), ("/CN", "TYPE=value"),
                                     ("/CN=", "empty value"), ("/CN=a\\", "backslash")])
def test_parse_dn_errors(bad, why):
    with pytest.raises(NameSyntaxError, match=why):
        parse_dn(bad)


def test_subject_fields():
    name = Subject(common_name="r1", country="CN", organization="Ex", email="a@b.c").to_name()
    assert format_dn(name) == "/C=CN/O=Ex/CN=r1/emailAddress=a@b.c"


# -- what a client reads, read from the DER directly (no pyasn1) -------------------------


def _free_text(value) -> tuple[str, ...]:
    return tuple(str(t) for t in value) if value.isValue else ()


def test_the_clients_der_reading_agrees_with_rfc9480():
    """The header, error and pollRep bodies a client reads without pyasn1 read, for every
    vector and every body the client reads, as the full pyasn1 module decodes them."""
    from pyasn1.type import univ

    from agent.cmp.messages.common import general_name

    assert m.BODY_TYPES == {named.getType().tagSet[-1].tagId: named.getName()
                            for named in rfc9480.PKIBody.componentType.namedTypes}
    fields = m.HeaderFields(parse_dn("/CN=CA"), parse_dn("/CN=EE"), b"t" * 16, b"s" * 16, NOW,
                            b"r" * 16, implicit_confirm=True, cert_profile="profile-1")
    err = m.encode_message(fields, m.error_body(m.ErrorContent(
        m.StatusInfo(2, ("no",), (1, 25)), 42, ("details",))), None)
    rep = m.encode_message(fields, m.poll_rep_body([m.PollResponse(0, 7, ("busy",)),
                                                     m.PollResponse(1, 9)]), None)
    raws = [(VECTORS / name).read_bytes() for name in sorted(p.name for p in VECTORS.glob("*.der"))]
    seen = set()
    for raw in [*raws, err, rep]:
        full = decoder.decode(raw, asn1Spec=rfc9480.PKIMessage())[0]
        header, msg = full["header"], m.decode_message(raw)
        octets = {name: header[name].asOctets() if header[name].isValue else None
                  for name in ("senderKID", "transactionID", "senderNonce", "recipNonce")}
        alg = header["protectionAlg"]
        infos = list(header["generalInfo"]) if header["generalInfo"].isValue else []
        profiles = [decoder.decode(i["infoValue"].asOctets(), asn1Spec=univ.SequenceOf(
            componentType=univ.Any()))[0] for i in infos if str(i["infoType"]) == m.OID_CERT_PROFILE]
        assert (msg.pvno, msg.sender, msg.recipient) == (
            int(header["pvno"]), general_name(header["sender"]), general_name(header["recipient"]))
        assert (msg.sender_kid, msg.transaction_id, msg.sender_nonce, msg.recip_nonce) == (
            octets["senderKID"], octets["transactionID"], octets["senderNonce"],
            octets["recipNonce"])
        assert msg.message_time == (header["messageTime"].asDateTime if
                                    header["messageTime"].isValue else None)
        assert msg.protection_alg == (m.ProtectionAlgorithm(
            str(alg["algorithm"]), alg["parameters"].asOctets()
            if alg["parameters"].isValue else None) if alg.isValue else None)
        assert msg.implicit_confirm == any(str(i["infoType"]) == m.OID_IMPLICIT_CONFIRM
                                           for i in infos)
        assert msg.free_text == _free_text(header["freeText"])
        assert (msg.cert_profile is not None) == bool(profiles)
        seen |= {msg.body_type, *(("profile",) if profiles else ())}
        body = full["body"][msg.body_type]
        if msg.body_type == "error":
            content = m.error_content(msg)
            assert content.status == m.status_info(body["pKIStatusInfo"])
            assert content.error_code == (int(body["errorCode"]) if body["errorCode"].isValue
                                          else None)
            assert content.details == _free_text(body["errorDetails"])
        elif msg.body_type == "pollRep":
            assert m.poll_responses(msg) == [
                m.PollResponse(int(i["certReqId"]), int(i["checkAfter"]), _free_text(i["reason"]))
                for i in body]
        elif msg.body_type in ("ip", "cp", "kup"):
            statuses = [r.status for r in m.cert_rep_content(msg).responses]
            assert statuses == [m.status_info(r["status"]) for r in body["response"]]
    assert {"error", "pollRep", "ip", "profile"} <= seen
    # status_info of a pyasn1 value and the DER reader agree on every field, bits included
    status = m.StatusInfo(2, ("a", "b"), (0, 9, 26))
    assert m.status_info(decoder.decode(m.encode_status_info(status),
                                        asn1Spec=rfc9480.PKIStatusInfo())[0]) == status


_NAMES = b"\x02\x01\x02\xa4\x02\x30\x00\xa4\x02\x30\x00"  # pvno, sender, recipient


@pytest.mark.parametrize("damage", [
    b"\x30\x03\x02\x01\x02",  # pvno alone
    b"\x30\x19" + _NAMES + b"\xa4\x06\x04\x04tttt\xa2\x04\x04\x02kk",  # [4] before [2]
    b"\x30\x0b\x02\x01\x02\x99\x00\xa4\x02\x30\x00\x00\x00",  # not a GeneralName
    b"\x30\x20" + _NAMES + b"\xa0\x13\x18\x1120260101000000.0Z",  # not DER time
    b"\x30\x11" + _NAMES + b"\xa4\x04\x02\x02\x01\x00",  # transactionID not OCTETS
])
def test_a_malformed_header_is_a_message_error(damage):
    body = b"\xb7\x07\x30\x05\x30\x03\x02\x01\x02"
    raw = b"\x30" + bytes([len(damage) + len(body)]) + damage + body
    with pytest.raises(m.MessageError):
        m.decode_message(raw)


def test_sender_must_name_the_signer():
    """RFC 4210 5.1.1: a signature by a trusted key under another sender name is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer = _self_signed(key)
    body = m.pki_conf_body()
    for sender, ok in ((signer.subject, True), (parse_dn("/CN=Somebody Else"), False)):
        fields = m.HeaderFields(sender, parse_dn("/CN=EE"), b"t" * 16, b"s" * 16, NOW, b"r" * 16)
        msg = m.decode_message(m.encode_message(fields, body, m.SignatureProtector(signer, key)))
        verifier = ResponseVerifier(trusted=(signer,))
        if ok:
            assert verifier.verify(msg, NOW).signer == signer
        else:
            with pytest.raises(ProtectionError, match="sender CN=Somebody Else does not match the"
                                                      " signer certificate's subject CN=Somebody"):
                verifier.verify(msg, NOW)


def _signed_with_extra_certs(variant: tuple[str, str]):
    """(signer, a copy of it with the OID *variant*[0] written as *variant*[1], a pkiConf
    signed by the signer whose extraCerts are given to the returned function)."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer = _self_signed(key)
    odd = with_oid_replaced(signer, *variant)
    fields = m.HeaderFields(signer.subject, parse_dn("/CN=EE"), b"t" * 16, b"s" * 16, NOW, b"r" * 16)

    class Protector(m.SignatureProtector):
        def extra_certs(self):
            return self.chain

    def message(*extra_certs: x509.Certificate) -> m.DecodedMessage:
        raw = m.encode_message(fields, m.pki_conf_body(), Protector(signer, key, extra_certs))
        return m.decode_message(raw)

    return signer, odd, message


def test_extra_certs_whose_extensions_cannot_be_read_are_not_signers():
    """extraCerts are outside the protection (RFC 4210 5.1): a copy of the signer's
    certificate with a duplicate extension (RFC 5280 4.2), which cryptography parses only
    when its extensions are read, is passed over for the signer's own (before, the signer
    search raised DuplicateExtension); alone, it is refused as a signer by name."""
    signer, bad, message = _signed_with_extra_certs(("2.5.29.15", "2.5.29.14"))  # keyUsage -> SKI
    assert ResponseVerifier(trusted=(signer,)).verify(message(bad, signer), NOW).signer == signer
    with pytest.raises(ProtectionError, match="^signer CN=Somebody has extensions that cannot"
                                              " be read: Duplicate 2.5.29.14 extension found$"):
        ResponseVerifier(trusted=(bad,)).verify(message(bad), NOW)


def test_extra_certs_with_a_key_of_an_unknown_type_are_not_signers():
    """A copy of the signer's certificate whose key algorithm cryptography does not know,
    added to extraCerts (outside the protection, RFC 4210 5.1), is passed over for the
    signer's own (before, UnsupportedAlgorithm escaped the signer search); pinned, it is
    refused by name."""
    signer, odd, message = _signed_with_extra_certs(("1.2.840.10045.2.1", "1.2.840.10045.2.9"))
    assert ResponseVerifier(trusted=(signer,)).verify(message(odd, signer), NOW).signer == signer
    with pytest.raises(ProtectionError, match="^the public key of CN=Somebody cannot be used: Unknown"
                                              " key type: 1.2.840.10045.2.9 \\(pinned server"):
        ResponseVerifier(server_cert=odd).verify(message(odd, signer), NOW)


def test_issued_certificate_checked_with_some_clock_skew():
    """A certificate valid from a minute ahead (the CA's clock) passes; from a day ahead not."""
    from datetime import timedelta

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _self_signed(root_key)
    verifier = ResponseVerifier(trusted=(root,))
    soon = issue(parse_dn("/CN=ee"), key.public_key(), root.subject, root_key, ca=False,
                 not_before=NOW + timedelta(minutes=1))
    verifier.validate_issued(soon, (), (), False, NOW)
    later = issue(parse_dn("/CN=ee"), key.public_key(), root.subject, root_key, ca=False,
                  not_before=NOW + timedelta(days=1))
    with pytest.raises(ProtectionError, match="not valid at validation time"):
        verifier.validate_issued(later, (), (), False, NOW)
    with pytest.raises(ProtectionError, match="no trusted chain for CN=ee"):  # another root
        ResponseVerifier(trusted=(_self_signed(),)).validate_issued(soon, (), (), False, NOW)
