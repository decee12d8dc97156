"""PkiService on its own: the bookkeeping around the engine."""

import asyncio

import pytest
from lxml import etree

from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.pki.service import PkiService

CONFIG = """<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
<pki xmlns="urn:cmp-agent:yang:cmp-agent-pki">
  <entity><name>e1</name><common-name>router1</common-name></entity>
  <cmp-session><name>s1</name><entity>e1</entity>
    <server-url><url>http://127.0.0.1:9/pkix/</url></server-url>
    <local-key-pair><name>k1</name></local-key-pair>
    <message-authentication-code><reference-value>1</reference-value>
      <secret-value>s</secret-value></message-authentication-code>
  </cmp-session></pki></config>"""


@pytest.fixture(scope="module")
def model():
    return Model.load()


def test_an_engine_bug_does_not_leave_the_session_busy(model, tmp_path):
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    datastores.edit_config("candidate", etree.fromstring(CONFIG))
    datastores.commit()
    calls = []

    def broken_engine(request):
        calls.append(request.kind)
        raise RuntimeError("engine bug")

    service = PkiService(datastores, tmp_path, datastores.secrets, enroll_fn=broken_engine)

    async def twice():
        return [await service.request("s1", "ir") for _ in range(2)]

    outcomes = asyncio.run(twice())
    assert calls == ["ir", "ir"]
    assert {(o.status, o.status_text) for o in outcomes} == {
        ("failure", "internal error: RuntimeError: engine bug")}
    last = service.stats_for("s1").last_request
    assert (last.result, last.reason) == ("failure", "internal error: RuntimeError: engine bug")
