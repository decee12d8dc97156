"""Key and certificate stores: file modes, formats, atomicity and clear errors."""

import base64
import datetime
import os
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.netconf.errors import RpcError
from agent.pki.stores import CertificateStore, KeyStore, generate_key


def self_signed(key, cn="device1"):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def keys(tmp_path):
    return KeyStore(tmp_path / "pki" / "private")


@pytest.fixture
def certs(tmp_path):
    return CertificateStore(tmp_path / "pki" / "public")


def test_private_keys_are_readable_by_the_agent_only(keys):
    keys.save("rsa1", generate_key("rsa", 2048))
    assert stat.S_IMODE(os.stat(keys.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(keys.directory / "rsa1.pem").st_mode) == 0o600
    info = keys.describe("rsa1")
    assert (info.algorithm, info.key_bits, info.curve) == ("rsa", 2048, None)
    assert len(info.fingerprint.split(":")) == 32


def test_ec_key_and_listing(keys):
    keys.save("ec1", generate_key("ec", curve="p384"))
    keys.save("a-key", generate_key("ec", curve="p256"))
    assert keys.names() == ["a-key", "ec1"]
    assert keys.describe("ec1").curve == "p384"


def test_import_rejects_garbage_without_echoing_it(keys):
    with pytest.raises(RpcError) as err:
        keys.import_pem("k", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----")
    assert err.value.tag == "invalid-value"
    assert "c2VjcmV0" not in err.value.message
    assert not keys.exists("k")


def test_import_pem_and_describe_is_cached_until_the_file_changes(keys):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    keys.import_pem("imported", pem)
    first = keys.describe("imported")
    assert keys.describe("imported") is first
    keys.save("imported", generate_key("ec", curve="p384"))
    assert keys.describe("imported").curve == "p384"


@pytest.mark.parametrize("bad", ["../etc/passwd", ".hidden", "", "a/b", "x" * 256, "my cert.pem"])
def test_names_that_are_not_plain_file_names_are_refused(keys, certs, bad):
    with pytest.raises(RpcError) as err:
        keys.exists(bad)
    assert err.value.tag == "invalid-value"
    with pytest.raises(RpcError):
        certs.exists(bad)


def test_missing_key_names_the_fix(keys):
    with pytest.raises(RpcError) as err:
        keys.load("nope")
    assert err.value.tag == "data-missing" and "key-pair-create" in err.value.message


@pytest.mark.parametrize("fmt, head", [("pem", b"-----BEGIN CERTIFICATE"), ("der", b"\x30")])
def test_certificates_saved_in_the_configured_format(certs, fmt, head):
    key = generate_key("ec")
    cert = self_signed(key)
    certs.save(f"local.{fmt}", cert, fmt)
    assert (certs.directory / f"local.{fmt}").read_bytes().startswith(head)
    info = certs.describe(f"local.{fmt}")
    assert info.subject == "CN=device1" and info.serial == "1234ABCD"
    assert info.not_after > info.not_before


def test_import_keeps_only_the_certificate(certs):
    key = generate_key("ec")
    cert = self_signed(key, "bundle")
    bundle = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    certs.import_data("bundle.pem", bundle.decode())
    stored = (certs.directory / "bundle.pem").read_bytes()
    assert b"PRIVATE KEY" not in stored and stored == cert.public_bytes(serialization.Encoding.PEM)


def test_import_pem_text_and_base64_der(certs):
    cert = self_signed(generate_key("ec"), "ca")
    certs.import_data("ca.pem", cert.public_bytes(serialization.Encoding.PEM).decode())
    der_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    certs.import_data("ca.der", der_b64)
    assert certs.load("ca.pem") == certs.load("ca.der") == cert
    with pytest.raises(RpcError) as err:
        certs.import_data("bad.pem", "not a certificate")
    assert err.value.tag == "invalid-value"
    assert certs.names() == ["ca.der", "ca.pem"]


def test_a_crash_during_write_keeps_the_old_file(certs, monkeypatch):
    old = self_signed(generate_key("ec"), "old")
    certs.save("local.pem", old, "pem")

    def crash(*args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        certs.save("local.pem", self_signed(generate_key("ec"), "new"), "pem")
    monkeypatch.undo()
    assert certs.load("local.pem") == old
    assert [p.name for p in certs.directory.iterdir()] == ["local.pem"]


def test_delete(certs, keys):
    keys.save("k", generate_key("ec"))
    keys.delete("k")
    assert not keys.exists("k")
    with pytest.raises(RpcError) as err:
        certs.delete("absent.pem")
    assert err.value.tag == "data-missing"


def test_a_file_keeps_the_encoding_its_name_says(certs):
    assert certs.encoding_of("local.der", "pem") == "der"
    assert certs.encoding_of("local.pem", "der") == "pem"
    assert certs.encoding_of("local", "der") == "der"  # no extension: the configured format


def test_ca_certificates_are_judged_once_per_file(certs):
    from cryptography import x509

    ca_key, leaf_key = generate_key("ec"), generate_key("ec")
    ca = self_signed(ca_key, "root")
    ca = (x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.issuer)
          .public_key(ca_key.public_key()).serial_number(7)
          .not_valid_before(ca.not_valid_before_utc).not_valid_after(ca.not_valid_after_utc)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    certs.save("root.pem", ca, "pem")
    certs.save("root.pem.previous", ca, "pem")
    certs.save("leaf.pem", self_signed(leaf_key, "leaf"), "pem")
    assert certs.ca_certificates() == (ca,)
    assert certs.ca_certificates() == (ca,)  # judged once per file, same answer
    certs.save("leaf.pem", ca, "der")  # a file replaced: judged again
    assert certs.ca_certificates() == (ca, ca)
    certs.delete("root.pem")
    assert certs.ca_certificates() == (ca,)
    assert certs.load("leaf.pem") is certs.load("leaf.pem")  # parsed once until it changes



def _ca(key, cn):
    cert = self_signed(key, cn)
    return (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def test_the_catalogue_follows_the_directory(tmp_path):
    """Issue 11 (renewal storm): each request looks certificates up in an index kept up to
    date from the directory's listing, instead of reading every file of the store; the
    store's own writes at once, other programs' once RELIST_INTERVAL has passed."""
    from agent.pki.stores import RELIST_INTERVAL

    now = [0.0]
    certs = CertificateStore(tmp_path / "pki" / "public", clock=lambda: now[0])
    key = generate_key("ec")
    a, b, other, ca = (self_signed(key, "a"), self_signed(key, "b"), self_signed(key, "other"),
                       _ca(key, "ca"))
    certs.save("a.pem", a, "pem")
    certs.save("ca.pem", ca, "der")
    pool = certs.catalogue().pool
    assert pool.named(a.subject) == [a] and pool.named(b.subject) == [] and pool.named(None) == []
    assert pool.intermediates() == [ca] and certs.ca_certificates() == (ca,)
    assert pool.without([ca]).intermediates() == [] and set(pool.without([a])) == {ca}

    # written from outside (by rename), a file that is no certificate; a kept .previous
    (certs.directory / "junk.pem").write_text("not a certificate")
    (certs.directory / ".b.tmp").write_bytes(b.public_bytes(serialization.Encoding.PEM))
    os.replace(certs.directory / ".b.tmp", certs.directory / "b.pem")
    certs.save("a.pem.previous", a, "pem")
    assert set(certs.catalogue().files) == {"a.pem", "a.pem.previous", "ca.pem"}  # ours at once
    now[0] += RELIST_INTERVAL
    catalogue = certs.catalogue()
    assert set(catalogue.files) == {"a.pem", "a.pem.previous", "b.pem", "ca.pem"}
    assert catalogue.pool.named(a.subject) == [a]  # the .previous copy is not the device's
    assert catalogue.pool.named(b.subject) == [b]

    # replaced and deleted by the store: at once
    certs.save("a.pem", other, "pem")
    certs.delete("ca.pem")
    pool = certs.catalogue().pool
    assert pool.named(a.subject) == [] and pool.named(other.subject) == [other]
    assert pool.intermediates() == [] and certs.ca_certificates() == ()
    certs.import_data("b.pem", other.public_bytes(serialization.Encoding.PEM).decode(),
                      overwrite=True)
    assert certs.catalogue().pool.named(b.subject) == []
    assert certs.catalogue().files["b.pem.previous"].certificate == b
    # the same once the directory's time is long past; and a change after that
    old = certs.directory.stat().st_mtime_ns - 10**10
    os.utime(certs.directory, ns=(old, old))
    now[0] += RELIST_INTERVAL
    assert set(certs.catalogue().pool) == {other}
    certs.save("ca2.pem", ca, "pem")
    assert certs.catalogue().pool.intermediates() == [ca]
    assert {n for n, _, _ in certs.certificates()} == {
        "a.pem", "a.pem.previous", "b.pem", "b.pem.previous", "ca2.pem"}

def test_what_the_store_writes_is_not_read_back(certs):
    key = generate_key("ec")
    cert, other = self_signed(key, "a"), self_signed(key, "b")
    certs.save("a.pem", cert, "der")
    # the very object written: in the catalogue and for load, no file read and parsed again
    assert certs.catalogue().files["a.pem"].certificate is cert
    assert certs.load("a.pem") is cert
    # an import over a file that is not a certificate keeps it as .previous all the same
    (certs.directory / "junk.pem").write_text("not a certificate")
    certs.import_data("junk.pem", other.public_bytes(serialization.Encoding.PEM).decode(),
                      overwrite=True)
    assert (certs.directory / "junk.pem.previous").read_text() == "not a certificate"
    files = certs.catalogue().files
    assert "junk.pem.previous" not in files and files["junk.pem"].certificate == other


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _spki(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_key_import_replaces_only_with_overwrite_and_keeps_the_previous(keys):
    """Issue 9: key-pair-import silently replaced a key pair in use."""
    first, second = generate_key("ec", curve="p256"), generate_key("ec", curve="p256")
    keys.import_pem("k1", _pem(first))
    with pytest.raises(RpcError) as err:
        keys.import_pem("k1", _pem(second))
    assert err.value.tag == "data-exists" and "<overwrite>true</overwrite>" in err.value.message
    assert _spki(keys.load("k1")) == _spki(first)
    assert not keys.exists("k1.previous")
    keys.import_pem("k1", _pem(second), overwrite=True)
    assert _spki(keys.load("k1")) == _spki(second)
    assert _spki(keys.load("k1.previous")) == _spki(first)
    assert stat.S_IMODE(os.stat(keys.directory / "k1.previous.pem").st_mode) == 0o600


def test_certificate_import_replaces_only_with_overwrite_and_keeps_the_previous(certs):
    key = generate_key("ec", curve="p256")
    first, second = self_signed(key, "first"), self_signed(key, "second")
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    certs.import_data("ca.pem", pem(first))
    with pytest.raises(RpcError) as err:
        certs.import_data("ca.pem", pem(second))
    assert err.value.tag == "data-exists"
    assert certs.load("ca.pem") == first
    certs.import_data("ca.pem", pem(second), overwrite=True)
    assert certs.load("ca.pem") == second
    assert certs.load("ca.pem.previous") == first


def test_trust_anchors_are_only_those_vouched_for(certs, pki_config):
    """README "Trust model": imported as anchors or caPubs under MAC; a CA certificate
    saved otherwise, or rewritten, is untrusted; with verification-cert it is the only one."""
    from agent.pki.enrollment import session_trust

    imported, capubs, plain = (_ca(generate_key("ec"), name) for name in ("imported", "capubs", "plain"))
    leaf = self_signed(generate_key("ec"), "leaf")
    certs.import_data("imported.pem", imported.public_bytes(serialization.Encoding.PEM).decode(),
                      trust_anchor=True)
    certs.save("s1-ca1.pem", capubs, "pem", "anchor-capubs-mac")
    certs.save("s1-ca1.pem.previous", capubs, "pem", "anchor-capubs-mac")
    certs.save("plain.pem", plain, "pem")
    certs.save("leaf.pem", leaf, "pem")
    found = {name: why for name, _, why in certs.certificates()}
    assert found == {"imported.pem": "anchor-imported", "s1-ca1.pem": "anchor-capubs-mac",
                     "s1-ca1.pem.previous": "anchor-capubs-mac", "plain.pem": None, "leaf.pem": None}

    trust = session_trust(pki_config({}).sessions["s1"], certs)
    assert set(trust.anchors) == {imported, capubs}
    assert set(trust.untrusted) == {plain, leaf}
    assert set(trust.ca_certificates) == {imported, capubs, plain}

    pinned = session_trust(pki_config({"verification-cert": "plain.pem"}).sessions["s1"], certs)
    assert pinned.anchors == (plain,) and imported in pinned.untrusted

    # overwriting a file (or deleting it) ends its trust; the registry is not listed
    certs.save("imported.pem", plain, "pem")
    certs.delete("s1-ca1.pem")
    assert {name: why for name, _, why in certs.certificates()}["imported.pem"] is None
    assert ".trust.json" not in certs.names()
    assert "s1-ca1.pem" not in certs.trust_registry()


def test_an_anchor_is_never_displaced_by_another_certificate(certs):
    """caPubs outside a verified MAC must not take an anchor's place (RFC 4210 5.3.2): the
    service asks the store whether a name vouches for exactly this certificate."""
    anchor_cert = self_signed(generate_key("ec"), "root")
    other = self_signed(generate_key("ec"), "other root")
    certs.save("s1-ca1.pem", anchor_cert, "pem", "anchor-capubs-mac")
    assert certs.anchor_for("s1-ca1.pem", anchor_cert) == "anchor-capubs-mac"
    assert certs.anchor_for("s1-ca1.pem", other) is None
    assert not certs.displaces_anchor("s1-ca1.pem", anchor_cert)
    assert certs.displaces_anchor("s1-ca1.pem", other)
    assert not certs.displaces_anchor("s1-ca2.pem", other)  # not an anchor: free to write


def test_an_rsa_pss_key_is_refused_not_saved_as_plain_rsa(keys, tmp_path):
    """An RSA-PSS key (openssl genpkey -algorithm RSA-PSS; PKCS#8 id-RSASSA-PSS) loads in
    cryptography as a plain RSA key: saving it so would let it sign PKCS#1 v1.5."""
    path = tmp_path / "pss.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(path)], check=True, capture_output=True, timeout=60)
    with pytest.raises(RpcError) as err:
        keys.import_pem("pss", path.read_text())
    assert err.value.tag == "invalid-value"
    assert "private-key is an RSA-PSS key (id-RSASSA-PSS, RFC 4055)" in err.value.message
    assert "import an RSA key (openssl genpkey -algorithm RSA)" in err.value.message
    assert not keys.exists("pss")
    keys.import_pem("rsa", _pem(generate_key("rsa")))  # a plain RSA key still goes in
    assert keys.describe("rsa").algorithm == "rsa"
