"""Rewrite the protection of CMP responses on their way from OpenSSL's mock server.

:class:`Resigner` re-signs with a key OpenSSL 3.0's mock server cannot sign with: RSASSA-PSS
(RFC 9481 3.1; given an RSA-PSS key the mock answers HTTP 500) and EdDSA (RFC 9481 3.3;
"unsupported key type").

Use as ``CmpHttpProxy(server.port, rewrite=Resigner(cert, key))``. Every
signature-protected PKIMessage gets sender = the new signer's subject, senderKID = its
subjectKeyIdentifier, protectionAlg = id-RSASSA-PSS (SHA-256/384/512, MGF1 with the same
hash, salt as long as the hash; encoded by pyasn1, independently of the agent's encoder)
for an RSA key (or, with ``pkcs1``, sha*WithRSAEncryption: PKCS#1 v1.5, as a CA misusing
an RSA-PSS key would sign) or id-Ed25519/id-Ed448, a fresh signature over the new ProtectedPart
(``cryptography``), and the signer's certificate prepended to extraCerts.
MAC-protected and unprotected messages pass unchanged.

:class:`Remac` MAC-protects each answer anew with the shared secret and parameters the
test chooses (hostile iteration counts, short salts, SHA-1), as a CA with those settings
would.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, padding, rsa
from pyasn1.codec.der import encoder
from pyasn1.type import univ
from pyasn1_alt_modules import rfc4055, rfc5280, rfc8410

from agent.cmp import der, messages, protection

_PSS = {
    "sha256": (rfc4055.rSASSA_PSS_SHA256_Params, hashes.SHA256),
    "sha384": (rfc4055.rSASSA_PSS_SHA384_Params, hashes.SHA384),
    "sha512": (rfc4055.rSASSA_PSS_SHA512_Params, hashes.SHA512),
}
_PKCS1 = {"sha256": rfc4055.sha256WithRSAEncryption, "sha384": rfc4055.sha384WithRSAEncryption,
          "sha512": rfc4055.sha512WithRSAEncryption}
_MACS = ("1.2.840.113533.7.66.13", "1.2.840.113549.1.5.14")  # id-PasswordBasedMac, id-PBMAC1


def _identifier(oid: univ.ObjectIdentifier, parameters=None) -> bytes:
    identifier = rfc5280.AlgorithmIdentifier()
    identifier["algorithm"] = oid
    if parameters is not None:
        identifier["parameters"] = parameters
    return encoder.encode(identifier)


class Resigner:
    """A ``rewrite`` for :class:`http_proxy.CmpHttpProxy`; counts what it re-signed."""

    def __init__(self, certificate: x509.Certificate,
                 key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey,
                 hash_name: str = "sha256", pkcs1: bool = False):
        self.certificate = certificate
        self.key = key
        self.resigned = 0
        self._pkcs1 = pkcs1
        if pkcs1:
            self._hash = _PSS[hash_name][1]
            self.algorithm = _identifier(_PKCS1[hash_name], univ.Null(""))
        elif isinstance(key, rsa.RSAPrivateKey):
            defaults, self._hash = _PSS[hash_name]
            params = rfc4055.RSASSA_PSS_params()
            params["hashAlgorithm"] = defaults["hashAlgorithm"]
            params["maskGenAlgorithm"] = defaults["maskGenAlgorithm"]
            params["saltLength"] = self._hash.digest_size  # RFC 4055's own examples say 20
            self.algorithm = _identifier(rfc4055.id_RSASSA_PSS, params)
        else:
            self._hash = None
            ed = isinstance(key, ed25519.Ed25519PrivateKey)
            self.algorithm = _identifier(rfc8410.id_Ed25519 if ed else rfc8410.id_Ed448)

    def _sign(self, data: bytes) -> bytes:
        if self._hash is None:
            return self.key.sign(data)
        digest = self._hash()
        if self._pkcs1:
            return self.key.sign(data, padding.PKCS1v15(), digest)
        return self.key.sign(data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)

    def __call__(self, message: bytes) -> bytes:
        outer = der.read_tlv(message)
        header_tlv, body_tlv, *rest = der.children(message, outer)
        fields = der.children(message, header_tlv)
        tagged = {f.tag: f for f in fields[3:]}
        alg = tagged.get(0xA1)
        if alg is None:
            return message  # unprotected: left alone
        identifier = der.read_tlv(message, alg.content_start)
        if der.decode_oid(message, der.read_tlv(message, identifier.content_start)) in _MACS:
            return message  # MAC-protected: left alone
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        tagged[0xA1] = der.tlv(0xA1, self.algorithm)
        tagged[0xA2] = der.tlv(0xA2, der.tlv(0x04, ski.value.digest))
        header = message[fields[0].start:fields[0].end]  # pvno
        header += der.tlv(0xA4, self.certificate.subject.public_bytes())  # sender: directoryName
        header += message[fields[2].start:fields[2].end]  # recipient
        for tag in sorted(tagged):  # PKIHeader's optional fields in tag order [0]..[8]
            item = tagged[tag]
            header += item if isinstance(item, bytes) else message[item.start:item.end]
        header = der.tlv(0x30, header)
        body = message[body_tlv.start:body_tlv.end]
        signature = self._sign(der.tlv(0x30, header + body))
        extra = [self.certificate.public_bytes(serialization.Encoding.DER)]
        for item in rest:
            if item.tag == 0xA1:
                extra += [message[c.start:c.end]
                          for c in der.children(message, der.read_tlv(message, item.content_start))]
        self.resigned += 1
        return der.tlv(0x30, header + body + der.tlv(0xA0, der.tlv(0x03, b"\x00" + signature))
                       + der.tlv(0xA1, der.tlv(0x30, b"".join(extra))))


class Remac:
    """A ``rewrite`` that MAC-protects each answer anew with the shared *secret* and the
    given (possibly hostile) PBM or PBMAC1 *params*, as a CA with those settings would:
    a crafted response built by the test, on a real exchange with OpenSSL's mock."""

    def __init__(self, secret: bytes, params: protection.MacParameters):
        self.secret = secret
        self.params = params
        self.algorithm = messages.encode_mac_algorithm(params).encode()
        self.remaced = 0

    def __call__(self, message: bytes) -> bytes:
        outer = der.read_tlv(message)
        header_tlv, body_tlv, *rest = der.children(message, outer)
        fields = der.children(message, header_tlv)
        tagged = {f.tag: message[f.start:f.end] for f in fields[3:]}
        tagged[0xA1] = der.tlv(0xA1, self.algorithm)
        header = der.tlv(0x30, message[fields[0].start:fields[2].end]
                         + b"".join(tagged[tag] for tag in sorted(tagged)))
        part = header + message[body_tlv.start:body_tlv.end]
        # the value is what a CA would send; a hostile one costs it as much as us, so
        # only parameters a test can afford are computed (others get zeros)
        params = self.params
        affordable = params.iteration_count <= 100_000 and getattr(params, "key_length", 0) <= 64
        value = (protection.mac_value(self.secret, params, der.tlv(0x30, part))
                 if affordable else bytes(32))
        extra = b"".join(message[r.start:r.end] for r in rest if r.tag == 0xA1)
        self.remaced += 1
        return der.tlv(0x30, part + der.tlv(0xA0, der.tlv(0x03, b"\x00" + value)) + extra)
