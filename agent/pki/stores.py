"""The device's key store and certificate store.

The key store is ``<state-dir>/pki/private`` (directory 0700, files 0600), the
certificate store ``<state-dir>/pki/public`` (the device's ``flash:/pki/public``
in the seed). Every write goes through :func:`agent.atomic.atomic_write`, so a
crash leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.atomic import atomic_write, ensure_directory, fsync_directory
from agent.cmp.protection import is_rsa_pss_key_file
from agent.cmp.pool import CertificatePool, may_issue, not_der
from agent.netconf.errors import RpcError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
FileFormat = Literal["pem", "der"]
#: why a certificate file is a trust anchor (YANG ``certificate-file/trust``; README "Trust model")
AnchorReason = Literal["anchor-imported", "anchor-capubs-mac", "anchor-root-update"]
T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_CURVES: dict[str, type[ec.EllipticCurve]] = {"p256": ec.SECP256R1, "p384": ec.SECP384R1}
_CURVE_NAMES = {"secp256r1": "p256", "secp384r1": "p384"}
#: the suffix of the key pair kept beside a replaced one (seed step 12)
PREVIOUS_SUFFIX = ".previous"
#: a directory listing is taken as current while the directory's modification time is
#: unchanged, once that time is this far in the past: file systems stamp times in coarse
#: ticks (up to 2 s), so a change within the tick of the listing could leave it unchanged
SETTLED_NS = 2_000_000_000
#: while the directory keeps changing (renewals saving certificates), it is listed at
#: most this often (seconds): the store's own writes enter the catalogue at once, files
#: written by other programs within this time
RELIST_INTERVAL = 1.0


def check_name(name: str, what: str) -> str:
    """Refuse names that are not plain file names (no path, no hidden files)."""
    if not _NAME.fullmatch(name) or name.endswith(".tmp"):
        raise RpcError(
            "invalid-value",
            f"{what} name {name!r} is not valid: use letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
        )
    return name


def _check_overwrite(what: str, name: str, overwrite: bool) -> None:
    if not overwrite:
        raise RpcError("data-exists", f"{what} {name!r} already exists and may be in use;"
                       " to replace it, import with <overwrite>true</overwrite>"
                       f" (the old one is kept as {name}{PREVIOUS_SUFFIX})")


def fingerprint(der: bytes) -> str:
    """SHA-256 of *der* as colon-separated hex, the way ``openssl -fingerprint`` prints it."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return ":".join(f"{b:02X}" for b in digest.finalize())


@dataclass(frozen=True)
class KeyPairInfo:
    """One entry of the ``config false`` list ``/pki/key-pair``."""

    name: str
    algorithm: Literal["rsa", "ec"]
    key_bits: int
    curve: str | None
    fingerprint: str


@dataclass(frozen=True)
class CertificateInfo:
    """One entry of the ``config false`` list ``/pki/certificate-file``."""

    name: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint: str


def cert_fingerprint(cert: x509.Certificate) -> str:
    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


def describe_key(name: str, key: PrivateKey) -> KeyPairInfo:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(key, rsa.RSAPrivateKey):
        return KeyPairInfo(name, "rsa", key.key_size, None, fingerprint(spki))
    curve = _CURVE_NAMES.get(key.curve.name, key.curve.name)
    return KeyPairInfo(name, "ec", key.curve.key_size, curve, fingerprint(spki))


def generate_key(algorithm: str, key_bits: int = 2048, curve: str = "p256") -> PrivateKey:
    """A fresh key pair: RSA with *key_bits*, or EC on *curve* (p256, p384)."""
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    if algorithm == "ec":
        return ec.generate_private_key(_CURVES[curve]())
    raise RpcError("invalid-value", f"unknown key algorithm {algorithm!r}: use rsa or ec")


class FileMemo(Generic[T]):
    """What was computed from a file, until the file changes (``<get>`` reads
    every store entry; parsing each file every time is wasted work)."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, int, int], T]] = {}

    def get(self, path: Path, compute: Callable[[], T]) -> T:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        hit = self._entries.get(path)
        if hit is None or hit[0] != stamp:
            hit = self._entries[path] = (stamp, compute())
        return hit[1]


class KeyStore:
    """Private keys, one PKCS#8 PEM file per key pair, readable by the agent only."""

    def __init__(self, directory: Path):
        self.directory = directory
        ensure_directory(directory.parent, 0o755)
        ensure_directory(directory, 0o700)
        os.chmod(directory, 0o700)
        self._described: FileMemo[KeyPairInfo] = FileMemo()

    def _path(self, name: str) -> Path:
        return self.directory / f"{check_name(name, 'key pair')}.pem"

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.pem") if _NAME.fullmatch(p.stem))

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def load(self, name: str) -> PrivateKey:
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            raise RpcError(
                "data-missing", f"key pair {name!r} does not exist: create it with key-pair-create"
            ) from None
        # the store holds only keys it generated or checked on import: skip
        # cryptography's costly RSA consistency check (~0.4 s for 4096 bits)
        return serialization.load_pem_private_key(  # type: ignore[return-value]
            data, password=None, unsafe_skip_rsa_key_validation=True
        )

    def save(self, name: str, key: PrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(self._path(name), pem, mode=0o600)

    def import_pem(self, name: str, pem_text: str, overwrite: bool = False) -> PrivateKey:
        """Store a private key given as PEM text (PKCS#8, PKCS#1 or SEC1).

        An existing key pair of that name is replaced only with *overwrite*,
        and kept as ``NAME.previous``.

        An RSA-PSS key (PKCS#8 id-RSASSA-PSS, RFC 4055 1.2) is refused: the store keeps RSA
        key pairs as rsaEncryption (the seed's ``cmp-request rsa local-key-pair``), and
        keeping it so would lift the key's PSS-only restriction; requesting a certificate
        for it would need an id-RSASSA-PSS public key in the certTemplate, which RFC 9483
        does not profile. RSASSA-PSS signatures (RFC 9481 3.1) still come from an RSA key
        whose certificate names id-RSASSA-PSS.
        """
        try:
            key = serialization.load_pem_private_key(pem_text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise RpcError(
                "invalid-value",
                "private-key is not an unencrypted PEM private key"
                f" ({type(exc).__name__}); the key text itself is not logged",
            ) from None
        if is_rsa_pss_key_file(pem_text.encode()):
            raise RpcError(
                "invalid-value",
                "private-key is an RSA-PSS key (id-RSASSA-PSS, RFC 4055), which may sign only"
                " with RSASSA-PSS: the key store holds RSA (rsaEncryption) and EC key pairs, and"
                " storing it as plain RSA would lift that restriction; import an RSA key"
                " (openssl genpkey -algorithm RSA) or create one with key-pair-create",
            )
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise RpcError("invalid-value", "private-key must be an RSA or EC key")
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _CURVE_NAMES:
            raise RpcError("invalid-value", "an EC private-key must be on curve P-256 or P-384")
        if self.exists(name):
            _check_overwrite("key pair", name, overwrite)
            self.save(name + PREVIOUS_SUFFIX, self.load(name))
        self.save(name, key)
        return key

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise RpcError("data-missing", f"key pair {name!r} does not exist") from None
        fsync_directory(self.directory)

    def describe(self, name: str) -> KeyPairInfo:
        """The ``key-pair`` entry of *name*, cached until its file changes."""
        return self._described.get(self._path(name), lambda: describe_key(name, self.load(name)))


def parse_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def encode_certificate(cert: x509.Certificate, file_format: FileFormat) -> bytes:
    encoding = serialization.Encoding.PEM if file_format == "pem" else serialization.Encoding.DER
    return cert.public_bytes(encoding)


def describe_certificate(name: str, cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        name=name,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:X}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=cert_fingerprint(cert),
    )


@dataclass(frozen=True)
class StoredCertificate:
    """One readable certificate file of the store, as read for its inode."""

    name: str
    inode: int
    certificate: x509.Certificate
    #: DER of the subject name (the index key of :class:`CertificatePool`)
    subject: bytes
    authority: bool

    @property
    def pooled(self) -> bool:
        """Whether the file is one of the device's certificates (not a kept ``.previous`` copy)."""
        return not self.name.endswith(PREVIOUS_SUFFIX)

    @classmethod
    def of(cls, name: str, inode: int, cert: x509.Certificate) -> StoredCertificate:
        return cls(name, inode, cert, cert.subject.public_bytes(), may_issue(cert))


@dataclass(frozen=True)
class Catalogue:
    """The certificate store as of one directory listing."""

    #: every readable certificate file, by name
    files: Mapping[str, StoredCertificate]
    #: the files that are not a kept ``.previous`` copy, by subject, and their CA certificates
    #: (sorted by file name): the untrusted certificates of every session, its anchors excepted
    pool: CertificatePool
    #: the names of :attr:`pool`'s files by subject, and of its CA certificates
    names_by_subject: Mapping[bytes, frozenset[str]]
    authority_names: frozenset[str]

    def updated(self, removed: set[tuple[str, int]],
                added: dict[str, StoredCertificate | None]) -> Catalogue:
        """This catalogue with the files of *removed* (name, inode) gone and those of *added*
        read (None: not a certificate); only what they change is indexed again."""
        files = dict(self.files)
        changed: set[str] = set()
        for name, inode in removed:
            if name in files and files[name].inode == inode:
                del files[name]
                changed.add(name)
        for name, record in added.items():
            files.pop(name, None)
            changed.add(name)
            if record is not None:
                files[name] = record
        now = {n: files[n] for n in changed if n in files and files[n].pooled}
        arrived: dict[bytes, set[str]] = {}
        for name, record in now.items():
            arrived.setdefault(record.subject, set()).add(name)
        touched = arrived.keys() | {self.files[n].subject for n in changed if n in self.files}
        names_by_subject = dict(self.names_by_subject)
        by_subject = dict(self.pool.by_subject)
        for key in touched:
            names = (names_by_subject.get(key, frozenset()) - changed) | arrived.get(key, set())
            if names:
                names_by_subject[key] = names
                by_subject[key] = tuple(files[n].certificate for n in sorted(names))
            else:
                names_by_subject.pop(key, None)
                by_subject.pop(key, None)
        authority_names = (self.authority_names - changed) | {
            n for n, r in now.items() if r.authority}
        authorities = self.pool.authorities
        if changed & (self.authority_names | authority_names):
            authorities = tuple(files[n].certificate for n in sorted(authority_names))
        return Catalogue(files, CertificatePool(by_subject, authorities), names_by_subject,
                         authority_names)


EMPTY_CATALOGUE = Catalogue({}, CertificatePool(), {}, frozenset())


class CertificateStore:
    """Certificate files, PEM or DER, named as the operator names them (e.g. ``local.pem``).

    Which files are trust anchors, and why, is kept beside them in ``.trust.json``
    (a hidden file, never listed as a certificate file): file name -> reason and the
    SHA-256 fingerprint of the certificate it vouches for. A file is an anchor only while
    it holds that very certificate: writing a file by any other path (a save, an import
    without ``trust-anchor``, a copy from outside) ends its trust.
    """

    TRUST_FILE = ".trust.json"

    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic):
        self.directory = directory
        ensure_directory(directory, 0o755)  # certificates are public, not writable by others
        self._described: FileMemo[CertificateInfo] = FileMemo()
        self._loaded: FileMemo[x509.Certificate] = FileMemo()
        #: the last listing: (name, inode) of every file, the catalogue read from it, the
        #: directory's (mtime, inode) then, and whether that mtime was already settled
        self._listing: set[tuple[str, int]] = set()
        self._catalogue = EMPTY_CATALOGUE
        self._listed_stamp: tuple[int, int] | None = None
        self._listed_settled = False
        #: (monotonic seconds, from *clock*) before which the directory is not listed again
        self._clock = clock
        self._relist_at = float("-inf")
        self._catalogue_lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.directory / check_name(name, "certificate file")

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.directory.iterdir() if p.is_file() and _NAME.fullmatch(p.name)
        )

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def load(self, name: str) -> x509.Certificate:
        """The certificate in file *name*, parsed once until the file changes."""
        path = self._path(name)
        try:
            return self._loaded.get(path, lambda: self._parse(name, path.read_bytes()))
        except FileNotFoundError:
            raise RpcError(
                "data-missing",
                f"certificate file {name!r} is not in the certificate store:"
                " import it with certificate-import",
            ) from None

    @staticmethod
    def _parse(name: str, data: bytes) -> x509.Certificate:
        try:
            return parse_certificate(data)
        except ValueError:
            raise RpcError(
                "operation-failed", f"certificate file {name!r} is not a PEM or DER certificate"
            ) from None

    def ca_certificates(self) -> tuple[x509.Certificate, ...]:
        """The device's CA certificates: the chain sent with our own certificate.

        Only certificates that say they are a CA (basicConstraints cA) and are
        not a kept ``.previous`` copy (which of them are trust anchors is
        :meth:`anchors`' business, README "Trust model"), sorted by file name.
        """
        return self.catalogue().pool.authorities

    def catalogue(self) -> Catalogue:
        """Every certificate file of the store, indexed (:class:`Catalogue`).

        The directory is listed again only when its modification time changed
        (or was too recent to rule out a change within the same tick, see
        :data:`SETTLED_NS`), at most every :data:`RELIST_INTERVAL` (the store's own
        writes enter at once, :meth:`_noted`), and a file is read only when its inode is
        new: every write here replaces the file by rename, so a device with thousands of
        certificates pays one ``stat`` per request while none changes, and a read of the
        files that did. Whether a file is a CA certificate, and its subject, are judged
        once per inode; the trust anchors are read again whenever asked for
        (:meth:`anchors`), so the catalogue's delay never makes a file an anchor.
        """
        with self._catalogue_lock:
            stat = os.stat(self.directory)
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp == self._listed_stamp and self._listed_settled:
                return self._catalogue
            if self._clock() < self._relist_at:
                return self._catalogue
            self._relist_at = self._clock() + RELIST_INTERVAL
            settled = time.time_ns() - stat.st_mtime_ns > SETTLED_NS
            with os.scandir(self.directory) as entries:
                listing = {(e.name, e.inode()) for e in entries if e.is_file()}
            if listing != self._listing:
                added = {name: self._stored(name, inode) for name, inode in
                         sorted(listing - self._listing) if _NAME.fullmatch(name)}
                self._catalogue = self._catalogue.updated(self._listing - listing, added)
                self._listing = listing
            self._listed_stamp, self._listed_settled = stamp, settled
            return self._catalogue

    def _stored(self, name: str, inode: int) -> StoredCertificate | None:
        try:
            cert = self.load(name)
        except (RpcError, OSError):
            return None  # a file that vanished or is not a certificate
        return StoredCertificate.of(name, inode, cert)

    def _noted(self, name: str, written: x509.Certificate | None) -> None:
        """The store wrote *written* to file *name* (None: what it wrote is not a
        certificate), or removed the file: into the catalogue and :meth:`load`'s memo at
        once, without reading the file back."""
        path = self.directory / name
        with self._catalogue_lock:
            old = self._catalogue.files.get(name)
            removed = {(name, old.inode)} if old is not None else set()
            self._listing -= removed
            try:
                inode = os.stat(path).st_ino
                if written is not None:
                    self._loaded.get(path, lambda: written)
            except FileNotFoundError:
                added = {}
            else:
                self._listing.add((name, inode))
                added = {name: None if written is None else StoredCertificate.of(name, inode, written)}
            self._catalogue = self._catalogue.updated(removed, added)

    def save(
        self, name: str, cert: x509.Certificate, file_format: FileFormat,
        anchor: AnchorReason | None = None,
    ) -> None:
        """Write *cert* to *name*; it is a trust anchor afterwards only if *anchor* says why."""
        path = self._path(name)
        registry = self.trust_registry()
        if anchor is None and name in registry:  # no longer vouched for, even if the write fails
            del registry[name]
            self._write_trust(registry)
        atomic_write(path, encode_certificate(cert, file_format), mode=0o644)
        self._noted(name, cert)
        entry = {"trust": anchor, "fingerprint": cert_fingerprint(cert)}
        if anchor is not None and registry.get(name) != entry:
            registry[name] = entry
            self._write_trust(registry)

    def anchor_for(self, name: str, cert: x509.Certificate) -> AnchorReason | None:
        """Why *name* is a trust anchor for exactly *cert*, if it is one."""
        return self.trust_of(name, cert_fingerprint(cert), self.trust_registry())

    def displaces_anchor(self, name: str, cert: x509.Certificate) -> bool:
        """Whether writing *cert* to *name* would replace a trust anchor by another certificate."""
        registry = self.trust_registry()
        return name in registry and self.trust_of(name, cert_fingerprint(cert), registry) is None

    # -- trust ---------------------------------------------------------------------

    def trust_registry(self) -> dict[str, dict[str, str]]:
        """The anchors' file names -> reason and fingerprint (read once, pass to :meth:`trust_of`)."""
        try:
            data = json.loads((self.directory / self.TRUST_FILE).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # never guess trust: say so
            raise RpcError(
                "operation-failed",
                f"the trust anchor list {self.TRUST_FILE} of the certificate store is unreadable"
                f" ({exc}); re-import the trust anchors with certificate-import trust-anchor true",
            ) from None
        return data if isinstance(data, dict) else {}

    def _write_trust(self, registry: dict[str, dict[str, str]]) -> None:
        atomic_write(
            self.directory / self.TRUST_FILE,
            json.dumps(registry, indent=1, sort_keys=True).encode(), mode=0o644,
        )

    @staticmethod
    def trust_of(name: str, cert_fingerprint: str,
                 registry: dict[str, dict[str, str]]) -> AnchorReason | None:
        """Why the file *name*, holding the certificate with *cert_fingerprint*, is a
        trust anchor, or None if it is not."""
        entry = registry.get(name)
        if entry and entry.get("fingerprint") == cert_fingerprint:
            return entry.get("trust")  # type: ignore[return-value]
        return None

    def certificates(self) -> list[tuple[str, x509.Certificate, AnchorReason | None]]:
        """Every readable certificate file: (name, certificate, why it is an anchor or None)."""
        registry = self.trust_registry()
        anchors = dict(self._vouched(registry, sorted(registry)))
        return [(name, *anchors.get(name, (record.certificate, None)))
                for name, record in sorted(self.catalogue().files.items())]

    def anchors(self) -> tuple[x509.Certificate, ...]:
        """The certificates the trust registry vouches for (not a kept ``.previous`` copy),
        sorted by file name: each file read again if it changed, so that a file rewritten
        by any other way is no anchor (README "Trust model")."""
        registry = self.trust_registry()
        return tuple(cert for _, (cert, _) in self._vouched(
            registry, sorted(n for n in registry if not n.endswith(PREVIOUS_SUFFIX))))

    def _vouched(self, registry: dict[str, dict[str, str]], names: list[str]
                 ) -> list[tuple[str, tuple[x509.Certificate, AnchorReason]]]:
        out = []
        for name in names:
            try:
                cert = self.load(name)
            except (RpcError, OSError):
                continue  # a file that vanished or is not a certificate
            why = self.trust_of(name, cert_fingerprint(cert), registry)
            if why is not None:
                out.append((name, (cert, why)))
        return out

    def import_data(self, name: str, data: str, overwrite: bool = False,
                    trust_anchor: bool = False) -> x509.Certificate:
        """Store a certificate given as PEM text or base64 DER, in that encoding; as a
        trust anchor (``anchor-imported``) if *trust_anchor*, else as untrusted.

        An existing file of that name is replaced only with *overwrite*, and
        kept as ``NAME.previous``.

        Only the certificate itself is written: anything else pasted with it
        (another block, a private key) never reaches the public store. A certificate
        whose extensions are not DER is refused (:func:`agent.cmp.pool.not_der`).
        """
        text = data.strip()
        try:
            if text.startswith("-----BEGIN"):
                cert = x509.load_pem_x509_certificate(text.encode())
                file_format: FileFormat = "pem"
            else:
                cert = x509.load_der_x509_certificate(
                    base64.b64decode("".join(text.split()), validate=True)
                )
                file_format = "der"
        except (ValueError, binascii.Error):
            raise RpcError(
                "invalid-value", "data is neither a PEM certificate nor a base64 DER certificate"
            ) from None
        refusal = not_der(cert, "trust anchor" if trust_anchor else "certificate")
        if refusal is not None:  # path validation would refuse it, as anchor or intermediate
            raise RpcError("invalid-value", refusal)
        if self.exists(name):
            _check_overwrite("certificate file", name, overwrite)
            old = self._path(name)
            kept = old.read_bytes()
            atomic_write(old.with_name(old.name + PREVIOUS_SUFFIX), kept, mode=0o644)
            try:
                previous = parse_certificate(kept)
            except ValueError:
                previous = None  # kept all the same
            self._noted(name + PREVIOUS_SUFFIX, previous)
        self.save(name, cert, file_format, "anchor-imported" if trust_anchor else None)
        return cert

    def delete(self, name: str) -> None:
        path = self._path(name)
        registry = self.trust_registry()
        if name in registry:
            del registry[name]
            self._write_trust(registry)
        try:
            path.unlink()
        except FileNotFoundError:
            raise RpcError("data-missing", f"certificate file {name!r} does not exist") from None
        self._noted(name, None)
        fsync_directory(self.directory)

    def describe(self, name: str) -> CertificateInfo:
        """The ``certificate-file`` entry of *name*, cached until its file changes."""
        return self._described.get(
            self._path(name), lambda: describe_certificate(name, self.load(name))
        )

    def encoding_of(self, name: str, default: FileFormat) -> FileFormat:
        """The encoding a file of this name gets: its extension's, else *default*."""
        suffix = Path(name).suffix.lower()
        return "der" if suffix in (".der", ".cer") else "pem" if suffix in (".pem", ".crt") else default


@dataclass(frozen=True)
class Revocation:
    """A certificate the CA revoked at our request (``certificate-file/revocation``)."""

    reason: str  # CRLReason name (RFC 5280 5.3.1)
    time: datetime


class RevocationMarks:
    """Which certificates were revoked by ``cmp-revocation-request``: one JSON file beside
    the certificate store, keyed by the certificate's fingerprint, so that a file later
    replaced by a new certificate is not shown as revoked."""

    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def mark(self, cert: x509.Certificate, reason: str, time: datetime) -> None:
        marks = self._read()
        marks[fingerprint(cert.public_bytes(serialization.Encoding.DER))] = {
            "reason": reason, "time": time.isoformat()}
        atomic_write(self.path, json.dumps(marks, indent=1).encode(), mode=0o644)

    def all(self) -> dict[str, Revocation]:
        """Fingerprint -> revocation."""
        return {fp: Revocation(v["reason"], datetime.fromisoformat(v["time"]))
                for fp, v in self._read().items()}
