"""The engines are generic over YANG: a small test module exercises what
cmp-agent-pki does not have (config leaf-lists, presence containers, a
mandatory leaf, a default case, when, unique)."""

from __future__ import annotations

import hashlib

import pytest
from lxml import etree

from agent.datastore import Datastores, SecretBox
from agent.model import Model, ModuleInfo
from agent.netconf.errors import RpcError

NS = "urn:example:generic"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
WD_ATTR = "{urn:ietf:params:xml:ns:netconf:default:1.0}default"

YANG = """
module generic {
  yang-version 1.1;
  namespace "urn:example:generic";
  prefix g;
  revision 2026-01-01;
  container top {
    leaf-list tag { type string; }
    container tls { presence "TLS is on"; leaf port { type uint16; default 443; } }
    leaf mode { type enumeration { enum a; enum b; } }
    leaf extra { when "../mode = 'b'"; type string; }
    choice transport {
      default plain;
      case plain { leaf plain-port { type uint16; default 80; } }
      case fancy { container fancy { leaf level { type uint8; } } }
    }
    list item {
      key "id";
      unique "label";
      leaf id { type uint8; }
      leaf label { type string; }
      leaf weight { type uint8; mandatory true; }
    }
  }
}
"""


@pytest.fixture(scope="module")
def generic_model(tmp_path_factory) -> Model:
    directory = tmp_path_factory.mktemp("yang")
    path = directory / "generic.yang"
    path.write_text(YANG)
    info = ModuleInfo(name="generic", revision="2026-01-01", namespace=NS, prefix="g",
                      path=path, features=(), conformance="implement",
                      text_sha256=hashlib.sha256(YANG.encode()).hexdigest())
    return Model([info])


@pytest.fixture
def gds(generic_model, tmp_path) -> Datastores:
    return Datastores(generic_model, tmp_path, SecretBox.open(tmp_path))


def cfg(body: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><top xmlns="{NS}">{body}'
                            "</top></config>")


def values(tree, path):
    return tree.xpath(path, namespaces={"g": NS})


def test_leaf_list_by_value(gds):
    gds.edit_config("candidate", cfg("<tag>x</tag><tag>y</tag>"))
    gds.edit_config("candidate", cfg("<tag>x</tag><tag>z</tag>"))  # merge: x stays once
    assert values(gds.get_config("candidate"), "//g:tag/text()") == ["x", "y", "z"]
    with pytest.raises(RpcError) as exc:
        gds.edit_config("candidate", cfg('<tag nc:operation="create">y</tag>'))
    assert exc.value.tag == "data-exists" and exc.value.path == "/g:top/g:tag[.='y']"
    gds.edit_config("candidate", cfg('<tag nc:operation="delete">y</tag>'))
    with pytest.raises(RpcError) as exc:
        gds.edit_config("candidate", cfg('<tag nc:operation="delete">y</tag>'))
    assert exc.value.tag == "data-missing"
    assert values(gds.get_config("candidate"), "//g:tag/text()") == ["x", "z"]


def test_presence_container_and_defaults(gds):
    all_ = gds.get_config("candidate", "report-all")
    assert values(all_, "//g:tls") == []  # absent presence container: no defaults
    assert values(all_, "//g:plain-port/text()") == ["80"]  # default case
    gds.edit_config("candidate", cfg("<tls/>"))
    tree = gds.get_config("candidate", "report-all")
    assert values(tree, "//g:tls/g:port/text()") == ["443"]
    assert values(gds.get_config("candidate", "explicit"), "//g:tls/*") == []


def test_choice_container_case(gds):
    gds.edit_config("candidate", cfg("<plain-port>8080</plain-port>"))
    gds.edit_config("candidate", cfg("<fancy><level>3</level></fancy>"))
    tree = gds.get_config("candidate", "report-all")
    assert values(tree, "//g:plain-port") == []  # other case removed, no default either
    assert values(tree, "//g:fancy/g:level/text()") == ["3"]
    tagged = gds.get_config("candidate", "report-all-tagged")
    assert values(tagged, "//g:level")[0].get(WD_ATTR) is None


def test_mandatory_and_unique_at_commit(gds):
    gds.edit_config("candidate", cfg("<item><id>1</id><label>a</label></item>"))
    with pytest.raises(RpcError) as exc:
        gds.commit()
    assert exc.value.tag == "data-missing"
    assert exc.value.path == "/g:top/g:item[g:id='1']"
    assert "weight" in exc.value.message
    gds.edit_config("candidate", cfg("<item><id>1</id><weight>5</weight></item>"
                                     "<item><id>2</id><label>a</label><weight>1</weight></item>"))
    with pytest.raises(RpcError) as exc:
        gds.commit()
    assert exc.value.tag == "operation-failed" and exc.value.app_tag == "data-not-unique"
    gds.edit_config("candidate", cfg("<item><id>2</id><label>b</label></item>"))
    gds.commit()


def test_when_condition(gds):
    gds.edit_config("candidate", cfg("<mode>a</mode><extra>x</extra>"))
    with pytest.raises(RpcError) as exc:
        gds.commit()
    assert exc.value.tag == "unknown-element" and exc.value.path == "/g:top/g:extra"
    gds.edit_config("candidate", cfg("<mode>b</mode>"))
    gds.commit()


def test_list_key_type_checked(gds):
    with pytest.raises(RpcError) as exc:
        gds.edit_config("candidate", cfg("<item><id>300</id></item>"))
    assert exc.value.tag == "invalid-value" and exc.value.path.endswith("/g:id")
