"""The YANG module: pyang --lint without warnings, yanglint loads it, the
tree has the contract's paths; the agent's Model serves it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from agent import PKI_NS
from agent.model import IETF_DIR, YANG_DIR, Model
from agent.netconf.errors import RpcError

MODULE = YANG_DIR / "cmp-agent-pki.yang"
PYANG = Path(sys.executable).with_name("pyang")
SEARCH = f"{IETF_DIR}:{IETF_DIR.parent / 'iana'}"


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_pyang_lint_clean():
    res = run(str(PYANG), "--lint", "-p", SEARCH, str(MODULE))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""


@pytest.mark.skipif(shutil.which("yanglint") is None, reason="yanglint (libyang2-tools) missing")
def test_yanglint_loads():
    res = run("yanglint", "-p", str(IETF_DIR), str(MODULE))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


def test_tree_has_contract_paths():
    res = run(str(PYANG), "-f", "tree", "-p", SEARCH, str(MODULE))
    assert res.returncode == 0, res.stderr
    tree = res.stdout
    for line in [
        "+--rw pki",
        "+--rw file-format?",
        "+--rw weak-algorithms-enabled?",
        "+--rw entity* [name]",
        "+--rw cmp-session* [name]",
        "+--rw entity?                         -> /pki/entity/name",
        "+--rw ca-name?",
        "+--rw server-url",
        "+--rw url?",
        "+--rw esc?",
        "+--rw local-key-pair",
        "+--rw regenerate?",
        "+--rw key-bits?",
        "+--rw (source)?",
        "+--:(source-interface)",
        "+--:(source-address)",
        "+--rw integrity-algorithm?",
        "+--rw verification-cert?",
        "+--rw origin-authentication-method?",
        "+--rw message-authentication-code",
        "+--rw reference-value?",
        "+--rw secret-value?",
        "+--rw authentication-cert?",
        "+--rw auto-update",
        "+--rw enabled?",
        "+--rw expire-time?",
        "+--ro statistics",
        "+--ro key-pair* [name]",
        "+--ro certificate-file* [name]",
        "+--ro cmp-statistics",
        "+---x cmp-initial-request",
        "+---x cmp-certificate-request",
        "+---x cmp-keyupdate-request",
        "+---x clear-statistics",
        "+---x key-pair-create",
        "+---x key-pair-delete",
        "+---x key-pair-import",
        "+---x certificate-import",
        "+---x certificate-delete",
        "+---n cmp-session-result",
        "+---n local-certificate-nearly-expired",
    ]:
        assert line in tree, f"{line!r} missing from the tree"


def test_model_loads_and_finds_secrets():
    model = Model.load()
    names = {m.name for m in model.modules}
    assert {"cmp-agent-pki", "ietf-netconf", "ietf-netconf-monitoring", "ietf-yang-library",
            "ietf-netconf-with-defaults", "ietf-inet-types", "ietf-yang-types"} <= names
    assert model.secret_leaves == frozenset({(PKI_NS, "secret-value")})
    pki = next(m for m in model.modules if m.name == "cmp-agent-pki")
    assert (pki.revision, pki.prefix, pki.namespace) == ("2026-12-02", "pki", PKI_NS)
    assert model.datamodel.get_schema_node("/cmp-agent-pki:pki/cmp-session") is not None


def test_get_schema_text_and_unknown():
    model = Model.load()
    assert model.module_text("cmp-agent-pki") == MODULE.read_text()
    assert model.module_text("cmp-agent-pki", "2026-12-02").startswith("module cmp-agent-pki")
    with pytest.raises(RpcError) as exc:
        model.module_text("no-such-module")
    assert exc.value.tag == "invalid-value"
    with pytest.raises(RpcError):
        model.module_text("cmp-agent-pki", "1999-01-01")


def test_yang_library_and_schema_list_validate_against_their_modules():
    """The RFC 6022 and RFC 7895 views are valid instances of their own modules
    (yangson cannot resolve XML prefixes of identityrefs from lxml, so the
    RFC 8525 view's datastore identities are checked by XPath)."""
    model = Model.load()
    lib = model.yang_library_xml("cid-1")
    ns = {"y": "urn:ietf:params:xml:ns:yang:ietf-yang-library"}
    assert lib.xpath("y:content-id/text()", namespaces=ns) == ["cid-1"]
    assert lib.xpath("y:datastore/y:name/text()", namespaces=ns) == [
        "ds:running", "ds:candidate", "ds:startup"]
    assert lib.nsmap["ds"] == "urn:ietf:params:xml:ns:yang:ietf-datastores"
    assert "candidate" in lib.xpath("y:module-set/y:module[y:name='ietf-netconf']/y:feature/text()",
                                    namespaces=ns)
    schemas = model.schema_list_xml()
    nsm = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
    state = etree.Element(f"{{{nsm}}}netconf-state", nsmap={None: nsm})
    state.append(schemas)
    data = etree.Element("{urn:ietf:params:xml:ns:netconf:base:1.0}data")
    data.append(model.modules_state_xml("cid-1"))
    data.append(state)
    from yangson.enumerations import ContentType, ValidationScope

    inst = model.datamodel.from_xml(data)
    for member in ("ietf-netconf-monitoring:netconf-state", "ietf-yang-library:modules-state"):
        inst[member].validate(ValidationScope.all, ContentType.all)
    ids = [s.findtext(f"{{{nsm}}}identifier") for s in schemas]
    assert "cmp-agent-pki" in ids and len(ids) == len(model.modules)
