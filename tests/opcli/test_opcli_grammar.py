"""The command parser: every command of the guide, undo forms, errors with positions, help."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.opcli.grammar import ParseError, expand, masked, tokenize
from agent.opcli.interactive import help_lines
from agent.opcli.operations import (
    ClearStatistics,
    CmpRequest,
    Commit,
    EditCandidate,
    GetStatistics,
)
from agent.opcli.runner import parse_error_lines
from agent.opcli.shell import Shell

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def shell_in(view: str) -> Shell:
    sh = Shell()
    setup = {"user": [], "system": ["system-view"],
             "session": ["system-view", "pki cmp session s1"],
             "entity": ["system-view", "pki entity e1"]}[view]
    for line in setup:
        sh.execute(line)
    return sh


def c14n(xml: str | bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(xml, parser), method="c14n")


def edit_of(sh: Shell, line: str) -> bytes:
    """The <pki> subtree of the single edit-config *line* becomes."""
    steps = sh.execute(line)
    assert len(steps) == 1 and isinstance(steps[0], EditCandidate), steps
    body = etree.fromstring(f'<rpc xmlns="{NC}">{steps[0].body()}</rpc>')
    assert body.find(f"{{{NC}}}edit-config/{{{NC}}}target/{{{NC}}}candidate") is not None
    (pki,) = body.find(f"{{{NC}}}edit-config/{{{NC}}}config")
    return c14n(etree.tostring(pki))


def pki(inner: str) -> bytes:
    return c14n(f'<pki xmlns="{PKI}" xmlns:nc="{NC}">{inner}</pki>'.replace(
        f' xmlns:nc="{NC}"', "" if "nc:" not in inner else f' xmlns:nc="{NC}"'))


def session(inner: str) -> bytes:
    return pki(f"<cmp-session><name>s1</name>{inner}</cmp-session>")


# --- the syntax notation -----------------------------------------------------------------
def test_the_guides_notation_expands_to_every_form():
    paths = expand("cmp-request rsa local-key-pair KEY-NAME [ regenerate [ KEY-BITS ] ]")
    assert [[getattr(e, "word", None) or e.name for e in p] for p in paths] == [
        ["cmp-request", "rsa", "local-key-pair", "KEY-NAME"],
        ["cmp-request", "rsa", "local-key-pair", "KEY-NAME", "regenerate"],
        ["cmp-request", "rsa", "local-key-pair", "KEY-NAME", "regenerate", "KEY-BITS"],
    ]
    assert len(expand("source { interface IFTYPE [ IFNUM ] | IP-ADDRESS }")) == 3


def test_quoted_words_keep_their_blanks():
    toks = tokenize('cmp-request ca-name "/C=CN/CN=A CA"')
    assert [t.text for t in toks] == ["cmp-request", "ca-name", "/C=CN/CN=A CA"]
    assert toks[2].quoted and toks[2].start == 20


# --- every configuration command of the guide, and its undo form ---------------------
SESSION_COMMANDS = [
    ("cmp-request entity e1", "<entity>e1</entity>"),
    ("undo cmp-request entity", '<entity nc:operation="remove"/>'),
    ("undo cmp-request entity e1", '<entity nc:operation="remove"/>'),
    ('cmp-request ca-name "/C=CN/O=Example/CN=Example CA"',
     "<ca-name>/C=CN/O=Example/CN=Example CA</ca-name>"),
    ("cmp-request ca-name /C=CN/O=Example/CN=Example CA",
     "<ca-name>/C=CN/O=Example/CN=Example CA</ca-name>"),
    ("undo cmp-request ca-name", '<ca-name nc:operation="remove"/>'),
    ("cmp-request server url http://192.0.2.10:8080/pkix/",
     '<server-url nc:operation="replace"><url>http://192.0.2.10:8080/pkix/</url>'
     "<esc>false</esc></server-url>"),
    ("cmp-request server url esc http://192.0.2.10/a%20b",
     '<server-url nc:operation="replace"><url>http://192.0.2.10/a%20b</url>'
     "<esc>true</esc></server-url>"),
    ("undo cmp-request server url", '<server-url nc:operation="remove"/>'),
    ("cmp-request rsa local-key-pair rsa1",
     '<local-key-pair nc:operation="replace"><name>rsa1</name></local-key-pair>'),
    ("cmp-request rsa local-key-pair rsa1 regenerate",
     '<local-key-pair nc:operation="replace"><name>rsa1</name><regenerate>true</regenerate>'
     "</local-key-pair>"),
    ("cmp-request rsa local-key-pair rsa1 regenerate 3072",
     '<local-key-pair nc:operation="replace"><name>rsa1</name><regenerate>true</regenerate>'
     "<key-bits>3072</key-bits></local-key-pair>"),
    ("undo cmp-request rsa local-key-pair", '<local-key-pair nc:operation="remove"/>'),
    ("source interface GigabitEthernet0/0/1",
     "<source-interface>GigabitEthernet0/0/1</source-interface>"),
    ("source interface GigabitEthernet 0/0/1",
     "<source-interface>GigabitEthernet0/0/1</source-interface>"),
    ("source 192.0.2.1", "<source-address>192.0.2.1</source-address>"),
    ("source 2001:db8::1", "<source-address>2001:db8::1</source-address>"),
    ("undo source", '<source-interface nc:operation="remove"/>'
                    '<source-address nc:operation="remove"/>'),
    ("cmp-request integrity-algorithm hmac-sha256",
     "<integrity-algorithm>hmac-sha256</integrity-algorithm>"),
    ("cmp-request integrity-algorithm hmac-sha1",
     "<integrity-algorithm>hmac-sha1</integrity-algorithm>"),
    ("undo cmp-request integrity-algorithm", '<integrity-algorithm nc:operation="remove"/>'),
    ("cmp-request verification-cert ca.pem", "<verification-cert>ca.pem</verification-cert>"),
    ("undo cmp-request verification-cert", '<verification-cert nc:operation="remove"/>'),
    ("cmp-request origin-authentication-method message-authentication-code",
     "<origin-authentication-method>message-authentication-code</origin-authentication-method>"),
    ("cmp-request origin-authentication-method signature",
     "<origin-authentication-method>signature</origin-authentication-method>"),
    ("undo cmp-request origin-authentication-method",
     '<origin-authentication-method nc:operation="remove"/>'),
    ("cmp-request message-authentication-code 1234 cmp-secret",
     "<message-authentication-code><reference-value>1234</reference-value>"
     "<secret-value>cmp-secret</secret-value></message-authentication-code>"),
    ("cmp-request message-authentication-code 1234",
     "<message-authentication-code><reference-value>1234</reference-value>"
     "</message-authentication-code>"),
    ("undo cmp-request message-authentication-code",
     '<message-authentication-code nc:operation="remove"/>'),
    ("cmp-request authentication-cert s1-local.pem",
     "<authentication-cert>s1-local.pem</authentication-cert>"),
    ("undo cmp-request authentication-cert", '<authentication-cert nc:operation="remove"/>'),
    ("certificate auto-update enable", "<auto-update><enabled>true</enabled></auto-update>"),
    ("undo certificate auto-update enable",
     '<auto-update><enabled nc:operation="remove"/></auto-update>'),
    ("certificate update expire-time 60", "<auto-update><expire-time>60</expire-time></auto-update>"),
    ("undo certificate update expire-time",
     '<auto-update><expire-time nc:operation="remove"/></auto-update>'),
]


@pytest.mark.parametrize("line,expected", SESSION_COMMANDS, ids=[c[0] for c in SESSION_COMMANDS])
def test_session_view_commands_become_candidate_edits(line, expected):
    sh = shell_in("session")
    assert edit_of(sh, line) == session(expected)
    assert sh.dirty_sessions == {"s1"}
    assert sh.view == "session"


ENTITY_COMMANDS = [
    ("common-name router1", "<common-name>router1</common-name>"),
    ("country CN", "<country>CN</country>"),
    ("state Some State", "<state>Some State</state>"),
    ("locality Shenzhen", "<locality>Shenzhen</locality>"),
    ("organization Example Inc", "<organization>Example Inc</organization>"),
    ("organization-unit Network Ops", "<organization-unit>Network Ops</organization-unit>"),
    ("email noc@example.net", "<email>noc@example.net</email>"),
    ("fqdn router1.example.net", "<fqdn>router1.example.net</fqdn>"),
    ("ip-address 192.0.2.1", "<ip-address>192.0.2.1</ip-address>"),
    ("undo common-name", '<common-name nc:operation="remove"/>'),
    ("undo fqdn", '<fqdn nc:operation="remove"/>'),
]


@pytest.mark.parametrize("line,expected", ENTITY_COMMANDS, ids=[c[0] for c in ENTITY_COMMANDS])
def test_entity_view_commands_become_candidate_edits(line, expected):
    sh = shell_in("entity")
    assert edit_of(sh, line) == pki(f"<entity><name>e1</name>{expected}</entity>")
    assert sh.dirty_global


SYSTEM_COMMANDS = [
    ("pki file-format der", "<file-format>der</file-format>"),
    ("pki file-format pem", "<file-format>pem</file-format>"),
    ("undo pki file-format", '<file-format nc:operation="remove"/>'),
    ("undo pki cmp session s2", '<cmp-session nc:operation="remove"><name>s2</name></cmp-session>'),
    ("undo pki entity e2", '<entity nc:operation="remove"><name>e2</name></entity>'),
]


@pytest.mark.parametrize("line,expected", SYSTEM_COMMANDS, ids=[c[0] for c in SYSTEM_COMMANDS])
def test_system_view_commands_become_candidate_edits(line, expected):
    assert edit_of(shell_in("system"), line) == pki(expected)


def test_views_prompts_quit_and_return():
    sh = Shell()
    assert sh.prompt == "<cmp-agent>"
    assert sh.execute("system-view") == ["Enter system view, return user view with return command."]
    assert sh.prompt == "[cmp-agent]"
    assert edit_of(sh, "pki cmp session s1") == session("")
    assert sh.prompt == "[cmp-agent-pki-cmp-session-s1]"
    sh.execute("quit")
    assert sh.prompt == "[cmp-agent]"
    assert edit_of(sh, "pki entity e1") == pki("<entity><name>e1</name></entity>")
    assert sh.prompt == "[cmp-agent-pki-entity-e1]"
    sh.execute("return")
    assert sh.prompt == "<cmp-agent>"
    sh.execute("system-view")
    sh.execute("quit")
    assert sh.prompt == "<cmp-agent>" and not sh.finished
    sh.execute("quit")
    assert sh.finished


def test_requests_display_reset_and_commit():
    sh = shell_in("system")
    for kind in ("initial-request", "certificate-request", "keyupdate-request"):
        (req,) = sh.execute(f"pki cmp {kind} session s1")
        assert isinstance(req, CmpRequest) and req.session == "s1"
        body = etree.fromstring(req.body())
        assert body.tag == f"{{{PKI}}}cmp-{kind}"
        assert body.findtext(f"{{{PKI}}}session-name") == "s1"
    (get,) = sh.execute("display pki cmp statistics session s1")
    assert isinstance(get, GetStatistics) and get.session == "s1"
    assert c14n(f'<rpc xmlns="{NC}">{get.body()}</rpc>') == c14n(
        f'<rpc xmlns="{NC}"><get><filter type="subtree"><pki xmlns="{PKI}"><cmp-session>'
        "<name>s1</name><statistics/></cmp-session></pki></filter></get></rpc>")
    (get,) = sh.execute("display pki cmp statistics")
    assert get.session is None and b"cmp-statistics" in c14n(f'<r xmlns="{NC}">{get.body()}</r>')
    (clear,) = sh.execute("reset pki cmp statistics session s1")
    assert isinstance(clear, ClearStatistics)
    assert c14n(clear.body()) == c14n(
        f'<clear-statistics xmlns="{PKI}"><session-name>s1</session-name></clear-statistics>')
    assert c14n(sh.execute("reset pki cmp statistics")[0].body()) == c14n(
        f'<clear-statistics xmlns="{PKI}"/>')
    (commit,) = sh.execute("commit")
    assert isinstance(commit, Commit) and commit.body() == "<commit/>"


def test_display_works_in_every_view_and_keywords_may_be_shortened():
    for view in ("user", "system", "session", "entity"):
        (get,) = shell_in(view).execute("dis pki cmp stat ses s1")
        assert isinstance(get, GetStatistics) and get.session == "s1"
    sh = Shell()
    sh.execute("sys")
    assert sh.view == "system"
    assert edit_of(sh, "PKI FILE-FORMAT DER") == pki("<file-format>der</file-format>")


# --- the guide's order: requests before commit -----------------------------------------
def test_a_request_on_an_uncommitted_session_waits_for_the_next_commit():
    sh = shell_in("session")
    sh.execute("cmp-request entity e1")
    sh.execute("quit")
    steps = sh.execute("pki cmp initial-request session s1")
    assert steps == ["Info: Session s1 has uncommitted configuration: the CMP initial request (IR)"
                     " will be sent after the next commit."]
    assert [r.session for r in sh.waiting] == ["s1"]
    # another session without edits runs at once
    (now,) = sh.execute("pki cmp certificate-request session s9")
    assert isinstance(now, CmpRequest) and now.session == "s9"
    (commit,) = sh.execute("commit")
    assert isinstance(commit, Commit)
    after = sh.commit_succeeded()
    assert after[0] == "Info: Sending the CMP initial request (IR) of session s1 that waited for this commit."
    assert isinstance(after[1], CmpRequest) and after[1].kind == "initial-request"
    assert not sh.waiting and not sh.uncommitted
    # committed: the next request runs at once
    (req,) = sh.execute("pki cmp keyupdate-request session s1")
    assert isinstance(req, CmpRequest)


def test_only_edits_that_change_the_configuration_are_uncommitted():
    """Entering an existing session's view, or writing what is there already, changes
    nothing (as on the device): the agent's candidate and running say so."""
    sh = shell_in("session")
    sh.execute("quit")
    assert sh.uncommitted  # not known yet: the edit may have created s1
    assert c14n(etree.tostring(sh.pending_filter())) == session("")
    existing = f'<pki xmlns="{PKI}"><cmp-session><name>s1</name><ca-name>/CN=CA</ca-name>' \
               "<auto-update><enabled>true</enabled><expire-time>60</expire-time></auto-update>" \
               "</cmp-session></pki>"
    reordered = existing.replace("<enabled>true</enabled><expire-time>60</expire-time>",
                                 "<expire-time>60</expire-time><enabled>true</enabled>")
    sh.checked(etree.fromstring(reordered), etree.fromstring(existing))
    assert not sh.uncommitted and sh.pending_filter() is None
    (req,) = sh.execute("pki cmp keyupdate-request session s1")
    assert isinstance(req, CmpRequest)
    # a real change stays one, and so does one the agent was not asked about since
    sh.execute("pki entity e1")
    sh.execute("quit")
    sh.execute("pki file-format der")
    assert c14n(etree.tostring(sh.pending_filter())) == pki(
        "<entity><name>e1</name></entity><file-format/>")
    sh.checked(etree.fromstring(f'<pki xmlns="{PKI}"><file-format>der</file-format>'
                                "<entity><name>e1</name></entity></pki>"),
               etree.fromstring(f'<pki xmlns="{PKI}"><entity><name>e1</name></entity></pki>'))
    assert sh.changed == {(None, "file-format", None)} and sh.dirty_global
    sh.execute("pki cmp session s1")
    assert sh.dirty_sessions == {"s1"}
    assert sh.execute("quit") == [] and sh.execute(
        "pki cmp keyupdate-request session s1")[0].startswith("Info: Session s1 has uncommitted")
    # set, then undone: the same as running again
    sh.execute("undo pki file-format")
    sh.checked(etree.fromstring(existing.replace("/CN=CA", "/CN=Other CA")),
               etree.fromstring(existing))
    assert sh.changed == {("s1", "cmp-session", "s1")}


def test_entity_or_file_format_edits_hold_back_every_request():
    sh = shell_in("system")
    sh.execute("pki file-format der")
    assert sh.execute("pki cmp initial-request session s5")[0].startswith("Info: Session s5 has")


# --- errors, with the position of the fault --------------------------------------------
ERRORS = [
    ("system", "pki cmp sesion s1", "Unrecognized command", 8),
    ("system", "pki cmp", "Incomplete command", 8),
    ("system", "pki file-format", "Incomplete command", 16),
    ("system", "pki file-format gif", "Unrecognized command", 16),
    ("system", "pki file-format der extra", "Too many parameters", 20),
    ("system", "pki cmp initial-request session", "Incomplete command", 32),
    ("system", "cmp-request entity e1", "Unrecognized command", 0),
    ("session", "cmp-request rsa local-key-pair rsa1 regenerate 1024", "Wrong parameter", 47),
    ("session", "cmp-request integrity-algorithm md5", "Unrecognized command", 32),
    ("session", "certificate update expire-time 5", "Wrong parameter", 31),
    ("session", "source 300.1.1.1", "Wrong parameter", 7),
    ("session", "cmp-request", "Incomplete command", 12),
    ("session", "c entity e1", "Ambiguous command", 0),
    ("session", "cmp-request a", "Incomplete command", 14),
    ("session", "cmp-request ca-name \"/C=CN", "Unrecognized command", 20),
    ("session", "undo cmp-request entity e1 e2", "Too many parameters", 27),
    ("entity", "country china", "Wrong parameter", 8),
    ("user", "pki file-format der", "Unrecognized command", 0),
    ("user", "commit", "Unrecognized command", 0),
]


@pytest.mark.parametrize("view,line,kind,position", ERRORS, ids=[e[1] for e in ERRORS])
def test_faults_are_reported_like_the_device_with_their_position(view, line, kind, position):
    sh = shell_in(view)
    with pytest.raises(ParseError) as err:
        sh.execute(line)
    assert err.value.kind == kind
    assert err.value.position == position
    assert err.value.message == f"Error: {kind} found at '^' position."


def test_the_caret_points_at_the_fault_under_the_prompt():
    sh = shell_in("system")
    with pytest.raises(ParseError) as err:
        sh.execute("pki cmp sesion s1")
    assert parse_error_lines(sh.prompt, "pki cmp sesion s1", err.value) == [
        "[cmp-agent]pki cmp sesion s1",
        "                   ^",
        "Error: Unrecognized command found at '^' position.",
    ]
    # interactive: the line is on the screen already
    assert parse_error_lines(sh.prompt, "pki cmp sesion s1", err.value, echo=False)[0] == \
        "                   ^"


def test_secrets_are_masked_when_a_line_is_shown_back():
    sh = shell_in("session")
    line = "cmp-request message-authentication-code 1234 cmp-secret"
    found = sh.parse(line)
    assert masked(line, found) == "cmp-request message-authentication-code 1234 **********"
    with pytest.raises(ParseError) as err:
        sh.execute(line + " extra")
    assert "cmp-secret" not in err.value.detail and err.value.detail.endswith("********** extra")


@pytest.mark.parametrize("secret", ["s" * 256, '"cmp secret' + "s" * 250 + '"'])
def test_a_secret_refused_by_its_own_check_is_masked_when_shown_back(secret):
    """The fault is the secret itself (longer than 255): the error display must not echo it."""
    sh = shell_in("session")
    line = f"cmp-request message-authentication-code 1234 {secret}"
    with pytest.raises(ParseError) as err:
        sh.execute(line)
    assert err.value.kind == ParseError.WRONG_PARAMETER
    shown = "\n".join(parse_error_lines(sh.prompt, line, err.value))
    assert "sss" not in shown and "*" * len(secret) in shown


def test_an_unterminated_quote_shows_the_line_back_with_a_secret_masked():
    """The line is echoed (not the words "unterminated quotation mark"), the caret at the
    quote; a secret whose closing quote was forgotten stays masked to the end of the line."""
    sh = shell_in("system")
    line = 'pki cmp session "s1'
    with pytest.raises(ParseError) as err:
        sh.execute(line)
    assert parse_error_lines(sh.prompt, line, err.value) == [
        "[cmp-agent]" + line,
        " " * len("[cmp-agent]pki cmp session ") + "^",
        "Error: Unrecognized command found at '^' position.",
    ]
    session = shell_in("session")
    line = 'cmp-request message-authentication-code 1234 "cmp secret'
    with pytest.raises(ParseError) as err:
        session.execute(line)
    shown = "\n".join(parse_error_lines(session.prompt, line, err.value))
    assert "secret" not in shown
    assert shown.startswith(session.prompt + "cmp-request message-authentication-code 1234 " + "*" * 11)
    assert err.value.position == line.index('"')


# --- ? help and completion ---------------------------------------------------------------
def test_help_lists_what_may_follow():
    sh = shell_in("system")
    assert [h.label for h in sh.help("pki ")] == ["cmp", "entity", "file-format"]
    assert [h.label for h in sh.help("pki f")] == ["file-format"]
    assert [h.label for h in sh.help("pki file-format ")] == ["der", "pem"]
    assert [h.label for h in sh.help("pki file-format der ")] == ["<cr>"]
    assert [h.label for h in sh.help("pki cmp session ")] == ["STRING<1-64>"]
    assert help_lines(sh.help("pki ")) == [
        "  cmp          Certificate Management Protocol version 2",
        "  entity       PKI entity",
        "  file-format  File format in which certificates are stored",
    ]
    assert sh.help("nonsense ") == []
    assert [h.label for h in sh.help("pki cmp session s1")] == ["STRING<1-64>"]
    session = shell_in("session")
    labels = [h.label for h in session.help("cmp-request rsa local-key-pair rsa1 ")]
    assert labels == ["regenerate", "<cr>"]
    assert "cmp-request" in [h.label for h in session.help("")]
    assert [h.label for h in session.help("cmp-request server url ")] == ["esc", "STRING<1-255>"]


@pytest.mark.parametrize("line", [
    "cmp-request message-authentication-code 1234 cmp-secret",
    "cmp-request message-authentication-code 1234 cmp-secret extra",   # refused after it
    "cmp-request message-authentication-code 1234 cmp-secret" + "s" * 250,  # refused at it
    'cmp-request message-authentication-code 1234 "cmp-secret',  # its quote left open
])
def test_the_readline_history_keeps_secrets_masked(line):
    readline = pytest.importorskip("readline")
    from agent.opcli.interactive import _mask_history

    readline.clear_history()
    readline.add_history(line)
    _mask_history(shell_in("session"), line, readline)
    kept = readline.get_history_item(readline.get_current_history_length())
    readline.clear_history()
    assert "cmp-secret" not in kept and kept.startswith(
        "cmp-request message-authentication-code 1234 ****")
