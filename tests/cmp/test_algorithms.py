"""RFC 9481 algorithms of the protection layer: signature schemes and digests, RSASSA-PSS
and PBMAC1 parameters checked against pyasn1's own decoders (RFC 4055, RFC 8018) and an
independent computation, MAC parameter bounds and the weak-algorithm switch."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from datetime import datetime, timezone

import pytest
from cmp_mock_pki import issue
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from pyasn1.codec.der import decoder
from pyasn1_alt_modules import rfc4055, rfc8018

from agent.cmp import der
from agent.cmp import messages as m
from agent.cmp import protection
from agent.cmp.names import parse_dn
from agent.cmp.protection import (
    MAC_PARAMETER_BOUNDS,
    Pbmac1Parameters,
    PbmParameters,
    ProtectionError,
    SignatureAlgorithm,
)
from agent.cmp.verify import ResponseVerifier

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SHA256, SHA1 = "2.16.840.1.101.3.4.2.1", "1.3.14.3.2.26"
HMAC_SHA256 = "1.2.840.113549.2.9"

KEYS = {
    "rsa": lambda: rsa.generate_private_key(65537, 2048),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
}


CA_KEY = ec.generate_private_key(ec.SECP256R1())


def _signed_message(key, signature: SignatureAlgorithm | None = None):
    """A pkiConf signed by *key*, and the certificate of *key* (issued by an EC CA)."""
    name = parse_dn("/CN=Signer")
    cert = issue(name, key.public_key(), parse_dn("/CN=CA"), CA_KEY, ca=False,
                 not_before=datetime(2025, 6, 1, tzinfo=timezone.utc), days=3650)
    fields = m.HeaderFields(name, parse_dn("/CN=EE"), b"t" * 16, b"s" * 16, NOW, b"r" * 16)
    raw = m.encode_message(fields, m.pki_conf_body(), m.SignatureProtector(cert, key, (), signature))
    return m.decode_message(raw), cert


@pytest.mark.parametrize("kind,digest,pss,expected", [
    ("rsa", None, False, SignatureAlgorithm("rsa", "sha256")),
    ("rsa", "sha512", False, SignatureAlgorithm("rsa", "sha512")),
    ("rsa", None, True, SignatureAlgorithm("rsa-pss", "sha256")),
    ("rsa", "sha384", True, SignatureAlgorithm("rsa-pss", "sha384")),
    ("p256", None, False, SignatureAlgorithm("ec", "sha256")),
    ("p256", "sha384", False, SignatureAlgorithm("ec", "sha384")),
    ("p384", None, False, SignatureAlgorithm("ec", "sha384")),
    ("p384", "sha256", False, SignatureAlgorithm("ec", "sha256")),
    ("p521", None, False, SignatureAlgorithm("ec", "sha512")),
    ("ed25519", "sha384", False, SignatureAlgorithm("ed25519")),
    ("ed448", None, False, SignatureAlgorithm("ed448")),
])
def test_signature_scheme_per_key_and_digest_round_trips(kind, digest, pss, expected):
    key = KEYS[kind]()
    algorithm = protection.signature_algorithm_for(key, digest, pss)
    assert algorithm == expected
    message, cert = _signed_message(key, algorithm)
    assert m.decode_signature_algorithm(message.protection_alg) == expected
    ResponseVerifier(server_cert=cert).verify(message, NOW)
    # the same signature read as another scheme does not verify
    other = {"rsa": SignatureAlgorithm("rsa-pss", expected.hash),
             "rsa-pss": SignatureAlgorithm("rsa", expected.hash),
             "ec": SignatureAlgorithm("ec", "sha256" if expected.hash == "sha512" else "sha512"),
             }.get(expected.family)
    if other is not None:
        with pytest.raises(ProtectionError, match="invalid"):
            protection.verify_signature(key.public_key(), other, message.protected_part,
                                        message.protection)


def test_pss_parameters_as_rfc_4055_and_9481_say():
    for hash_name, size in (("sha256", 32), ("sha384", 48), ("sha512", 64)):
        algorithm = m.encode_signature_algorithm(SignatureAlgorithm("rsa-pss", hash_name))
        assert algorithm.oid == "1.2.840.113549.1.1.10"
        params, rest = decoder.decode(algorithm.parameters, asn1Spec=rfc4055.RSASSA_PSS_params())
        assert rest == b""
        hash_oid = protection.HASH_BY_NAME[hash_name]
        assert str(params["hashAlgorithm"]["algorithm"]) == hash_oid
        assert str(params["maskGenAlgorithm"]["algorithm"]) == "1.2.840.113549.1.1.8"
        mgf_hash, _ = decoder.decode(params["maskGenAlgorithm"]["parameters"],
                                     asn1Spec=rfc4055.HashAlgorithm())
        assert str(mgf_hash["algorithm"]) == hash_oid
        assert int(params["saltLength"]) == size and int(params["trailerField"]) == 1
        assert m.decode_signature_algorithm(algorithm) == SignatureAlgorithm("rsa-pss", hash_name)


def _pss_params(hash_oid=SHA256, mgf_oid=SHA256, salt=32, trailer=None) -> bytes:
    fields = der.tlv(0xA0, m.encode_algorithm(hash_oid))
    fields += der.tlv(0xA1, m.encode_algorithm("1.2.840.113549.1.1.8", m.encode_algorithm(mgf_oid)))
    fields += der.tlv(0xA2, der.encode_integer(salt))
    if trailer is not None:
        fields += der.tlv(0xA3, der.encode_integer(trailer))
    return der.tlv(0x30, fields)


@pytest.mark.parametrize("params,reason", [
    (_pss_params(mgf_oid="2.16.840.1.101.3.4.2.3"), "MGF1 hash sha512 differs from the hash sha256"),
    (_pss_params(salt=20), "salt length 20 is not the hash length 32"),
    (_pss_params(trailer=2), "trailer field 2 is not 1"),
    (_pss_params(hash_oid="1.2.3.4", mgf_oid="1.2.3.4"), "unsupported RSASSA-PSS hash 1.2.3.4"),
    (b"\x30\x03\x02\x01", "bad RSASSA-PSS-params"),
    (None, "without RSASSA-PSS-params"),
])
def test_pss_parameters_outside_rfc_9481_are_refused(params, reason):
    with pytest.raises(ProtectionError, match=reason):
        m.decode_signature_algorithm(m.ProtectionAlgorithm("1.2.840.113549.1.1.10", params))


def test_pss_defaults_are_sha1_hence_weak():
    """RFC 4055's DEFAULTs (all fields absent) are SHA-1, MGF1-SHA-1, salt 20: weak."""
    empty = m.ProtectionAlgorithm("1.2.840.113549.1.1.10", der.tlv(0x30, b""))
    assert m.decode_signature_algorithm(empty) == SignatureAlgorithm("rsa-pss", "sha1")
    with pytest.raises(ProtectionError, match="RSASSA-PSS signature uses SHA-1"):
        protection.check_signature_algorithm(SignatureAlgorithm("rsa-pss", "sha1"), False)


def test_sha1_signature_refused_unless_weak():
    key = KEYS["p256"]()
    message, cert = _signed_message(key, SignatureAlgorithm("ec", "sha1"))
    with pytest.raises(ProtectionError, match="ECDSA signature uses SHA-1, a weak algorithm refused"):
        ResponseVerifier(server_cert=cert).verify(message, NOW)
    ResponseVerifier(server_cert=cert, weak_algorithms=True).verify(message, NOW)


def test_unknown_signature_algorithm_named():
    with pytest.raises(ProtectionError, match="unsupported protection algorithm 1.2.3.4"):
        m.decode_signature_algorithm(m.ProtectionAlgorithm("1.2.3.4"))


def test_rsa_pss_key_files_are_recognised(tmp_path):
    pss, plain = tmp_path / "pss.key", tmp_path / "rsa.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(pss)], check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(plain)], check=True, capture_output=True)
    der_pss = subprocess.run(["openssl", "pkey", "-in", str(pss), "-outform", "DER"], check=True,
                             capture_output=True).stdout
    assert protection.is_rsa_pss_key_file(pss.read_bytes())
    assert protection.is_rsa_pss_key_file(der_pss)
    assert not protection.is_rsa_pss_key_file(plain.read_bytes())
    assert not protection.is_rsa_pss_key_file(b"garbage")
    # cryptography loads it as an RSA key: the scheme comes from the file
    key = serialization.load_pem_private_key(pss.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)


# -- password-based MACs -------------------------------------------------------------------


def _mac_protected(params, secret=b"secret", value=None):
    fields = m.HeaderFields(parse_dn("/CN=CA"), parse_dn("/CN=EE"), b"t" * 16, b"s" * 16, NOW, b"r" * 16)

    class Fixed(m.MacProtector):
        def algorithm(self):
            return m.encode_mac_algorithm(params)

        def protect(self, algorithm, part):
            return value if value is not None else protection.mac_value(secret, params, part)

    return m.decode_message(m.encode_message(fields, m.pki_conf_body(), Fixed(b"ref", secret)))


@pytest.mark.parametrize("name,hash_name", [("pbmac1-sha256", "sha256"), ("pbmac1-sha384", "sha384"),
                                            ("pbmac1-sha512", "sha512")])
def test_pbmac1_encoding_and_value_as_rfc_8018_says(name, hash_name):
    protector = m.MacProtector(b"ref", b"shared secret", name, rng=lambda n: b"\x5a" * n)
    fields = m.HeaderFields(parse_dn("/CN=EE"), parse_dn("/CN=CA"), b"t" * 16, b"s" * 16, NOW)
    message = m.decode_message(m.encode_message(fields, m.pki_conf_body(), protector))
    assert message.protection_alg.oid == "1.2.840.113549.1.5.14"
    # pyasn1's RFC 8018 module reads what we wrote
    params, rest = decoder.decode(message.protection_alg.parameters, asn1Spec=rfc8018.PBMAC1_params())
    assert rest == b""
    assert params["keyDerivationFunc"]["algorithm"] == rfc8018.id_PBKDF2
    kdf, _ = decoder.decode(params["keyDerivationFunc"]["parameters"], asn1Spec=rfc8018.PBKDF2_params())
    salt = kdf["salt"]["specified"].asOctets()
    count, length = int(kdf["iterationCount"]), int(kdf["keyLength"])
    hmac_oid = str(kdf["prf"]["algorithm"])
    assert salt == b"\x5a" * 16 and count == protection.DEFAULT_PBKDF2_ITERATIONS
    assert length == hashlib.new(hash_name).digest_size
    assert protection.MAC_OIDS[hmac_oid] == hash_name
    assert str(params["messageAuthScheme"]["algorithm"]) == hmac_oid
    # the value, computed independently (RFC 8018 7.1: PBKDF2, then HMAC)
    key = hashlib.pbkdf2_hmac(hash_name, b"shared secret", salt, count, length)
    assert message.protection == hmac.new(key, message.protected_part, hash_name).digest()
    ResponseVerifier(secret=b"shared secret").verify(message, NOW)
    with pytest.raises(ProtectionError, match="wrong secret"):
        ResponseVerifier(secret=b"other secret").verify(message, NOW)


def test_pbmac1_without_key_length_uses_the_mac_hash_length():
    kdf = der.tlv(0x30, der.tlv(0x04, b"\x01" * 16) + der.encode_integer(1000)
                  + m.encode_algorithm(HMAC_SHA256, b"\x05\x00"))
    data = der.tlv(0x30, m.encode_algorithm("1.2.840.113549.1.5.12", kdf)
                   + m.encode_algorithm(HMAC_SHA256))
    params = m.decode_pbmac1_parameters(data)
    assert params == Pbmac1Parameters(b"\x01" * 16, 1000, 32, HMAC_SHA256, HMAC_SHA256)


def _reference_mac(secret, params, data):
    """RFC 4210 5.1.3.1 (PBM) and RFC 8018 7.1 (PBMAC1) with hashlib and hmac, as
    mac_value computed them before it hashed with CPython's built-in hash modules and
    cryptography (issue 11: no system OpenSSL loaded by `cmp-agent cmp`)."""
    mac_hash = protection.MAC_OIDS[params.mac]
    if isinstance(params, PbmParameters):
        owf = protection.HASH_OIDS[params.owf]
        key = hashlib.new(owf, secret + params.salt).digest()
        for _ in range(params.iteration_count - 1):
            key = hashlib.new(owf, key).digest()
    else:
        key = hashlib.pbkdf2_hmac(protection.MAC_OIDS[params.prf], secret, params.salt,
                                  params.iteration_count, params.key_length)
    return hmac.new(key, data, mac_hash).digest()


@pytest.mark.parametrize("owf", sorted(protection.HASH_OIDS))
@pytest.mark.parametrize("mac", sorted(protection.MAC_OIDS))
def test_pbm_value_as_hashlib_computes_it(owf, mac):
    for secret, salt, count in ((b"shared secret", b"s" * 16, 500), (b"", b"\x00" * 8, 1),
                                (b"\xff" * 100, bytes(range(64)), 1234)):
        params = PbmParameters(salt, owf, count, mac)
        for data in (b"", b"protected part" * 50):
            assert protection.mac_value(secret, params, data) == _reference_mac(secret, params, data)


@pytest.mark.parametrize("prf", sorted(protection.MAC_OIDS))
@pytest.mark.parametrize("length", [20, 32, 64])
def test_pbmac1_value_as_hashlib_computes_it(prf, length):
    params = Pbmac1Parameters(b"salt" * 4, 1000, length, prf, HMAC_SHA256)
    for secret in (b"shared secret", b""):
        data = b"protected part"
        assert protection.mac_value(secret, params, data) == _reference_mac(secret, params, data)


def test_hash_sizes_as_hashlib_says():
    for name in [*protection.DIGESTS, "sha224", "md5", "sha3_256"]:
        assert protection.hash_size(name) == hashlib.new(name).digest_size
    with pytest.raises(ValueError):
        protection.hash_size("no-such-hash")


BAD_MAC_PARAMETERS = [
    (PbmParameters(b"s" * 16, SHA256, 1, HMAC_SHA256), "PBM iteration count 1 below the minimum 100"),
    (PbmParameters(b"s" * 16, SHA256, 10**9, HMAC_SHA256),
     "PBM iteration count 1000000000 above the maximum 100000"),
    (PbmParameters(b"s", SHA256, 500, HMAC_SHA256), "PBM salt of 1 bytes shorter than the minimum 8"),
    (PbmParameters(b"s" * 16, SHA1, 500, HMAC_SHA256), "PBM one-way function uses SHA-1, a weak"),
    (PbmParameters(b"s" * 16, SHA256, 500, "1.3.6.1.5.5.8.1.2"), "PBM MAC uses SHA-1, a weak"),
    (PbmParameters(b"s" * 16, "1.2.3", 500, HMAC_SHA256), "unsupported PBM one-way function 1.2.3"),
    (Pbmac1Parameters(b"s" * 16, 1, 32, HMAC_SHA256, HMAC_SHA256),
     "PBKDF2 iteration count 1 below the minimum 100"),
    (Pbmac1Parameters(b"s" * 16, 10**9, 32, HMAC_SHA256, HMAC_SHA256),
     "PBKDF2 iteration count 1000000000 above the maximum 100000"),
    (Pbmac1Parameters(b"s", 1000, 32, HMAC_SHA256, HMAC_SHA256),
     "PBMAC1 salt of 1 bytes shorter than the minimum 8"),
    (Pbmac1Parameters(b"s" * 16, 1000, 10**9, HMAC_SHA256, HMAC_SHA256),
     "PBKDF2 key length 1000000000 outside 32..64"),
    # a one-byte key: one forged MAC in 256 would pass without the secret
    (Pbmac1Parameters(b"s" * 16, 1000, 1, HMAC_SHA256, HMAC_SHA256),
     "PBKDF2 key length 1 outside 32..64"),
    (Pbmac1Parameters(b"s" * 16, 1000, 32, "1.2.840.113549.2.7", HMAC_SHA256), "PBKDF2 PRF uses SHA-1"),
    (Pbmac1Parameters(b"s" * 16, 1000, 32, HMAC_SHA256, "1.2.840.113549.2.7"), "PBMAC1 MAC uses SHA-1"),
]


@pytest.mark.parametrize("params,reason", BAD_MAC_PARAMETERS)
def test_hostile_mac_parameters_refused_with_the_check_named(params, reason):
    message = _mac_protected(params, value=b"\x00" * 32)  # never computed: refused first
    with pytest.raises(ProtectionError, match=reason):
        ResponseVerifier(secret=b"secret").verify(message, NOW)


def test_bounds_are_one_constant_and_weak_switch_admits_sha1():
    assert (MAC_PARAMETER_BOUNDS.min_iterations, MAC_PARAMETER_BOUNDS.max_iterations,
            MAC_PARAMETER_BOUNDS.min_salt_length) == (100, 100_000, 8)
    for params in (PbmParameters(b"s" * 8, SHA1, 100, "1.3.6.1.5.5.8.1.2"),
                   Pbmac1Parameters(b"s" * 8, 100_000, 20, "1.2.840.113549.2.7", "1.2.840.113549.2.7")):
        message = _mac_protected(params)
        with pytest.raises(ProtectionError, match="uses SHA-1"):
            ResponseVerifier(secret=b"secret").verify(message, NOW)
        ResponseVerifier(secret=b"secret", weak_algorithms=True).verify(message, NOW)


def test_a_signed_pop_follows_the_digest_and_pss():
    key = KEYS["rsa"]()
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    spec = m.CertRequestSpec(spki, parse_dn("/CN=ee"))
    body = m.cert_request_body("ir", spec, key, SignatureAlgorithm("rsa-pss", "sha384"))
    fields = m.HeaderFields(parse_dn("/CN=ee"), parse_dn("/CN=CA"), b"t" * 16, b"s" * 16, NOW)
    message = m.decode_message(m.encode_message(fields, body, m.MacProtector(b"r", b"s")))
    (request,) = m.cert_requests(message)
    algorithm = m.decode_signature_algorithm(request.pop_algorithm)
    assert algorithm == SignatureAlgorithm("rsa-pss", "sha384")
    protection.verify_signature(key.public_key(), algorithm, request.cert_request_der,
                                request.pop_signature)


def test_rsa_pss_key_file_base64_is_read_strictly_as_b64decode_validate(tmp_path):
    """The PEM body is decoded as ``base64.b64decode(..., validate=True)`` decodes it (line
    breaks and spaces dropped first): a character outside the alphabet or bad padding
    means not an RSA-PSS key file, a whole one is read."""
    import base64
    import binascii

    pss = tmp_path / "pss.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", str(pss)], check=True, capture_output=True)
    text = pss.read_bytes()
    body = text.split(b"-----BEGIN PRIVATE KEY-----")[1].split(b"-----END")[0]
    variants = [text, text.replace(body, body.replace(b"\n", b"\r\n  ")),
                text.replace(body, body[:20] + b"*" + body[20:]),
                text.replace(body, body.rstrip().rstrip(b"=") + b"\n"),
                text.replace(body, b"\nAAAA=A\n"), text.replace(body, b"\n")]
    for data in variants:
        part = data.split(b"-----BEGIN PRIVATE KEY-----")[1].split(b"-----END")[0]
        try:
            decoded = base64.b64decode(b"".join(part.split()), validate=True)
        except binascii.Error:
            decoded = None
        expected = decoded is not None and protection.is_rsa_pss_key_file(decoded)
        assert protection.is_rsa_pss_key_file(data) is expected
    assert protection.is_rsa_pss_key_file(variants[0]) and protection.is_rsa_pss_key_file(variants[1])
