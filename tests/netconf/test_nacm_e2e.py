"""Access control and users end to end: ``cmp-agent user`` on the state directory of a
running agent, a restricted second user over ncclient and real SSH (RFC 8341), and
the RFC 6470 audit notifications a subscriber receives."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import asyncssh
import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import AuthenticationError

from nc_helpers import NC_NS, PKI_NS, connect, session_config

NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
NS = {"p": PKI_NS, "n": NACM_NS, "ncn": NCN_NS}

OPERATOR_RULES = f"""<config xmlns="{NC_NS}"><nacm xmlns="{NACM_NS}"><rule-list>
  <name>operators</name><group>operators</group>
  <rule><name>entities</name><module-name>cmp-agent-pki</module-name>
    <path xmlns:pki="{PKI_NS}">/pki:pki/pki:entity</path>
    <access-operations>create update delete</access-operations><action>permit</action></rule>
  <rule><name>no-config-changes</name><module-name>ietf-netconf-notifications</module-name>
    <notification-name>netconf-config-change</notification-name><action>deny</action></rule>
</rule-list></nacm></config>"""


def user(agent, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    """``cmp-agent user ...`` on the agent's state directory."""
    return subprocess.run([sys.executable, "-m", "agent", "user", *args,
                           "--state-dir", str(agent.state_dir)],
                          input=None if password is None else password + "\n",
                          capture_output=True, text=True, timeout=60)


def commit(m, config: str) -> None:
    m.discard_changes()
    m.edit_config(target="candidate", config=config)
    m.commit()


def events(m, until: Callable[[list[etree._Element]], bool],
           seconds: float = 30.0) -> list[etree._Element]:
    """The RFC 6470 events that arrive until *until* holds for them (or *seconds* pass:
    no timing asserts). An absence is shown by a later event the receiver hears: the
    agent sends a session's notifications in order."""
    found: list[etree._Element] = []
    deadline = time.monotonic() + seconds
    while not until(found) and (left := deadline - time.monotonic()) > 0:
        note = m.take_notification(block=True, timeout=left)
        if note is None:
            break
        root = etree.fromstring(note.notification_xml.encode())
        found.extend(c for c in root if isinstance(c.tag, str) and c.tag.startswith(f"{{{NCN_NS}}}"))
    return found


def of_kind(kind: str, count: int = 1) -> Callable[[list[etree._Element]], bool]:
    """Until *count* events of *kind* (e.g. ``netconf-config-change``) have arrived."""
    return lambda found: sum(e.tag == f"{{{NCN_NS}}}{kind}" for e in found) >= count


def error_tag(exc: pytest.ExceptionInfo) -> str:
    return exc.value.tag


def test_restricted_user_over_ssh(start_agent):
    agent = start_agent("--recovery-user", "rescue")
    added = user(agent, "add", "oper", "--group", "operators", "--password-stdin",
                 password="oper-pass-1")
    assert added.returncode == 0, added.stderr
    listed = user(agent, "list").stdout
    assert "admin\tgroups: admin\tlogin: password\tnacm: admin" in listed
    assert "oper\tgroups: operators\tlogin: password" in listed
    assert (agent.state_dir / "users").stat().st_mode & 0o777 == 0o600
    with connect(agent) as admin:
        commit(admin, OPERATOR_RULES)
        commit(admin, session_config(
            "s1", ca_name="/CN=CA",
            message_authentication_code="<reference-value>r1</reference-value>"
                                        "<secret-value>top-secret</secret-value>"))
        admin.create_subscription()
        with connect(agent, "oper", "oper-pass-1") as oper:
            oper.create_subscription()
            # reads: the secret and the access rules are not theirs to see
            for reply in (oper.get_config("running"), oper.get()):
                data = etree.fromstring(reply.data_xml.encode())
                assert data.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1"]
                assert not data.xpath("//p:secret-value", namespaces=NS)
                assert not data.xpath("//n:nacm", namespaces=NS)
            full = etree.fromstring(admin.get_config("running").data_xml.encode())
            assert full.xpath("//p:secret-value", namespaces=NS)
            # writes and operations outside the rules
            oper.discard_changes()
            with pytest.raises(RPCError) as exc:
                oper.edit_config(target="candidate", config=session_config("s1", ca_name="/CN=X"))
            assert error_tag(exc) == "access-denied"
            for name in ("key-pair-delete", "certificate-delete"):  # default-deny-all
                with pytest.raises(RPCError) as exc:
                    oper.dispatch(etree.fromstring(
                        f'<{name} xmlns="{PKI_NS}"><name>k1</name></{name}>'))
                assert error_tag(exc) == "access-denied"
            with pytest.raises(RPCError) as exc:
                oper.dispatch(etree.fromstring(
                    f'<kill-session xmlns="{NC_NS}"><session-id>{admin.session_id}'
                    "</session-id></kill-session>"))
            assert error_tag(exc) == "access-denied"
            # what the rules permit
            oper.edit_config(target="candidate", config=(
                f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><entity><name>e1</name>'
                "<common-name>router</common-name></entity></pki></config>"))
            oper.commit()
            # notifications: the admin hears the operator's commit, the operator does not
            changes = [e for e in events(admin, of_kind("netconf-config-change"))
                       if e.tag == f"{{{NCN_NS}}}netconf-config-change"]
            assert changes and changes[-1].xpath("ncn:changed-by/ncn:username/text()",
                                                 namespaces=NS) == ["oper"]
            assert changes[-1].xpath("ncn:edit/ncn:target/text()", namespaces=NS) == [
                "/pki:pki/pki:entity[pki:name='e1']"]
            with connect(agent):  # a session oper hears start and end of, after the commit
                pass
            heard = events(oper, of_kind("netconf-session-end"))
            assert [e.tag for e in heard][-2:] == [f"{{{NCN_NS}}}netconf-session-start",
                                                   f"{{{NCN_NS}}}netconf-session-end"]
            assert not [e for e in heard if e.tag == f"{{{NCN_NS}}}netconf-config-change"]
            counters = etree.fromstring(admin.get(filter=(
                "subtree", f'<nacm xmlns="{NACM_NS}"/>')).data_xml.encode())
            assert [int(counters.findtext(f".//{{{NACM_NS}}}{name}")) for name in (
                "denied-operations", "denied-data-writes")] == [3, 1]
            assert int(counters.findtext(f".//{{{NACM_NS}}}denied-notifications")) >= 1
            # a new password, effective at once; the old one fails and is logged
            assert user(agent, "passwd", "oper", "--password-stdin",
                        password="oper-pass-2").returncode == 0
            with pytest.raises(AuthenticationError):
                connect(agent, "oper", "oper-pass-1")
            log = (agent.state_dir / "agent.log").read_text()
            assert "password authentication failed for user 'oper' from 127.0.0.1" in log
            with connect(agent, "oper", "oper-pass-2") as again:
                assert again.get_config("running").ok
            # removed: no new login, and the open session may only close
            assert user(agent, "del", "oper").returncode == 0
            with pytest.raises(AuthenticationError):
                connect(agent, "oper", "oper-pass-2")
            with pytest.raises(RPCError) as exc:
                oper.get_config("running")
            assert error_tag(exc) == "access-denied"

        def oper_from_localhost(found: list[etree._Element]) -> bool:
            return any(e.tag in (f"{{{NCN_NS}}}netconf-session-start",
                                 f"{{{NCN_NS}}}netconf-session-end")
                       and e.findtext(f"{{{NCN_NS}}}username") == "oper"
                       and e.findtext(f"{{{NCN_NS}}}source-host") == "127.0.0.1" for e in found)

        assert oper_from_localhost(events(admin, oper_from_localhost))
    # the recovery user bypasses NACM: no group, yet it may write
    assert user(agent, "add", "rescue", "--password-stdin", password="rescue-pass").returncode == 0
    with connect(agent, "rescue", "rescue-pass") as rescue:
        commit(rescue, session_config("s1", ca_name="/CN=Recovered"))
        assert "top-secret" not in rescue.get_config("running").data_xml  # ciphertext only
        assert "secret-value" in rescue.get_config("running").data_xml


def test_admin_password_change_removes_the_first_password_file(fresh_agent):
    initial = fresh_agent.state_dir / "initial-admin-password"
    old = fresh_agent.password
    changed = user(fresh_agent, "passwd", "admin", "--password-stdin", password="new-admin-pw")
    assert changed.returncode == 0, changed.stderr
    assert not initial.exists()
    with pytest.raises(AuthenticationError):
        connect(fresh_agent, "admin", old)
    with connect(fresh_agent, "admin", "new-admin-pw") as m:
        assert m.get_config("running").ok


def test_user_command_errors_are_clear(agent, tmp_path):
    assert "exists" in user(agent, "add", "admin", "--password-stdin", password="x").stderr
    assert "no user" in user(agent, "passwd", "nobody", "--password-stdin", password="x").stderr
    assert "no user" in user(agent, "del", "nobody").stderr
    bad_key = tmp_path / "key.pub"
    bad_key.write_text("not a key\n")
    result = user(agent, "add", "keyed", "--ssh-key", str(bad_key))
    assert result.returncode == 1 and "not OpenSSH public keys" in result.stderr
    result = user(agent, "add", "keyed", "--ssh-key", str(tmp_path / "missing.pub"))
    assert result.returncode == 1
    assert f"--ssh-key: cannot read {tmp_path / 'missing.pub'}: No such file" in result.stderr
    result = user(agent, "add", "-bad", "--password-stdin", password="x")
    assert result.returncode != 0
    assert "keyed" not in user(agent, "list").stdout


def test_a_user_with_only_a_public_key(agent, tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(key.export_private_key())
    (tmp_path / "id").chmod(0o600)
    (tmp_path / "id.pub").write_bytes(key.export_public_key())
    added = user(agent, "add", "keyed", "--group", "admin", "--ssh-key", str(tmp_path / "id.pub"))
    assert added.returncode == 0, added.stderr
    assert "keyed\tgroups: admin\tlogin: ssh-key" in user(agent, "list").stdout
    assert (agent.state_dir / "authorized_keys" / "keyed").stat().st_mode & 0o777 == 0o600
    with manager.connect(host="127.0.0.1", port=agent.port, username="keyed",
                         key_filename=str(tmp_path / "id"), hostkey_verify=False,
                         look_for_keys=False, allow_agent=False, timeout=30) as m:
        commit(m, session_config("by-key", ca_name="/CN=K"))  # group admin: permit-all
    with pytest.raises(AuthenticationError):
        connect(agent, "keyed", "")  # no password login


AUDITOR_RULES = f"""<config xmlns="{NC_NS}" xmlns:x="{PKI_NS}"><nacm xmlns="{NACM_NS}"><rule-list>
  <name>auditors</name><group>auditors</group>
  <rule><name>not-s2</name><module-name>cmp-agent-pki</module-name>
    <path>/x:pki/x:cmp-session[x:name='s2']</path>
    <access-operations>read</access-operations><action>deny</action></rule>
  <rule><name>write-all</name><module-name>*</module-name><path>/</path>
    <access-operations>create update delete</access-operations><action>permit</action></rule>
</rule-list></nacm></config>"""


def test_a_restricted_user_cannot_reach_what_it_may_not_read_or_trust(start_agent):
    """Issue 9's gaps closed, over SSH with two restricted users: <copy-config>
    copies only what the client may read (RFC 8341 section 3.2.6); config-change
    notifications name only readable nodes; the RPCs that change the device's
    trust or revoke its certificate need an explicit rule."""
    agent = start_agent()
    for name, group in (("oper", "operators"), ("auditor", "auditors")):
        added = user(agent, "add", name, "--group", group, "--password-stdin",
                     password=f"{name}-pass-1")
        assert added.returncode == 0, added.stderr
    with connect(agent) as admin:
        commit(admin, OPERATOR_RULES)
        commit(admin, AUDITOR_RULES)
        commit(admin, session_config(
            "s1", message_authentication_code="<reference-value>r1</reference-value>"
                                              "<secret-value>top-secret</secret-value>"))
        commit(admin, session_config("s2", ca_name="/CN=Two"))
        admin.copy_config(source="running", target="startup")
        with connect(agent, "oper", "oper-pass-1") as oper, \
                connect(agent, "auditor", "auditor-pass-1") as auditor:
            # copy-config: the secret oper may not read would be dropped from candidate
            oper.discard_changes()
            with pytest.raises(RPCError) as exc:
                oper.copy_config(source="running", target="candidate")
            assert error_tag(exc) == "access-denied"
            # the auditor may write all but not read s2 nor the secret: neither is copied
            auditor.copy_config(source="startup", target="candidate")
            candidate = etree.fromstring(admin.get_config("candidate").data_xml.encode())
            assert candidate.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1"]
            assert not candidate.xpath("//p:secret-value", namespaces=NS)
            mine = etree.fromstring(auditor.get_config("candidate").data_xml.encode())
            assert mine.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1"]
            admin.discard_changes()
            # notifications: the auditor hears of s1's change, not of s2's
            admin.create_subscription()
            auditor.create_subscription()
            commit(admin, f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><cmp-session>'
                          "<name>s1</name><ca-name>/CN=One</ca-name></cmp-session><cmp-session>"
                          "<name>s2</name><ca-name>/CN=Deux</ca-name></cmp-session></pki></config>")
            commit(admin, session_config("s2", ca_name="/CN=Zwei"))
            commit(admin, session_config("s1", ca_name="/CN=Uno"))  # the last, heard by both

            def targets(m, count: int) -> list[list[str]]:
                return [e.xpath("ncn:edit/ncn:target/text()", namespaces=NS)
                        for e in events(m, of_kind("netconf-config-change", count))
                        if e.tag == f"{{{NCN_NS}}}netconf-config-change"]

            s1, s2 = ("/pki:pki/pki:cmp-session[pki:name='s1']/pki:ca-name",
                      "/pki:pki/pki:cmp-session[pki:name='s2']/pki:ca-name")
            assert targets(admin, 3) == [[s1, s2], [s2], [s1]]
            assert targets(auditor, 2) == [[s1], [s1]]  # nothing of s2 before s1's last change
            # trust and revocation: default-deny-all; a general request stays open
            for request in (
                    f"<certificate-import xmlns='{PKI_NS}'><name>evil.pem</name><data>x</data>"
                    "<trust-anchor>true</trust-anchor></certificate-import>",
                    f"<cmp-revocation-request xmlns='{PKI_NS}'><session-name>s1</session-name>"
                    "<certificate-file>device.pem</certificate-file></cmp-revocation-request>"):
                for restricted in (oper, auditor):
                    with pytest.raises(RPCError) as exc:
                        restricted.dispatch(etree.fromstring(request))
                    assert error_tag(exc) == "access-denied", request
            with pytest.raises(RPCError) as exc:
                oper.dispatch(etree.fromstring(
                    f"<cmp-general-request xmlns='{PKI_NS}'><session-name>nope</session-name>"
                    "<info-type>ca-certs</info-type></cmp-general-request>"))
            assert error_tag(exc) != "access-denied"
            with pytest.raises(RPCError) as exc:
                admin.dispatch(etree.fromstring(
                    f"<certificate-import xmlns='{PKI_NS}'><name>evil.pem</name><data>x</data>"
                    "</certificate-import>"))
            assert error_tag(exc) == "invalid-value"  # the admin's rule permits it: bad data


def test_a_restricted_user_commits_only_what_it_may_write(start_agent):
    """RFC 8341 section 3.2.8 over SSH with two restricted users sharing the
    candidate: oper may not commit the auditor's uncommitted edit of a session
    (nothing changes), commits its own entity, and neither the admin nor the
    recovery user is held back; a validation error in s2, which the auditor may
    not read, reaches the auditor without its path."""
    agent = start_agent("--recovery-user", "rescue")
    for name, group in (("oper", "operators"), ("auditor", "auditors")):
        added = user(agent, "add", name, "--group", group, "--password-stdin",
                     password=f"{name}-pass-1")
        assert added.returncode == 0, added.stderr
    assert user(agent, "add", "rescue", "--password-stdin", password="rescue-pass").returncode == 0
    with connect(agent) as admin, connect(agent, "oper", "oper-pass-1") as oper, \
            connect(agent, "auditor", "auditor-pass-1") as auditor, \
            connect(agent, "rescue", "rescue-pass") as rescue:
        commit(admin, OPERATOR_RULES)
        commit(admin, AUDITOR_RULES)
        commit(admin, session_config("s1", ca_name="/CN=One"))
        commit(admin, session_config("s2", ca_name="/CN=Two"))

        def ca_names(datastore: str) -> list[str]:
            data = etree.fromstring(admin.get_config(datastore).data_xml.encode())
            return data.xpath("//p:cmp-session/p:ca-name/text()", namespaces=NS)

        # the auditor's edit waits in the shared candidate; oper may not commit it
        auditor.edit_config(target="candidate", config=session_config("s1", ca_name="/CN=Aud"))
        for confirmed in (False, True):
            with pytest.raises(RPCError) as exc:
                oper.commit(confirmed=confirmed)
            assert error_tag(exc) == "access-denied"
            assert exc.value.path.strip() == "/pki:pki/pki:cmp-session[pki:name='s1']/pki:ca-name"
            assert "discard-changes" in exc.value.message
        assert ca_names("running") == ["/CN=One", "/CN=Two"]
        assert ca_names("candidate") == ["/CN=Aud", "/CN=Two"]
        # the auditor, who may write it, commits it; oper commits its own entity
        auditor.commit()
        assert ca_names("running") == ["/CN=Aud", "/CN=Two"]
        oper.edit_config(target="candidate", config=(
            f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><entity><name>e1</name>'
            "<common-name>router</common-name></entity></pki></config>"))
        oper.commit()
        # the admin and the recovery user commit others' edits
        auditor.edit_config(target="candidate", config=session_config("s1", ca_name="/CN=A2"))
        admin.commit()
        auditor.edit_config(target="candidate", config=session_config("s1", ca_name="/CN=A3"))
        rescue.commit()
        assert ca_names("running") == ["/CN=A3", "/CN=Two"]
        # an invalid s2: the admin sees where, the auditor only that it is invalid
        admin.edit_config(target="candidate", config=session_config("s2", entity="nope"))
        for request in (lambda m: m.validate(source="candidate"), lambda m: m.commit()):
            with pytest.raises(RPCError) as full:
                request(admin)
            with pytest.raises(RPCError) as mine:
                request(auditor)
            assert error_tag(full) == error_tag(mine) == "data-missing"
            assert "s2" in full.value.path
            assert not mine.value.path
            assert "s2" not in mine.value.message and "may not read" in mine.value.message
        assert ca_names("running") == ["/CN=A3", "/CN=Two"]


def test_a_refused_operation_is_named_in_an_error_path_the_client_can_read(start_agent):
    """RFC 8341 section 3.4.4: the error-path of a refused protocol operation is
    ``/nc:rpc/nc:kill-session`` with ``nc`` declared on the error-path element,
    in the reply's bytes as a client parses them (the reply's default namespace is
    the same URI: the declaration must not be dropped as redundant)."""
    agent = start_agent()
    added = user(agent, "add", "oper", "--group", "operators", "--password-stdin",
                 password="oper-pass-1")
    assert added.returncode == 0, added.stderr
    with connect(agent) as admin, connect(agent, "oper", "oper-pass-1") as oper:
        for request, path, prefix, namespace in (
                (f'<kill-session xmlns="{NC_NS}"><session-id>{admin.session_id}</session-id>'
                 "</kill-session>", "/nc:rpc/nc:kill-session", "nc", NC_NS),
                (f'<key-pair-delete xmlns="{PKI_NS}"><name>k1</name></key-pair-delete>',
                 "/nc:rpc/pki:key-pair-delete", "pki", PKI_NS)):
            with pytest.raises(RPCError) as exc:
                oper.dispatch(etree.fromstring(request))
            assert error_tag(exc) == "access-denied"
            path_el = exc.value._raw.find(f"{{{NC_NS}}}error-path")
            assert path_el.text.strip() == path
            assert path_el.nsmap.get("nc") == NC_NS, etree.tostring(exc.value._raw)
            assert path_el.nsmap.get(prefix) == namespace


PEEKER_RULES = f"""<config xmlns="{NC_NS}" xmlns:x="{PKI_NS}"><nacm xmlns="{NACM_NS}"><rule-list>
  <name>peekers</name><group>peekers</group>
  <rule><name>not-s2</name><module-name>cmp-agent-pki</module-name>
    <path>/x:pki/x:cmp-session[x:name='s2']</path><action>deny</action></rule>
  <rule><name>not-s3</name><module-name>cmp-agent-pki</module-name>
    <path>/x:pki/x:cmp-session[x:name='s3']</path><action>deny</action></rule>
  <rule><name>not-s4</name><module-name>cmp-agent-pki</module-name>
    <path>/x:pki/x:cmp-session[x:name='s4']</path><action>deny</action></rule>
  <rule><name>pki</name><module-name>cmp-agent-pki</module-name><path>/x:pki</path>
    <access-operations>create update delete</access-operations><action>permit</action></rule>
</rule-list></nacm></config>"""


def test_a_refused_write_does_not_tell_what_the_user_may_not_read(start_agent):
    """RFC 8341 sections 3.2.5 and 3.4.3 over SSH: a user who may neither read nor
    change sessions s2 and s3 learns neither s2's name from the refusal of a
    replace or a copy-config that would delete s2, nor from a delete whether s2
    exists: deleting s2 (there) and s3 (not there) are refused alike."""
    agent = start_agent()
    added = user(agent, "add", "peek", "--group", "peekers", "--password-stdin",
                 password="peek-pass-1")
    assert added.returncode == 0, added.stderr
    with connect(agent) as admin, connect(agent, "peek", "peek-pass-1") as peek:
        commit(admin, PEEKER_RULES)
        commit(admin, session_config("s1"))
        commit(admin, session_config("s2", ca_name="/CN=Two"))
        mine = etree.fromstring(peek.get_config("running").data_xml.encode())
        assert mine.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1"]
        replace = (f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}" xmlns:nc="{NC_NS}" '
                   'nc:operation="replace"><cmp-session><name>s1</name></cmp-session></pki>'
                   "</config>")
        for request in (lambda: peek.edit_config(target="candidate", config=replace),
                        lambda: peek.copy_config(source="running", target="candidate")):
            with pytest.raises(RPCError) as exc:
                request()
            assert error_tag(exc) == "access-denied"
            assert exc.value.path.strip() == "/pki:pki/pki:cmp-session"
            assert "s2" not in exc.value.message and "admin" not in exc.value.message
        refusals = []
        for name in ("s2", "s3"):
            with pytest.raises(RPCError) as exc:
                peek.edit_config(target="candidate", config=(
                    f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}" xmlns:nc="{NC_NS}">'
                    f'<cmp-session nc:operation="delete"><name>{name}</name></cmp-session>'
                    "</pki></config>"))
            refusals.append(etree.tostring(exc.value._raw))
        assert refusals[0] == refusals[1]
        assert b"access-denied" in refusals[0]
        full = etree.fromstring(admin.get_config("candidate").data_xml.encode())
        assert full.xpath("//p:cmp-session/p:name/text()", namespaces=NS) == ["s1", "s2"]
        # continue-on-error: the rest of the edit is applied, and the refusal says
        # nothing to the contrary; one request denied, one denied-data-writes
        def denied_writes() -> int:
            return int(etree.fromstring(admin.get(filter=(
                "subtree", f'<nacm xmlns="{NACM_NS}"/>')).data_xml.encode()).findtext(
                f".//{{{NACM_NS}}}denied-data-writes"))

        before = denied_writes()
        with pytest.raises(RPCError) as exc:
            peek.edit_config(target="candidate", error_option="continue-on-error", config=(
                f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}" xmlns:nc="{NC_NS}">'
                '<cmp-session nc:operation="delete"><name>s3</name></cmp-session>'
                '<cmp-session nc:operation="delete"><name>s4</name></cmp-session>'
                "<cmp-session><name>s1</name><ca-name>/CN=One</ca-name></cmp-session>"
                "</pki></config>"))
        assert [e.tag for e in exc.value.errors] == ["access-denied", "access-denied"]
        assert all("nothing was changed" not in e.message for e in exc.value.errors)
        assert denied_writes() == before + 1
        full = etree.fromstring(admin.get_config("candidate").data_xml.encode())
        assert full.xpath("//p:cmp-session/p:ca-name/text()", namespaces=NS) == [
            "/CN=One", "/CN=Two"]
