"""NACM (RFC 8341) in the server, with a restricted second user next to the admin.

The operator ``oper`` is in group ``operators`` whose rule-list lets them
write PKI entities and one session's CA name, and denies them
``clear-statistics`` and the ``cmp-session-result`` notification; the rest is
the module's defaults (read permit, write deny, exec permit) and the model's
``default-deny-all`` / ``default-deny-write`` marks.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import shutil
import subprocess

from lxml import etree

from agent.datastore import Datastores, SecretBox
from agent.datastore.changes import diff
from agent.datastore.steps import run_steps
from agent.model import IETF_DIR, YANG_DIR
from agent.netconf.errors import RpcError
from agent.netconf.nacm import NACM_NS, Nacm, bootstrap
from agent.netconf.server import NetconfServer
from memory_server import NC
from memory_server import MemoryClient as Client

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NS = {"nc": NC, "p": PKI, "n": NACM_NS}

OPERATOR_RULES = f"""
<nacm xmlns="{NACM_NS}">
  <groups><group><name>operators</name><user-name>oper</user-name></group></groups>
  <rule-list>
    <name>operators</name><group>operators</group>
    <rule><name>entities</name><module-name>cmp-agent-pki</module-name>
      <path xmlns:pki="{PKI}">/pki:pki/pki:entity</path>
      <access-operations>create update delete</access-operations><action>permit</action></rule>
    <rule><name>s1-ca</name><module-name>cmp-agent-pki</module-name>
      <path>/pki:pki/pki:cmp-session[pki:name='s1']/pki:ca-name</path>
      <access-operations>create update</access-operations><action>permit</action></rule>
    <rule><name>no-clear</name><module-name>cmp-agent-pki</module-name>
      <rpc-name>clear-statistics</rpc-name><action>deny</action></rule>
    <rule><name>no-results</name><module-name>cmp-agent-pki</module-name>
      <notification-name>cmp-session-result</notification-name><action>deny</action></rule>
  </rule-list>
</nacm>"""


def tag(reply: etree._Element) -> str | None:
    return reply.findtext(f".//{{{NC}}}error-tag")


def ok(reply: etree._Element) -> bool:
    return reply.find(f"{{{NC}}}ok") is not None


def edit(body: str, operation: str = "") -> str:
    return (f"<edit-config><target><candidate/></target><config>{body}</config></edit-config>")


def session(name: str, extra: str = "") -> str:
    return f"<pki xmlns='{PKI}'><cmp-session><name>{name}</name>{extra}</cmp-session></pki>"


GET_CONFIG = "<get-config><source><running/></source></get-config>"


async def configure(admin: Client) -> None:
    for body in (OPERATOR_RULES, session("s1", "<message-authentication-code><reference-value>"
                                               "ref</reference-value><secret-value>s3cret"
                                               "</secret-value></message-authentication-code>"),
                 session("s2")):
        assert ok(await admin.rpc(edit(body)))
    assert ok(await admin.rpc("<commit/>"))


def counters(server: NetconfServer) -> tuple[int, int, int]:
    c = server.nacm.counters
    return c.denied_operations, c.denied_data_writes, c.denied_notifications


def test_reads_are_filtered(server):
    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        for request in (GET_CONFIG, "<get/>"):
            mine = await oper.rpc(request)
            assert mine.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1", "s2"]
            assert mine.xpath("//p:reference-value/text()", namespaces=NS) == ["ref"]
            assert not mine.xpath("//p:secret-value", namespaces=NS)  # default-deny-all
            assert not mine.xpath("//n:nacm", namespaces=NS)  # the rules are default-deny-all
            full = await admin.rpc(request)
            assert full.xpath("//p:secret-value/text()", namespaces=NS)[0].startswith("$cmp$")
            assert full.xpath("//n:nacm/n:rule-list/n:name/text()", namespaces=NS) == [
                "admin", "operators"]
        # a filter cannot select what the user may not read, nor test its value
        probe = (f"<get-config><source><running/></source><filter type='xpath' "
                 f"xmlns:p='{PKI}' select='//p:secret-value'/></get-config>")
        assert not (await oper.rpc(probe)).xpath("//p:secret-value", namespaces=NS)
        admin_view = await admin.rpc("<get/>")
        assert admin_view.xpath("//n:nacm/n:denied-operations/text()", namespaces=NS) == ["0"]

    asyncio.run(scenario())


def test_writes_outside_the_rules_are_denied(server):
    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        before = await admin.rpc("<get-config><source><candidate/></source></get-config>")
        for body, denied in (
                (session("s2", "<ca-name>/CN=X</ca-name>"), "/pki:pki/pki:cmp-session"
                                                             "[pki:name='s2']/pki:ca-name"),
                (session("s3"), "/pki:pki/pki:cmp-session[pki:name='s3']"),
                (f"<pki xmlns='{PKI}'><weak-algorithms-enabled>true</weak-algorithms-enabled>"
                 "</pki>", "/pki:pki/pki:weak-algorithms-enabled"),
                (f"<nacm xmlns='{NACM_NS}'><enable-nacm>false</enable-nacm></nacm>",
                 "/nacm:nacm/nacm:enable-nacm")):
            reply = await oper.rpc(edit(body))
            assert tag(reply) == "access-denied", body
            assert reply.findtext(f".//{{{NC}}}error-path").strip() == denied
        assert counters(server) == (0, 4, 0)
        after = await admin.rpc("<get-config><source><candidate/></source></get-config>")
        assert etree.tostring(after[0]) == etree.tostring(before[0])  # nothing applied
        # what the rules permit
        assert ok(await oper.rpc(edit(session("s1", "<ca-name>/CN=Mine</ca-name>"))))
        assert ok(await oper.rpc(edit(f"<pki xmlns='{PKI}'><entity><name>e1</name>"
                                      "<common-name>router</common-name></entity></pki>")))
        assert ok(await oper.rpc("<commit/>"))
        # deleting an entity is permitted; deleting a session is not
        assert ok(await oper.rpc(edit(f"<pki xmlns='{PKI}' xmlns:nc='{NC}'><entity "
                                      "nc:operation='delete'><name>e1</name></entity></pki>")))
        reply = await oper.rpc(edit(f"<pki xmlns='{PKI}' xmlns:nc='{NC}'><cmp-session "
                                    "nc:operation='delete'><name>s2</name></cmp-session></pki>"))
        assert tag(reply) == "access-denied"

    asyncio.run(scenario())


def test_operations_are_denied(server):
    async def clear_statistics(ctx, op):
        return None

    server.register_rpc(PKI, "clear-statistics", clear_statistics)

    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        for request in (f"<kill-session><session-id>{admin.record.session_id}</session-id>"
                        "</kill-session>",                       # default-deny-all (RFC 6241)
                        "<delete-config><target><startup/></target></delete-config>",
                        f"<clear-statistics xmlns='{PKI}'/>"):   # the operators' deny rule
            reply = await oper.rpc(request)
            assert tag(reply) == "access-denied", request
            assert reply.findtext(f".//{{{NC}}}error-type") == "protocol"
        assert counters(server) == (3, 0, 0)
        assert admin.record.session_id in server.sessions
        assert ok(await oper.rpc("<lock><target><candidate/></target></lock>"))  # exec-default
        # the admin's permit-all rule beats default-deny-all
        assert ok(await admin.rpc("<delete-config><target><startup/></target></delete-config>"))
        assert server.nacm.access("admin").bypass
        assert not server.nacm.access("oper").bypass

    asyncio.run(scenario())


def test_notifications_are_filtered(server):
    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        for client in (admin, oper):
            assert ok(await client.rpc(f'<create-subscription xmlns="{NOTIF}"/>'))
        sent = len(admin.transport.sent), len(oper.transport.sent)
        server.notify(etree.Element(f"{{{PKI}}}cmp-session-result"))
        server.notify(etree.Element(f"{{{PKI}}}local-certificate-nearly-expired"))
        assert len(admin.transport.sent) == sent[0] + 2
        assert len(oper.transport.sent) == sent[1] + 1
        assert b"local-certificate-nearly-expired" in oper.transport.sent[-1]
        assert counters(server) == (0, 0, 1)
        reply = await admin.rpc(f"<get><filter><nacm xmlns='{NACM_NS}'/></filter></get>")
        assert reply.xpath("//n:denied-notifications/text()", namespaces=NS) == ["1"]

    asyncio.run(scenario())


def test_recovery_user_and_disabled_nacm_bypass_the_rules(model, tmp_path):
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    bootstrap(datastores)
    server = NetconfServer(model, datastores, nacm=Nacm(model, datastores, recovery_user="root"))

    async def scenario():
        admin, oper, root = Client(server), Client(server, "oper"), Client(server, "root")
        await configure(admin)
        assert ok(await root.rpc(edit(session("s2", "<ca-name>/CN=Root</ca-name>"))))
        assert (await root.rpc(GET_CONFIG)).xpath("//p:secret-value", namespaces=NS)
        assert tag(await oper.rpc(edit(session("s2", "<ca-name>/CN=X</ca-name>")))) \
            == "access-denied"
        assert ok(await admin.rpc(edit(f"<nacm xmlns='{NACM_NS}'><enable-nacm>false"
                                       "</enable-nacm></nacm>")))
        assert ok(await admin.rpc("<commit/>"))
        assert ok(await oper.rpc(edit(session("s2", "<ca-name>/CN=X</ca-name>"))))
        assert (await oper.rpc(GET_CONFIG)).xpath("//p:secret-value", namespaces=NS)

    asyncio.run(scenario())


def test_a_removed_user_may_only_close_the_session(model, tmp_path):
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    bootstrap(datastores)
    users = {"admin": frozenset(), "gone": frozenset({"admin"})}
    server = NetconfServer(model, datastores, nacm=Nacm(model, datastores,
                                                        groups_of=users.get,
                                                        users_version=lambda: len(users)))

    async def scenario():
        gone = Client(server, "gone")
        assert ok(await gone.rpc(edit(session("s9"))))  # external group admin
        del users["gone"]
        assert tag(await gone.rpc(GET_CONFIG)) == "access-denied"
        assert ok(await gone.rpc("<close-session/>"))

    asyncio.run(scenario())


def test_first_start_rules_are_made_once(model, tmp_path):
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    assert bootstrap(datastores)
    names = datastores.get_config("running", "explicit").xpath(
        "//n:rule-list/n:rule/n:name/text()", namespaces=NS)
    assert names == ["permit-all"]
    datastores.edit_config("candidate", etree.fromstring(
        f"<config xmlns='{NC}' xmlns:nc='{NC}'><nacm xmlns='{NACM_NS}' nc:operation='delete'/>"
        "</config>"))
    datastores.commit()
    assert not bootstrap(Datastores(model, tmp_path, SecretBox.open(tmp_path)))


def test_a_state_directory_from_before_nacm_keeps_its_configuration(model, tmp_path):
    """Migration at start: the admin gets the permit-all rules, running keeps its data."""
    (tmp_path / "running.xml").write_text(
        f"<data xmlns='{NC}'><pki xmlns='{PKI}'><cmp-session><name>old</name></cmp-session>"
        "</pki></data>")
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    assert bootstrap(datastores)
    running = datastores.get_config("running", "explicit")
    assert running.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["old"]
    assert running.xpath("//n:group[n:name='admin']/n:user-name/text()", namespaces=NS) == [
        "admin"]
    assert Nacm(model, datastores).access("admin").bypass
    assert b"nacm" in (tmp_path / "running.xml").read_bytes()  # persisted


def test_reordering_the_rule_lists_is_a_write(server):
    """Moving an entry of an ordered-by user list needs update access to it, even
    when every entry stays as it was (here: a copy-config with the lists swapped)."""
    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        data = (await admin.rpc("<get-config><source><running/></source><with-defaults "
                                "xmlns='urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults'>"
                                "explicit</with-defaults></get-config>"))[0]
        nacm = data.find(f"{{{NACM_NS}}}nacm")
        first = nacm.find(f"{{{NACM_NS}}}rule-list")
        nacm.remove(first)
        nacm.append(first)  # operators first, admin second
        swapped = etree.tostring(data).decode().replace("<data", "<config", 1).replace(
            "</data>", "</config>")
        copy = f"<copy-config><target><candidate/></target><source>{swapped}</source></copy-config>"
        reply = await oper.rpc(copy)
        assert tag(reply) == "access-denied"
        assert "rule-list" in reply.findtext(f".//{{{NC}}}error-path")
        assert ok(await admin.rpc(copy))
        reply = await admin.rpc("<get-config><source><candidate/></source></get-config>")
        assert reply.xpath("//n:rule-list/n:name/text()", namespaces=NS) == ["operators", "admin"]

    asyncio.run(scenario())


def test_the_modules_are_in_the_yang_library_and_get_schema(server):
    async def scenario():
        admin = Client(server)
        lib = await admin.rpc("<get><filter><yang-library xmlns='urn:ietf:params:xml:ns:yang:"
                              "ietf-yang-library'/></filter></get>")
        implemented = lib.xpath("//y:module-set/y:module/y:name/text()",
                                namespaces={"y": "urn:ietf:params:xml:ns:yang:ietf-yang-library"})
        assert {"ietf-netconf-acm", "ietf-netconf-notifications"} <= set(implemented)
        for name in ("ietf-netconf-acm", "ietf-netconf-notifications"):
            reply = await admin.rpc(
                "<get-schema xmlns='urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring'>"
                f"<identifier>{name}</identifier></get-schema>")
            assert reply.findtext(
                "{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}data").lstrip().startswith(
                f"module {name}")

    asyncio.run(scenario())


READER_RULES = f"""
<nacm xmlns="{NACM_NS}">
  <groups><group><name>readers</name><user-name>reader</user-name></group></groups>
  <rule-list>
    <name>readers</name><group>readers</group>
    <rule><name>s2-ca</name><module-name>cmp-agent-pki</module-name>
      <path>/pki:pki/pki:cmp-session[pki:name='s2']/pki:ca-name</path>
      <access-operations>read</access-operations><action>permit</action></rule>
    <rule><name>not-s2</name><module-name>cmp-agent-pki</module-name>
      <path>/pki:pki/pki:cmp-session[pki:name='s2']</path>
      <access-operations>read</access-operations><action>deny</action></rule>
    <rule><name>write-all</name><module-name>*</module-name><path>/</path>
      <access-operations>create update delete</access-operations><action>permit</action></rule>
  </rule-list>
</nacm>"""


async def configure_reader(admin: Client) -> None:
    await configure(admin)
    assert ok(await admin.rpc(edit(READER_RULES)))
    assert ok(await admin.rpc("<commit/>"))


def test_an_unreadable_node_hides_its_descendants(server):
    """RFC 8341 section 3.2.4: a node the user may not read goes with all its
    descendants, even one a rule lets them read (s2's ca-name)."""
    async def scenario():
        admin, reader = Client(server), Client(server, "reader")
        await configure_reader(admin)
        assert ok(await admin.rpc(edit(session("s2", "<ca-name>/CN=Two</ca-name>"))))
        assert ok(await admin.rpc("<commit/>"))
        for request in (GET_CONFIG, "<get/>"):
            mine = await reader.rpc(request)
            assert mine.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1"]
            assert not mine.xpath("//p:ca-name[.='/CN=Two']", namespaces=NS)
        assert (await admin.rpc(GET_CONFIG)).xpath("//p:ca-name/text()", namespaces=NS) == [
            "/CN=Two"]

    asyncio.run(scenario())


def test_copy_config_copies_only_what_the_user_may_read(server):
    """RFC 8341 section 3.2.6: what the client may not read of a source datastore
    is not copied (and dropping it from the target needs delete access); saving
    running to startup needs only the right to invoke <copy-config>."""
    async def scenario():
        admin, reader, oper = Client(server), Client(server, "reader"), Client(server, "oper")
        await configure_reader(admin)
        copy = ("<copy-config><target><{target}/></target><source><{source}/></source>"
                "</copy-config>")
        # oper may not read the secret nor delete it: the copy would drop it, refused
        reply = await oper.rpc(copy.format(target="candidate", source="running"))
        assert tag(reply) == "access-denied"
        assert reply.findtext(f".//{{{NC}}}error-path").strip().endswith("pki:secret-value")
        # saving running: no data-node checks, startup gets all of it
        assert ok(await oper.rpc(copy.format(target="startup", source="running")))
        startup = await admin.rpc("<get-config><source><startup/></source></get-config>")
        assert startup.xpath("//p:secret-value", namespaces=NS)
        assert startup.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1", "s2"]
        # reader may write everywhere but not read s2 nor the secret: neither is copied
        assert ok(await reader.rpc(copy.format(target="candidate", source="startup")))
        candidate = await admin.rpc("<get-config><source><candidate/></source></get-config>")
        assert candidate.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1"]
        assert not candidate.xpath("//p:secret-value", namespaces=NS)
        assert candidate.xpath("//p:reference-value/text()", namespaces=NS) == ["ref"]
        # an inline <config> is the client's own: only the write checks apply
        assert ok(await admin.rpc("<discard-changes/>"))
        inline = (f"<copy-config><target><candidate/></target><source><config>"
                  f"{session('s1')}{session('s2')}</config></source></copy-config>")
        assert tag(await oper.rpc(inline)) == "access-denied"

    asyncio.run(scenario())


def test_notifications_show_only_readable_nodes(server):
    """A netconf-config-change keeps the edits whose target the receiver may read
    and is not sent without any; a cmp-session-result of a session the receiver
    may not read is not sent."""
    async def scenario():
        admin, reader = Client(server), Client(server, "reader")
        await configure_reader(admin)
        for client in (admin, reader):
            assert ok(await client.rpc(f'<create-subscription xmlns="{NOTIF}"/>'))

        async def change(body: str) -> tuple[list[str], list[str]]:
            assert ok(await admin.rpc(edit(body)))
            sent = len(admin.transport.sent), len(reader.transport.sent)
            await admin.raw("<commit/>")  # the notification comes before the reply
            while not any(b"<ok/>" in m for m in admin.transport.sent[sent[0]:]):
                await asyncio.sleep(0)
            return [t for m in admin.transport.sent[sent[0]:] for t in targets(m)], \
                   [t for m in reader.transport.sent[sent[1]:] for t in targets(m)]

        seen_by_admin, seen_by_reader = await change(
            session("s1", "<ca-name>/CN=1</ca-name>") + session("s2", "<ca-name>/CN=2</ca-name>"))
        assert seen_by_admin == ["/pki:pki/pki:cmp-session[pki:name='s1']/pki:ca-name",
                                 "/pki:pki/pki:cmp-session[pki:name='s2']/pki:ca-name"]
        assert seen_by_reader == ["/pki:pki/pki:cmp-session[pki:name='s1']/pki:ca-name"]
        before = len(reader.transport.sent)
        seen_by_admin, seen_by_reader = await change(
            session("s2", "<ca-name>/CN=22</ca-name>")
            + session("s1", "<message-authentication-code><secret-value>new"
                            "</secret-value></message-authentication-code>"))
        assert len(seen_by_admin) == 2 and seen_by_reader == []
        assert len(reader.transport.sent) == before  # no notification at all
        assert counters(server)[2] == 0  # the event type was not denied
        # these events name a session by a leafref: only for who may read it
        for kind in ("cmp-session-result", "local-certificate-nearly-expired"):
            for name, expected in (("s1", 1), ("s2", 0)):
                before = len(reader.transport.sent), len(admin.transport.sent)
                event = etree.Element(f"{{{PKI}}}{kind}", nsmap={None: PKI})
                etree.SubElement(event, f"{{{PKI}}}session").text = name
                server.notify(event)
                assert len(reader.transport.sent) == before[0] + expected, (kind, name)
                assert len(admin.transport.sent) == before[1] + 1

    asyncio.run(scenario())


def targets(message: bytes) -> list[str]:
    root = etree.fromstring(message[:-6] if message.endswith(b"]]>]]>") else message)
    return root.xpath("//c:edit/c:target/text()", namespaces={
        "c": "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"})


def test_a_user_in_no_group_gets_only_the_defaults(server):
    """RFC 8341 section 3.4.4 step 5: without a group, no rule-list applies, not even
    one for group "*"."""
    async def scenario():
        admin, lone, oper = Client(server), Client(server, "lone"), Client(server, "oper")
        await configure(admin)
        assert ok(await admin.rpc(edit(f"""<nacm xmlns="{NACM_NS}"><rule-list>
          <name>everyone</name><group>*</group>
          <rule><name>sessions</name><module-name>cmp-agent-pki</module-name>
            <path>/pki:pki/pki:cmp-session</path>
            <access-operations>create update delete</access-operations>
            <action>permit</action></rule></rule-list></nacm>""")))
        assert ok(await admin.rpc("<commit/>"))
        assert ok(await oper.rpc(edit(session("s3"))))  # oper is in a group: "*" applies
        assert tag(await lone.rpc(edit(session("s4")))) == "access-denied"

    asyncio.run(scenario())


def test_rule_paths_keep_the_meaning_of_the_clients_prefixes(server, tmp_path):
    """A path's prefixes are the client's XML namespace declarations (RFC 8341
    section 3.2.3): stored with the modules' own prefixes, so that a rule written
    with any prefix, declared on any ancestor, matches. An unknown prefix is an
    invalid-value; a deny rule whose path cannot be read denies more, not less."""
    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        rules = f"""<nacm xmlns="{NACM_NS}"><rule-list><name>operators</name>
          <rule><name>{{name}}</name><module-name>cmp-agent-pki</module-name>
            <path>{{path}}</path><access-operations>create update delete</access-operations>
            <action>{{action}}</action></rule></rule-list></nacm>"""
        declared = (f"<edit-config><target><candidate/></target><config xmlns:x='{PKI}'>"
                    + rules.format(name="x-sessions", path="/x:pki/x:cmp-session",
                                   action="permit")
                    + "</config></edit-config>")
        assert ok(await admin.rpc(declared))
        assert ok(await admin.rpc("<commit/>"))
        stored = await admin.rpc(GET_CONFIG)
        path = stored.xpath("//n:rule[n:name='x-sessions']/n:path", namespaces=NS)[0]
        assert path.text == "/pki:pki/pki:cmp-session" and path.nsmap["pki"] == PKI
        if shutil.which("yanglint"):  # libyang resolves the value's prefixes in the reply
            (tmp_path / "nacm.xml").write_bytes(etree.tostring(
                stored.find(f"{{{NC}}}data").find(f"{{{NACM_NS}}}nacm")))
            checked = subprocess.run(
                ["yanglint", "-p", str(IETF_DIR), "-t", "config", str(IETF_DIR / "ietf-netconf-acm"
                 ".yang"), str(YANG_DIR / "cmp-agent-pki.yang"), str(tmp_path / "nacm.xml")],
                capture_output=True, text=True, timeout=120)
            assert checked.returncode == 0, checked.stderr
        assert ok(await oper.rpc(edit(session("s7"))))
        reply = await admin.rpc(edit(rules.format(name="bad", path="/y:pki", action="permit")))
        assert tag(reply) == "invalid-value"
        assert "'y'" in reply.findtext(f".//{{{NC}}}error-message")
        assert ok(await admin.rpc("<discard-changes/>"))
        # a deny rule whose path the agent cannot read (a position, not a key)
        assert ok(await admin.rpc(edit(rules.format(
            name="no-reading", path="/pki:pki/pki:cmp-session[1]", action="deny").replace(
            "create update delete", "read"))))
        assert ok(await admin.rpc("<commit/>"))
        assert not (await oper.rpc(GET_CONFIG)).xpath("//p:pki", namespaces=NS)
        assert (await admin.rpc(GET_CONFIG)).xpath("//p:pki", namespaces=NS)  # admin: all

    asyncio.run(scenario())


def test_edit_errors_do_not_tell_whether_an_unreadable_node_exists(server):
    """RFC 8341 section 3.2.5: a create of an existing node, or a delete of a missing
    one, that the user may not read is access-denied, not data-exists/data-missing."""
    async def scenario():
        admin, reader = Client(server), Client(server, "reader")
        await configure_reader(admin)
        create = (f"<pki xmlns='{PKI}' xmlns:nc='{NC}'><cmp-session nc:operation='create'>"
                  "<name>{name}</name></cmp-session></pki>")
        delete = create.replace("'create'", "'delete'")
        assert tag(await admin.rpc(edit(create.format(name="s2")))) == "data-exists"
        before = counters(server)[1]
        reply = await reader.rpc(edit(create.format(name="s2")))
        assert tag(reply) == "access-denied"
        assert "s2" in reply.findtext(f".//{{{NC}}}error-path")
        assert ok(await reader.rpc(edit(delete.format(name="s2"))))  # write-all permits it
        assert tag(await reader.rpc(edit(delete.format(name="s2")))) == "access-denied"
        assert counters(server)[1] == before + 2
        assert tag(await reader.rpc(edit(delete.format(name="s9")))) == "data-missing"
        assert tag(await reader.rpc(edit(create.format(name="s1")))) == "data-exists"

    asyncio.run(scenario())


GET_CANDIDATE = "<get-config><source><candidate/></source></get-config>"


def test_a_commit_needs_write_access_to_what_it_changes(server):
    """RFC 8341 section 3.2.8: the user who commits needs write access to each node
    of running the commit changes, also when another session edited it in the
    shared candidate; the refusal names the node only if the user may read it."""
    async def scenario():
        admin, oper = Client(server), Client(server, "oper")
        await configure(admin)
        running = etree.tostring((await admin.rpc(GET_CONFIG))[0])
        # the admin's uncommitted edit of s2, which oper may read but not write
        assert ok(await admin.rpc(edit(session("s2", "<ca-name>/CN=Admin</ca-name>"))))
        candidate = etree.tostring((await admin.rpc(GET_CANDIDATE))[0])
        before = counters(server)[1]
        for request in ("<commit/>", "<commit><confirmed/></commit>"):
            reply = await oper.rpc(request)
            assert tag(reply) == "access-denied", request
            assert reply.findtext(f".//{{{NC}}}error-path").strip() == (
                "/pki:pki/pki:cmp-session[pki:name='s2']/pki:ca-name")
            assert "discard-changes" in reply.findtext(f".//{{{NC}}}error-message")
        assert counters(server)[1] == before + 2
        assert server.confirm is None
        assert etree.tostring((await admin.rpc(GET_CONFIG))[0]) == running  # untouched
        assert etree.tostring((await admin.rpc(GET_CANDIDATE))[0]) == candidate
        # the access rules are not oper's to read: the refusal does not name them
        assert ok(await admin.rpc(edit(f"<nacm xmlns='{NACM_NS}'><groups><group><name>extra"
                                       "</name><user-name>oper</user-name></group></groups>"
                                       "</nacm>")))
        reply = await oper.rpc("<commit/>")
        assert tag(reply) == "access-denied"
        assert reply.find(f".//{{{NC}}}error-path") is None
        message = reply.findtext(f".//{{{NC}}}error-message")
        assert "nacm" not in message and "extra" not in message and "s2" not in message
        # what oper may change, oper may commit; the admin commits anything
        assert ok(await admin.rpc("<discard-changes/>"))
        assert ok(await oper.rpc(edit(f"<pki xmlns='{PKI}'><entity><name>e1</name>"
                                      "<common-name>router</common-name></entity></pki>")))
        assert ok(await oper.rpc("<commit/>"))
        assert ok(await admin.rpc(edit(session("s2", "<ca-name>/CN=Admin</ca-name>"))))
        assert ok(await admin.rpc("<commit/>"))
        names = (await admin.rpc(GET_CONFIG)).xpath("//p:entity/p:name/text()", namespaces=NS)
        assert names == ["e1"]
        assert (await oper.rpc("<commit/>")).find(f"{{{NC}}}ok") is not None  # nothing to do

    asyncio.run(scenario())


def test_a_commit_checks_only_the_entries_its_change_summary_names(server):
    """The write check of a commit reuses the commit's change summary: list entries
    it does not name are not compared again (a commit of one entry among
    thousands stays cheap), and those it names are."""
    async def scenario():
        admin = Client(server)
        await configure(admin)

    asyncio.run(scenario())
    access = server.nacm.access("oper")
    old = server.datastores.get_config("running", "explicit")
    new = copy.deepcopy(old)
    s2 = new.xpath("//p:cmp-session[p:name='s2']", namespaces=NS)[0]
    etree.SubElement(s2, f"{{{PKI}}}ca-name").text = "/CN=Two"
    new.find(f"{{{PKI}}}pki").append(etree.fromstring(
        f"<entity xmlns='{PKI}'><name>e1</name></entity>"))
    changed = diff(server.datastores.smap, old, new)
    assert {key for _, key in changed.entries} == {("s2",), ("e1",)}
    try:
        run_steps(access.check_write_steps(old, new, changed))
        raise AssertionError("s2's ca-name was not checked")
    except RpcError as exc:
        assert exc.path == "/pki:pki/pki:cmp-session[pki:name='s2']/pki:ca-name"
    only_e1 = dataclasses.replace(changed, entries=frozenset(
        e for e in changed.entries if e[1] == ("e1",)))
    run_steps(access.check_write_steps(old, new, only_e1))  # s2 not compared: no refusal


def test_validation_errors_do_not_name_what_the_user_may_not_read(server):
    """<validate>, <commit> and a test-only <edit-config> of a candidate that is
    invalid in s2, which reader may not read: the error keeps its tag and loses
    the path and what it tells."""
    async def scenario():
        admin, reader = Client(server), Client(server, "reader")
        await configure_reader(admin)
        running = etree.tostring((await admin.rpc(GET_CONFIG))[0])
        assert ok(await admin.rpc(edit(session("s2", "<entity>nope</entity>"))))
        validate = "<validate><source><candidate/></source></validate>"
        test_only = edit(session("s1", "<ca-name>/CN=Mine</ca-name>")).replace(
            "</target>", "</target><test-option>test-only</test-option>")
        for request in (validate, test_only, "<commit/>"):
            mine, full = await reader.rpc(request), await admin.rpc(request)
            assert tag(mine) == tag(full) == "data-missing", request
            assert "s2" in full.findtext(f".//{{{NC}}}error-path")
            assert mine.find(f".//{{{NC}}}error-path") is None
            assert mine.find(f".//{{{NC}}}error-app-tag") is None
            message = mine.findtext(f".//{{{NC}}}error-message")
            assert "s2" not in message and "nope" not in message and "may not read" in message
        assert etree.tostring((await admin.rpc(GET_CONFIG))[0]) == running
        # an error in s1, which reader may read, is shown as it is
        assert ok(await admin.rpc("<discard-changes/>"))
        assert ok(await admin.rpc(edit(session("s1", "<entity>nope</entity>"))))
        mine = await reader.rpc(validate)
        assert tag(mine) == "data-missing"
        assert "s1" in mine.findtext(f".//{{{NC}}}error-path")

    asyncio.run(scenario())
