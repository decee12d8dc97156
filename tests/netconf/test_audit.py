"""The RFC 6470 audit notifications, received by a subscriber of the NETCONF stream."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

from lxml import etree

from agent.netconf.audit import NCN_NS
from memory_server import NC
from memory_server import MemoryClient as Client

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NS = {"n": NCN_NS, "nc": NC}


def edit(name: str) -> str:
    return (f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI}'>"
            f"<cmp-session><name>{name}</name></cmp-session></pki></config></edit-config>")


class Subscriber(Client):
    """A session subscribed to the NETCONF stream; collects the audit events."""

    async def subscribe(self) -> "Subscriber":
        reply = await self.rpc(f'<create-subscription xmlns="{NOTIF}"/>')
        assert reply.find(f"{{{NC}}}ok") is not None
        self.seen = len(self.transport.sent)
        return self

    def events(self) -> list[etree._Element]:
        """The events received since the last call."""
        out = []
        for data in self.transport.sent[self.seen:]:
            root = etree.fromstring(data[:-6])
            if root.tag == f"{{{NOTIF}}}notification":
                out.extend(c for c in root if c.tag.startswith(f"{{{NCN_NS}}}"))
        self.seen = len(self.transport.sent)
        return out


def field(event: etree._Element, path: str) -> list[str]:
    return event.xpath(f"{path}/text()", namespaces=NS)


def test_session_start_and_end(server):
    async def scenario():
        watcher = await Subscriber(server).subscribe()
        a = Client(server, "alice")
        (start,) = watcher.events()
        assert start.tag == f"{{{NCN_NS}}}netconf-session-start"
        assert field(start, "n:username") == ["alice"]
        assert field(start, "n:session-id") == [str(a.record.session_id)]
        assert field(start, "n:source-host") == ["127.0.0.1"]
        b, admin = Client(server, "bob"), Client(server)
        watcher.events()
        await admin.rpc(f"<kill-session><session-id>{b.record.session_id}</session-id>"
                        "</kill-session>")
        (end,) = watcher.events()
        assert field(end, "n:username") == ["bob"]
        assert field(end, "n:termination-reason") == ["killed"]
        assert field(end, "n:killed-by") == [str(admin.record.session_id)]
        await a.rpc("<close-session/>")
        (end,) = watcher.events()
        assert field(end, "n:termination-reason") == ["closed"]
        c = Client(server, "carol")
        c.close()  # the channel went away
        assert field(watcher.events()[-1], "n:termination-reason") == ["dropped"]

    asyncio.run(scenario())


def test_config_change_names_the_user_and_the_paths(server):
    async def scenario():
        watcher = await Subscriber(server).subscribe()
        admin = Client(server)
        await admin.rpc(edit("first"))
        await admin.rpc("<commit/>")  # creates /pki
        watcher.events()
        await admin.rpc(edit("audited"))
        assert watcher.events() == []  # candidate is not audited
        await admin.rpc("<commit/>")
        (change,) = watcher.events()
        assert change.tag == f"{{{NCN_NS}}}netconf-config-change"
        assert field(change, "n:changed-by/n:username") == ["admin"]
        assert field(change, "n:changed-by/n:session-id") == [str(admin.record.session_id)]
        assert field(change, "n:datastore") == ["running"]
        (target,) = change.xpath("n:edit/n:target", namespaces=NS)
        assert target.text == "/pki:pki/pki:cmp-session[pki:name='audited']"
        assert target.nsmap["pki"] == PKI  # an instance-identifier with its prefixes
        assert field(change, "n:edit/n:operation") == ["create"]
        await admin.rpc("<copy-config><target><startup/></target><source><running/></source>"
                        "</copy-config>")
        (change,) = watcher.events()
        assert field(change, "n:datastore") == ["startup"]

    asyncio.run(scenario())


def test_confirmed_commit_events(server):
    async def scenario():
        watcher = await Subscriber(server).subscribe()
        admin = Client(server)
        watcher.events()
        await admin.rpc(edit("trial"))
        await admin.rpc("<commit><confirmed/><confirm-timeout>60</confirm-timeout></commit>")
        change, start = watcher.events()
        assert field(start, "n:confirm-event") == ["start"]
        assert field(start, "n:timeout") == ["60"]
        assert field(start, "n:username") == ["admin"]
        await admin.rpc("<commit/>")
        assert [field(e, "n:confirm-event") for e in watcher.events()] == [["complete"]]
        await admin.rpc(edit("undone"))
        await admin.rpc("<commit><confirmed/></commit>")
        watcher.events()
        await admin.rpc("<cancel-commit/>")
        rollback, cancel = watcher.events()
        assert field(rollback, "n:edit/n:operation") == ["delete"]
        assert field(cancel, "n:confirm-event") == ["cancel"]
        await admin.rpc(edit("expiring"))
        await admin.rpc("<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>")
        watcher.events()
        await server._confirm_timeout("test: the timeout passed")
        rollback, timeout = watcher.events()
        assert rollback.find("n:changed-by/n:server", NS) is not None
        assert field(timeout, "n:confirm-event") == ["timeout"]
        assert field(timeout, "n:username") == []

    asyncio.run(scenario())


def test_events_validate_against_ietf_netconf_notifications(tmp_path):
    """libyang's yanglint checks each event against RFC 6470's module; the
    instance-identifiers of config-change against the configuration they name."""
    from types import SimpleNamespace

    from agent.datastore.changes import ChangeSummary
    from agent.model import IETF_DIR, YANG_DIR
    from agent.netconf import audit

    yanglint = shutil.which("yanglint")
    assert yanglint, "yanglint (Debian libyang2-tools) is a test peer; tools/test installs it"
    user = SimpleNamespace(user="admin", session_id=3, peer_host="192.0.2.7")
    prefixes = lambda path: {"pki": PKI}  # noqa: E731
    changed = ChangeSummary(["/pki:pki/pki:cmp-session[pki:name='a']"],
                            ["/pki:pki/pki:file-format"], [])
    events = [audit.session_start(user), audit.session_end(user, "killed", 2),
              audit.session_end(user, "dropped"),
              audit.config_change(user, "running", changed, prefixes),
              audit.config_change(None, "startup", changed, prefixes),
              audit.confirmed_commit(user, "start", 60), audit.confirmed_commit(None, "timeout")]
    running = tmp_path / "running.xml"
    running.write_text(f"<pki xmlns='{PKI}'><file-format>der</file-format>"
                       "<cmp-session><name>a</name></cmp-session></pki>")
    for index, event in enumerate(events):
        doc = tmp_path / f"event-{index}.xml"
        doc.write_bytes(etree.tostring(event))
        result = subprocess.run(
            [yanglint, "-t", "notif", "-O", str(running), "-p", str(IETF_DIR),
             "-p", str(YANG_DIR), str(IETF_DIR / "ietf-netconf-notifications.yang"),
             str(YANG_DIR / "cmp-agent-pki.yang"), str(doc)],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and not result.stderr, (
            etree.tostring(event).decode() + result.stderr)
