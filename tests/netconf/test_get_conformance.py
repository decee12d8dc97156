"""The state data of <get> conforms to its YANG modules, checked by libyang's yanglint.

netconf-state (RFC 6022) with a lock and two sessions, the YANG library
(RFC 8525, RFC 7895) and the configuration, validated as one datastore.
"""

from __future__ import annotations

import shutil
import subprocess

from lxml import etree
from nc_helpers import connect

from agent.model import IETF_DIR, YANG_DIR

MODULES = ["ietf-netconf-monitoring", "ietf-yang-library", "ietf-datastores", "ietf-netconf-acm"]


def test_get_output_validates_with_yanglint(agent, tmp_path):
    yanglint = shutil.which("yanglint")
    assert yanglint, "yanglint (Debian libyang2-tools) is a test peer; tools/test installs it"
    with connect(agent) as m, connect(agent) as other:
        m.lock("running")
        data = etree.fromstring(m.get().data_xml.encode())
        other.get_config("running")
        m.unlock("running")
    assert data.find(".//{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}global-lock") is not None
    doc = tmp_path / "get.xml"
    doc.write_bytes(b"".join(etree.tostring(c) for c in data))
    schemas = [str(IETF_DIR / f"{name}.yang") for name in MODULES]
    schemas.append(str(YANG_DIR / "cmp-agent-pki.yang"))
    result = subprocess.run(
        [yanglint, "-t", "data", "-p", str(IETF_DIR), "-p", str(IETF_DIR.parent / "iana"),
         "-p", str(YANG_DIR), *schemas, str(doc)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "err" not in result.stderr.lower(), (
        result.stdout + result.stderr)
