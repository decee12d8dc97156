"""The state data of <get> conforms to its YANG modules, checked by libyang's yanglint.

netconf-state (RFC 6022) with a lock and two sessions, the YANG library
(RFC 8525, RFC 7895) and the configuration, validated as one datastore.
"""

from __future__ import annotations

import re
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


def test_netconf_state_times_are_written_as_the_pki_times(agent):
    """locked-time, login-time and netconf-start-time (RFC 6022, yang:date-and-time of RFC
    6991) in one form with every other time of the agent (agent.clock.yang_datetime):
    UTC, whole seconds, "Z" (fractional seconds are allowed but would differ between
    modules)."""
    ncm = "{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}"
    with connect(agent) as m:
        m.lock("running")
        try:
            data = etree.fromstring(m.get().data_xml.encode())
        finally:
            m.unlock("running")
    times = {leaf: [el.text for el in data.iter(f"{ncm}{leaf}")]
             for leaf in ("locked-time", "login-time", "netconf-start-time")}
    assert all(times.values()), times
    for leaf, values in times.items():
        for value in values:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), (leaf, value)


def test_yang_datetime_is_utc_to_the_second():
    from datetime import datetime, timedelta, timezone

    from agent.clock import yang_datetime

    moment = datetime(2026, 12, 2, 10, 39, 58, 123456, tzinfo=timezone.utc)
    assert yang_datetime(moment) == "2026-12-02T10:39:58Z"
    assert yang_datetime(moment.astimezone(timezone(timedelta(hours=8)))) == "2026-12-02T10:39:58Z"
