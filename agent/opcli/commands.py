"""The vendor's PKI commands (configuration guide "Applying for and Updating a
Local Certificate in Online Mode Using CMPv2"), each with the operations it
becomes on the cmp-agent-pki model.

Every command is declared by its syntax exactly as the guide writes it (see
:mod:`agent.opcli.grammar`) and by the views it is valid in. Its action gets
the :class:`~agent.opcli.shell.Shell` and the :class:`~agent.opcli.grammar.Match`
and returns the steps to run: :class:`~agent.opcli.operations.Operation` or
messages for the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .grammar import Element, Match, expand
from .operations import ClearStatistics, CmpRequest, Commit, GetStatistics, pki_node

if TYPE_CHECKING:
    from .shell import Shell, Step

USER, SYSTEM, SESSION, ENTITY = "user", "system", "session", "entity"
CONFIG_VIEWS = frozenset({SYSTEM, SESSION, ENTITY})
ALL_VIEWS = frozenset({USER}) | CONFIG_VIEWS

Action = Callable[["Shell", Match], "list[Step]"]


@dataclass(frozen=True)
class Command:
    """One command: the guide's syntax, the views it is valid in, what it does."""

    syntax: str
    views: frozenset[str]
    action: Action
    paths: tuple[tuple[Element, ...], ...]
    #: the action asks whether there are uncommitted changes (the runner checks them first)
    reads_changes: bool = False


COMMANDS: list[Command] = []


def command(syntax: str, *views: str | frozenset[str],
            reads_changes: bool = False) -> Callable[[Action], Action]:
    """Register *action* for *syntax* in *views*."""
    flat = frozenset(v for view in views for v in ([view] if isinstance(view, str) else view))

    def register(action: Action) -> Action:
        COMMANDS.append(Command(syntax, flat, action, tuple(expand(syntax)), reads_changes))
        return action

    return register


def commands_of(view: str) -> list[tuple[Command, tuple[Element, ...]]]:
    """(command, path) pairs valid in *view*, for the matcher."""
    return [(c, p) for c in COMMANDS if view in c.views for p in c.paths]


#: ``?`` help of the keywords
KEYWORD_HELP = {
    "system-view": "Enter the system view",
    "display": "Display information",
    "quit": "Exit from the current view",
    "return": "Return to the user view",
    "commit": "Commit the candidate configuration",
    "undo": "Negate a command or set its default",
    "reset": "Reset operation",
    "pki": "Public key infrastructure",
    "file-format": "File format in which certificates are stored",
    "der": "DER (binary) files",
    "pem": "PEM (text) files",
    "cmp": "Certificate Management Protocol version 2",
    "session": "CMP session",
    "entity": "PKI entity",
    "statistics": "Statistics",
    "initial-request": "Initial certificate request (IR)",
    "certificate-request": "Certificate request (CR)",
    "keyupdate-request": "Key update request (KUR)",
    "cmp-request": "CMP request parameters",
    "ca-name": "CA name",
    "server": "CMPv2 server",
    "url": "CMPv2 server URL",
    "esc": "The URL is written with \\xHH escapes (\\x3f for ?)",
    "rsa": "RSA",
    "local-key-pair": "Key pair of the requested certificate",
    "regenerate": "Generate a new key pair on automatic update",
    "source": "Source of the TCP connection to the CMPv2 server",
    "interface": "Source interface",
    "integrity-algorithm": "MAC algorithm protecting CMP messages",
    "hmac-sha256": "HMAC-SHA256",
    "hmac-sha1": "HMAC-SHA1 (weak)",
    "verification-cert": "CA certificate that verifies the server's signature",
    "origin-authentication-method": "How requests are authenticated",
    "message-authentication-code": "Message authentication code",
    "signature": "Signature",
    "authentication-cert": "Certificate carried in requests for authentication",
    "certificate": "Local certificate",
    "auto-update": "Automatic certificate update",
    "enable": "Enable",
    "update": "Certificate update",
    "expire-time": "Update time, in percent of the validity period",
    "common-name": "Common name (CN)",
    "country": "Country code (C)",
    "state": "State or province (ST)",
    "locality": "Locality (L)",
    "organization": "Organization (O)",
    "organization-unit": "Organization unit (OU)",
    "email": "E-mail address",
    "fqdn": "Fully qualified domain name",
    "ip-address": "IP address",
}


# --- views ----------------------------------------------------------------------------
@command("system-view", USER)
def _system_view(sh: Shell, m: Match) -> list[Step]:
    sh.enter(SYSTEM)
    return ["Enter system view, return user view with return command."]


@command("quit", ALL_VIEWS)
def _quit(sh: Shell, m: Match) -> list[Step]:
    sh.leave()
    return []


@command("return", CONFIG_VIEWS)
def _return(sh: Shell, m: Match) -> list[Step]:
    sh.enter(USER)
    return []


@command("commit", CONFIG_VIEWS)
def _commit(sh: Shell, m: Match) -> list[Step]:
    return [Commit()]


@command("display pki cmp statistics [ session SESSION-NAME ]", ALL_VIEWS)
def _display(sh: Shell, m: Match) -> list[Step]:
    return [GetStatistics(m.get("SESSION-NAME"))]


@command("reset pki cmp statistics [ session SESSION-NAME ]", USER, SYSTEM)
def _reset(sh: Shell, m: Match) -> list[Step]:
    return [ClearStatistics(m.get("SESSION-NAME"))]


# --- system view ----------------------------------------------------------------------
@command("pki file-format { der | pem }", SYSTEM)
def _file_format(sh: Shell, m: Match) -> list[Step]:
    return [sh.edit(pki_node("pki", pki_node("file-format", text="der" if "der" in m else "pem")))]


@command("undo pki file-format [ der | pem ]", SYSTEM)
def _undo_file_format(sh: Shell, m: Match) -> list[Step]:
    return [sh.edit(pki_node("pki", pki_node("file-format", operation="remove")))]


@command("pki cmp session SESSION-NAME", SYSTEM)
def _session_view(sh: Shell, m: Match) -> list[Step]:
    name = m["SESSION-NAME"]
    sh.enter(SESSION, name)
    return [sh.edit_session(name)]


@command("undo pki cmp session SESSION-NAME", SYSTEM)
def _undo_session(sh: Shell, m: Match) -> list[Step]:
    name = m["SESSION-NAME"]
    return [sh.edit(pki_node("pki", pki_node("cmp-session", pki_node("name", text=name),
                                             operation="remove")), session=name)]


@command("pki entity ENTITY-NAME", SYSTEM)
def _entity_view(sh: Shell, m: Match) -> list[Step]:
    name = m["ENTITY-NAME"]
    sh.enter(ENTITY, name)
    return [sh.edit_entity(name)]


@command("undo pki entity ENTITY-NAME", SYSTEM)
def _undo_entity(sh: Shell, m: Match) -> list[Step]:
    return [sh.edit(pki_node("pki", pki_node("entity", pki_node("name", text=m["ENTITY-NAME"]),
                                             operation="remove")))]


@command("pki cmp { initial-request | certificate-request | keyupdate-request } "
         "session SESSION-NAME", SYSTEM, reads_changes=True)
def _request(sh: Shell, m: Match) -> list[Step]:
    kind = next(k for k in ("initial-request", "certificate-request", "keyupdate-request") if k in m)
    return sh.request(CmpRequest(kind, m["SESSION-NAME"]))


# --- CMP session view -----------------------------------------------------------------
def _session_leaf(leaf: str, value_of: Callable[[Match], str]) -> Action:
    def set_leaf(sh: Shell, m: Match) -> list[Step]:
        return [sh.edit_session(sh.view_object, pki_node(leaf, text=value_of(m)))]

    return set_leaf


def _session_remove(*path: str) -> Action:
    """Remove the node at *path* in the session (undo: back to the default)."""

    def remove(sh: Shell, m: Match) -> list[Step]:
        node = pki_node(path[-1], operation="remove")
        for outer in reversed(path[:-1]):
            node = pki_node(outer, node)
        return [sh.edit_session(sh.view_object, node)]

    return remove


command("cmp-request entity ENTITY-NAME", SESSION)(
    _session_leaf("entity", lambda m: m["ENTITY-NAME"]))
command("undo cmp-request entity [ ENTITY-NAME ]", SESSION)(_session_remove("entity"))
command("cmp-request ca-name CA-NAME", SESSION)(_session_leaf("ca-name", lambda m: m["CA-NAME"]))
command("undo cmp-request ca-name [ CA-NAME ]", SESSION)(_session_remove("ca-name"))


@command("cmp-request server url [ esc ] URL", SESSION)
def _server_url(sh: Shell, m: Match) -> list[Step]:
    url = pki_node("server-url", pki_node("url", text=m["URL"]),
                   pki_node("esc", text="true" if "esc" in m else "false"), operation="replace")
    return [sh.edit_session(sh.view_object, url)]


command("undo cmp-request server url [ [ esc ] URL ]", SESSION)(_session_remove("server-url"))


@command("cmp-request rsa local-key-pair KEY-NAME [ regenerate [ KEY-BITS ] ]", SESSION)
def _local_key_pair(sh: Shell, m: Match) -> list[Step]:
    children = [pki_node("name", text=m["KEY-NAME"])]
    if "regenerate" in m:
        children.append(pki_node("regenerate", text="true"))
        if m.get("KEY-BITS"):
            children.append(pki_node("key-bits", text=m["KEY-BITS"]))
    return [sh.edit_session(sh.view_object,
                            pki_node("local-key-pair", *children, operation="replace"))]


command("undo cmp-request rsa local-key-pair [ KEY-NAME ]", SESSION)(
    _session_remove("local-key-pair"))


@command("source { interface IFTYPE [ IFNUM ] | IP-ADDRESS }", SESSION)
def _source(sh: Shell, m: Match) -> list[Step]:
    if "interface" in m:
        node = pki_node("source-interface", text=m["IFTYPE"] + m.get("IFNUM", ""))
    else:
        node = pki_node("source-address", text=m["IP-ADDRESS"])
    return [sh.edit_session(sh.view_object, node)]


@command("undo source [ interface IFTYPE [ IFNUM ] | IP-ADDRESS ]", SESSION)
def _undo_source(sh: Shell, m: Match) -> list[Step]:
    return [sh.edit_session(sh.view_object, pki_node("source-interface", operation="remove"),
                            pki_node("source-address", operation="remove"))]


command("cmp-request integrity-algorithm { hmac-sha256 | hmac-sha1 }", SESSION)(_session_leaf(
    "integrity-algorithm", lambda m: "hmac-sha1" if "hmac-sha1" in m else "hmac-sha256"))
command("undo cmp-request integrity-algorithm [ hmac-sha256 | hmac-sha1 ]", SESSION)(
    _session_remove("integrity-algorithm"))
command("cmp-request verification-cert CERT-FILE", SESSION)(
    _session_leaf("verification-cert", lambda m: m["CERT-FILE"]))
command("undo cmp-request verification-cert [ CERT-FILE ]", SESSION)(
    _session_remove("verification-cert"))
command("cmp-request origin-authentication-method { message-authentication-code | signature }",
        SESSION)(_session_leaf("origin-authentication-method",
                               lambda m: "signature" if "signature" in m
                               else "message-authentication-code"))
command("undo cmp-request origin-authentication-method "
        "[ message-authentication-code | signature ]", SESSION)(
    _session_remove("origin-authentication-method"))


@command("cmp-request message-authentication-code REFERENCE [ SECRET ]", SESSION)
def _mac(sh: Shell, m: Match) -> list[Step]:
    children = [pki_node("reference-value", text=m["REFERENCE"])]
    if m.get("SECRET"):
        children.append(pki_node("secret-value", text=m["SECRET"]))
    return [sh.edit_session(sh.view_object, pki_node("message-authentication-code", *children))]


command("undo cmp-request message-authentication-code [ REFERENCE ]", SESSION)(
    _session_remove("message-authentication-code"))
command("cmp-request authentication-cert CERT-FILE", SESSION)(
    _session_leaf("authentication-cert", lambda m: m["CERT-FILE"]))
command("undo cmp-request authentication-cert [ CERT-FILE ]", SESSION)(
    _session_remove("authentication-cert"))


@command("certificate auto-update enable", SESSION)
def _auto_update(sh: Shell, m: Match) -> list[Step]:
    return [sh.edit_session(sh.view_object,
                            pki_node("auto-update", pki_node("enabled", text="true")))]


command("undo certificate auto-update enable", SESSION)(_session_remove("auto-update", "enabled"))


@command("certificate update expire-time PERCENT", SESSION)
def _expire_time(sh: Shell, m: Match) -> list[Step]:
    return [sh.edit_session(sh.view_object,
                            pki_node("auto-update", pki_node("expire-time", text=m["PERCENT"])))]


command("undo certificate update expire-time [ PERCENT ]", SESSION)(
    _session_remove("auto-update", "expire-time"))


# --- PKI entity view (the guide's preconfiguration) -----------------------------------
def _entity_commands(leaf: str, param: str) -> None:
    def set_leaf(sh: Shell, m: Match) -> list[Step]:
        return [sh.edit_entity(sh.view_object, pki_node(leaf, text=m[param]))]

    def remove(sh: Shell, m: Match) -> list[Step]:
        return [sh.edit_entity(sh.view_object, pki_node(leaf, operation="remove"))]

    command(f"{leaf} {param}", ENTITY)(set_leaf)
    command(f"undo {leaf}", ENTITY)(remove)


for _leaf, _param in (("common-name", "TEXT"), ("country", "COUNTRY"), ("state", "TEXT"),
                      ("locality", "TEXT"), ("organization", "TEXT"),
                      ("organization-unit", "TEXT"), ("email", "TEXT"), ("fqdn", "FQDN"),
                      ("ip-address", "IP-ADDRESS")):
    _entity_commands(_leaf, _param)
