"""Typed views of the committed (running) PKI configuration, read from the
datastore's raw JSON form (RFC 7951 names; the PKI module's top node is
``cmp-agent-pki:pki``).

The raw form is running's report-all view (RFC 6243 3.1,
:meth:`Datastores.running_raw`), so every leaf with a default in the YANG
module, and every non-presence container holding one, is there: this module
indexes them and repeats none of the model's defaults. ``.get`` is for
what the model leaves without a value."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Literal

from agent import PKI_NS

TOP = "cmp-agent-pki:pki"
#: Clark tags of the ``/pki/cmp-session`` list (for :meth:`Datastores.running_entries`)
SESSION_LIST = (f"{{{PKI_NS}}}pki", f"{{{PKI_NS}}}cmp-session")
RequestType = Literal["ir", "cr", "kur", "p10cr"]


@dataclass(frozen=True)
class Entity:
    """``/pki/entity``: the subject of the requests of the sessions that name it."""

    name: str
    common_name: str | None = None
    country: str | None = None
    state: str | None = None
    locality: str | None = None
    organization: str | None = None
    organization_unit: str | None = None
    email: str | None = None
    fqdn: str | None = None
    ip_address: str | None = None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> "Entity":
        return cls(**{f.replace("-", "_"): v for f, v in raw.items()})


@dataclass(frozen=True)
class SessionConfig:
    """One ``/pki/cmp-session`` with its defaults applied."""

    name: str
    entity: Entity | None
    entity_name: str | None
    ca_name: str | None
    url: str | None
    url_escaped: bool
    key_pair_name: str | None
    regenerate: bool
    #: RSA modulus length of a regenerated (or created) pair; None: keep the old length
    key_bits: int | None
    source_interface: str | None
    source_address: str | None
    integrity_algorithm: Literal[
        "hmac-sha256", "hmac-sha1", "pbmac1-sha256", "pbmac1-sha384", "pbmac1-sha512"
    ]
    #: hash of our signatures; None: the key's default (SHA-256, the curve's for P-384/521)
    digest: Literal["sha256", "sha384", "sha512", "sha1"] | None
    verification_cert: str | None
    ignore_keyusage: bool
    origin_authentication: Literal["message-authentication-code", "signature"]
    mac_reference: str | None
    mac_secret_ciphertext: str | None
    authentication_cert: str | None
    implicit_confirm: bool
    cert_profile: str | None
    auto_update: bool
    expire_percent: int
    message_timeout: int
    #: seconds; 0: no limit (poll as long as the CA asks)
    total_timeout: int
    #: https: certificate files that anchor the CA's TLS certificate (empty: the system's)
    tls_trusted: tuple[str, ...]
    tls_server_name: str | None
    tls_client_cert: str | None
    tls_client_key_pair: str | None

    @classmethod
    def from_raw(cls, raw: dict[str, Any], entities: dict[str, Entity]) -> "SessionConfig":
        url, key, auto, timeouts = (raw["server-url"], raw["local-key-pair"],
                                    raw["auto-update"], raw["timeouts"])
        mac = raw.get("message-authentication-code", {})
        tls = raw.get("tls", {})
        return cls(
            name=raw["name"],
            entity=entities.get(raw.get("entity", "")),
            entity_name=raw.get("entity"),
            ca_name=raw.get("ca-name"),
            url=url.get("url"),
            url_escaped=url["esc"],
            key_pair_name=key.get("name"),
            regenerate=key["regenerate"],
            key_bits=key.get("key-bits"),
            source_interface=raw.get("source-interface"),
            source_address=raw.get("source-address"),
            integrity_algorithm=raw["integrity-algorithm"],
            digest=raw.get("digest"),
            verification_cert=raw.get("verification-cert"),
            ignore_keyusage=raw["ignore-keyusage"],
            origin_authentication=raw["origin-authentication-method"],
            mac_reference=mac.get("reference-value"),
            mac_secret_ciphertext=mac.get("secret-value"),
            authentication_cert=raw.get("authentication-cert"),
            implicit_confirm=raw["implicit-confirm"],
            cert_profile=raw.get("cert-profile"),
            auto_update=auto["enabled"],
            expire_percent=auto["expire-time"],
            message_timeout=timeouts["message-timeout"],
            total_timeout=timeouts["total-timeout"],
            tls_trusted=tuple(tls.get("trusted-cert", ())),
            tls_server_name=tls.get("server-name"),
            tls_client_cert=tls.get("client-cert"),
            tls_client_key_pair=tls.get("client-key-pair"),
        )


@dataclass(frozen=True)
class PkiConfig:
    """The whole committed ``/pki``."""

    file_format: Literal["pem", "der"]
    weak_algorithms_enabled: bool
    sessions: dict[str, SessionConfig]
    entities: dict[str, Entity]

    @classmethod
    def from_raw(cls, root: dict[str, Any]) -> "PkiConfig":
        pki = root[TOP]
        entities = {e["name"]: Entity.from_raw(e) for e in pki.get("entity", [])}
        sessions = {
            s["name"]: SessionConfig.from_raw(s, entities) for s in pki.get("cmp-session", [])
        }
        return cls(
            file_format=pki["file-format"],
            weak_algorithms_enabled=pki["weak-algorithms-enabled"],
            sessions=sessions,
            entities=entities,
        )

    def sessions_authenticating_with(self, certificate_file: str) -> tuple[str, ...]:
        """The sessions whose ``authentication-cert`` is *certificate_file*."""
        return self._by_authentication_cert.get(certificate_file, ())

    @functools.cached_property
    def _by_authentication_cert(self) -> dict[str, tuple[str, ...]]:
        index: dict[str, list[str]] = {}
        for name, session in self.sessions.items():
            if session.authentication_cert:
                index.setdefault(session.authentication_cert, []).append(name)
        return {file: tuple(names) for file, names in index.items()}

    def with_sessions(self, changed: dict[str, dict[str, Any] | None]) -> "PkiConfig":
        """A copy with the cmp-session entries of *changed* (name -> raw entry,
        ``None`` if deleted) replaced; everything else is the same."""
        copied = replace(self, sessions=dict(self.sessions))
        copied.update_sessions(changed)
        return copied

    def update_sessions(self, changed: dict[str, dict[str, Any] | None]) -> None:
        """:meth:`with_sessions` in place: for a configuration no one else holds yet
        (the PKI service's view while it catches up with a commit)."""
        sessions = self.sessions
        for name, raw in changed.items():
            if raw is None:
                sessions.pop(name, None)
            else:
                sessions[name] = SessionConfig.from_raw(raw, self.entities)
        self.__dict__.pop("_by_authentication_cert", None)  # built again when asked
