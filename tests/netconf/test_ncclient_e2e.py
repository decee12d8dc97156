"""End to end with ncclient against the real agent over SSH (RFC 6241, 6242, 6022, 6243)."""

from __future__ import annotations

import pytest
from lxml import etree
from ncclient.operations import RPCError
from ncclient.transport.errors import TransportError
from nc_helpers import (
    NC_NS,
    PKI_NS,
    connect,
    session_config,
    session_filter,
    session_names,
    wait_until,
)

NCM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"


def _running_names(m) -> list[str]:
    return session_names(m.get_config("running").data_xml)


def test_hello_advertises_the_capabilities(agent):
    with connect(agent) as m:
        caps = set(m.server_capabilities)
        for uri in (
            "urn:ietf:params:netconf:base:1.0",
            "urn:ietf:params:netconf:base:1.1",
            "urn:ietf:params:netconf:capability:candidate:1.0",
            "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
            "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
            "urn:ietf:params:netconf:capability:validate:1.1",
            "urn:ietf:params:netconf:capability:startup:1.0",
            "urn:ietf:params:netconf:capability:xpath:1.0",
            "urn:ietf:params:netconf:capability:notification:1.0",
            "urn:ietf:params:netconf:capability:interleave:1.0",
        ):
            assert uri in caps, uri
        with_defaults = [c for c in caps if c.startswith(
            "urn:ietf:params:netconf:capability:with-defaults:1.0")]
        assert with_defaults and "basic-mode=report-all" in with_defaults[0]
        yanglib = [c for c in caps if c.startswith(
            "urn:ietf:params:netconf:capability:yang-library:1.1")]
        assert yanglib and "content-id=" in yanglib[0]
        assert any("module=ietf-netconf-monitoring" in c for c in caps)
        # cmp-agent-pki is YANG 1.1: only in the YANG library (RFC 7950 section 5.6.4)
        assert not any("module=cmp-agent-pki" in c for c in caps)
        assert int(m.session_id) > 0


def test_edit_validate_commit_get_config(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config(
            "e2e-basic", ca_name="/C=DE/O=Example/CN=CA"))
        assert "e2e-basic" in session_names(m.get_config("candidate").data_xml)
        assert "e2e-basic" not in _running_names(m)
        m.validate(source="candidate")
        m.commit()
        reply = m.get_config("running", filter=session_filter("e2e-basic"))
        root = etree.fromstring(reply.data_xml.encode())
        assert root.xpath("//p:cmp-session/p:ca-name/text()",
                          namespaces={"p": PKI_NS}) == ["/C=DE/O=Example/CN=CA"]
        # with-defaults (RFC 6243): report-all shows defaults, trim drops them
        full = m.get_config("running", filter=session_filter("e2e-basic"),
                            with_defaults="report-all").data_xml
        trimmed = m.get_config("running", filter=session_filter("e2e-basic"),
                               with_defaults="trim").data_xml
        assert "integrity-algorithm" in full
        assert "integrity-algorithm" not in trimmed


def test_xpath_filter_selects_one_entry(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config("xp-a", ca_name="/CN=A"))
        m.edit_config(target="candidate", config=session_config("xp-b", ca_name="/CN=B"))
        m.commit()
        reply = m.get_config("running", filter=(
            "xpath", ({"p": PKI_NS}, "/p:pki/p:cmp-session[p:name='xp-b']/p:ca-name")))
        root = etree.fromstring(reply.data_xml.encode())
        entries = root.xpath("//p:cmp-session", namespaces={"p": PKI_NS})
        assert len(entries) == 1
        # the key of the list entry comes with the selected leaf (RFC 6241 section 8.9)
        assert entries[0].findtext(f"{{{PKI_NS}}}name") == "xp-b"
        assert entries[0].findtext(f"{{{PKI_NS}}}ca-name") == "/CN=B"


def test_a_filter_naming_no_schema_node_is_an_error_with_the_closest_name(agent):
    with connect(agent) as m:
        with pytest.raises(RPCError) as err:
            m.get(filter=("subtree", f'<pki xmlns="{PKI_NS}"><cmp-sesion/></pki>'))
        assert err.value.tag == "unknown-element"
        assert "<cmp-sesion> below /pki" in err.value.message
        assert "did you mean cmp-session?" in err.value.message
        with pytest.raises(RPCError) as err:
            m.get_config("running", filter=(
                "xpath", ({"p": PKI_NS}, "/p:pki/p:cmp-session/p:statistcs")))
        assert err.value.tag == "invalid-value"
        assert "step 'p:statistcs'" in err.value.message
        assert "did you mean statistics?" in err.value.message
        # names that exist but match no data: an empty <data/>, no error
        empty = m.get(filter=("xpath", ({"p": PKI_NS}, "/p:pki/p:cmp-session[p:name='none']")))
        assert len(etree.fromstring(empty.data_xml.encode())) == 0
        assert m.get(filter=("subtree", f'<pki xmlns="{PKI_NS}"><key-pair><name>none</name>'
                                        "</key-pair></pki>")).ok


def test_get_returns_monitoring_and_yang_library(agent):
    with connect(agent) as m:
        reply = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM_NS}"><sessions/></netconf-state>'))
        root = etree.fromstring(reply.data_xml.encode())
        ids = root.xpath("//m:session/m:session-id/text()", namespaces={"m": NCM_NS})
        assert m.session_id in ids
        lib = m.get(filter=("subtree",
                            '<yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>'))
        assert "cmp-agent-pki" in lib.data_xml


def test_confirmed_commit_rolls_back_on_timeout(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config("confirm-me"))
        m.commit(confirmed=True, timeout="1")
        assert "confirm-me" in _running_names(m)
        assert wait_until(lambda: "confirm-me" not in _running_names(m))
        assert "confirm-me" not in session_names(m.get_config("candidate").data_xml)


def test_confirmed_commit_confirmed_stays(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config("confirmed-ok"))
        m.commit(confirmed=True, timeout="600", persist="token-1")
    with connect(agent) as other:  # a persistent confirmed commit outlives its session
        assert "confirmed-ok" in _running_names(other)
        with pytest.raises(RPCError) as wrong:
            other.commit(persist_id="wrong")
        assert wrong.value.tag == "invalid-value"
        other.commit(persist_id="token-1")
        assert "confirmed-ok" in _running_names(other)


def test_cancel_commit_restores_running(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config("cancel-me"))
        m.commit(confirmed=True, timeout="600")
        assert "cancel-me" in _running_names(m)
        m.cancel_commit()
        assert "cancel-me" not in _running_names(m)


def test_lock_contention_between_two_sessions(agent):
    with connect(agent) as first, connect(agent) as second:
        first.discard_changes()
        first.lock("candidate")
        with pytest.raises(RPCError) as denied:
            second.lock("candidate")
        assert denied.value.tag == "lock-denied"
        info = etree.fromstring(denied.value.info.encode())
        assert info.findtext(f".//{{{NC_NS}}}session-id") == first.session_id
        with pytest.raises(RPCError) as in_use:
            second.edit_config(target="candidate", config=session_config("locked-out"))
        assert in_use.value.tag == "in-use"
        first.unlock("candidate")
        second.lock("candidate")
        second.unlock("candidate")


def test_lock_is_released_when_the_holder_closes(agent):
    with connect(agent) as holder:
        holder.lock("running")
    with connect(agent) as m:
        m.lock("running")
        m.unlock("running")


def test_out_of_range_expire_time_is_invalid_value_with_path(agent):
    with connect(agent) as m:
        m.discard_changes()
        config = (f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><cmp-session>'
                  "<name>bad-expire</name><auto-update><expire-time>150</expire-time>"
                  "</auto-update></cmp-session></pki></config>")
        with pytest.raises(RPCError) as err:
            m.edit_config(target="candidate", config=config)
        assert err.value.tag == "invalid-value"
        assert err.value.type == "application"
        assert "expire-time" in err.value.path
        assert "bad-expire" in err.value.path
        assert err.value.message
        assert "bad-expire" not in session_names(m.get_config("candidate").data_xml)


def test_create_of_existing_session_is_data_exists(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config("twice"))
        m.commit()
        create = (f'<config xmlns="{NC_NS}" xmlns:nc="{NC_NS}"><pki xmlns="{PKI_NS}">'
                  '<cmp-session nc:operation="create"><name>twice</name></cmp-session>'
                  "</pki></config>")
        with pytest.raises(RPCError) as err:
            m.edit_config(target="candidate", config=create)
        assert err.value.tag == "data-exists"


def test_get_schema_returns_the_module_text(agent):
    with connect(agent) as m:
        reply = m.get_schema("cmp-agent-pki")
        assert "module cmp-agent-pki" in reply.data
        assert "urn:cmp-agent:yang:cmp-agent-pki" in reply.data
        with pytest.raises(RPCError) as err:
            m.get_schema("no-such-module")
        assert err.value.tag == "invalid-value"


def test_kill_session_ends_the_other_session_and_frees_its_lock(agent):
    victim = connect(agent)
    victim.lock("running")
    with connect(agent) as m:
        m.kill_session(victim.session_id)
        assert wait_until(lambda: not victim.connected)
        with pytest.raises(TransportError):
            victim.get_config("running")
        m.lock("running")
        m.unlock("running")
        with pytest.raises(RPCError) as self_kill:
            m.kill_session(m.session_id)
        assert self_kill.value.tag == "invalid-value"


@pytest.mark.parametrize("rpc", ["cmp-initial-request", "cmp-certificate-request",
                                 "cmp-keyupdate-request", "cmp-pkcs10-request"])
def test_cmp_rpcs_dispatch_and_name_an_unknown_session(agent, rpc):
    with connect(agent) as m:
        op = etree.Element(f"{{{PKI_NS}}}{rpc}", nsmap={None: PKI_NS})
        etree.SubElement(op, f"{{{PKI_NS}}}session-name").text = "no-such-session"
        with pytest.raises(RPCError) as err:
            m.dispatch(op)
        assert err.value.tag != "operation-not-supported"
        assert "no-such-session" in err.value.message


def test_unknown_rpc_is_operation_not_supported(agent):
    with connect(agent) as m:
        with pytest.raises(RPCError) as err:
            m.dispatch(etree.Element("{urn:example:nothing}frobnicate"))
        assert err.value.tag == "operation-not-supported"
        assert "frobnicate" in err.value.message


def test_writable_running_is_refused(agent):
    with connect(agent) as m:
        with pytest.raises(RPCError) as err:
            m.edit_config(target="running", config=session_config("direct"))
        assert err.value.tag == "operation-not-supported"


def test_copy_running_to_startup_and_delete_startup(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.edit_config(target="candidate", config=session_config("boot"))
        m.commit()
        m.copy_config(source="running", target="startup")
        assert "boot" in session_names(m.get_config("startup").data_xml)
        m.delete_config(target="startup")
        assert "boot" not in session_names(m.get_config("startup").data_xml)


def test_validate_inline_config_and_discard_changes(agent):
    with connect(agent) as m:
        m.discard_changes()
        m.validate(source=etree.fromstring(session_config("inline-ok")))
        m.edit_config(target="candidate", config=session_config("to-discard"))
        m.discard_changes()
        assert "to-discard" not in session_names(m.get_config("candidate").data_xml)
