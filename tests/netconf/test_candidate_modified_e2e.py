"""RFC 6241 sections 7.5 and 8.3.5.1 over SSH: a lock of candidate is refused
when candidate "has been modified and not committed or discarded"; an
<edit-config> that changes nothing does not modify it."""

from __future__ import annotations

import pytest
from lxml import etree
from ncclient.operations import RPCError
from nc_helpers import NC_NS, connect, session_config


def lock_denied_by(m, holder) -> None:
    """*m*'s lock of candidate is refused (lock-denied) naming session *holder*."""
    with pytest.raises(RPCError) as denied:
        m.lock("candidate")
    assert denied.value.tag == "lock-denied"
    assert "uncommitted changes" in denied.value.message
    info = etree.fromstring(denied.value.info.encode())
    assert info.findtext(f".//{{{NC_NS}}}session-id") == holder.session_id


def test_a_no_op_edit_does_not_keep_another_session_from_locking_candidate(agent):
    with connect(agent) as editor, connect(agent) as other:
        editor.edit_config(target="candidate", config=session_config(
            "steady", ca_name="/C=DE/CN=ca"))
        editor.commit()
        # the values already there, merged again: candidate is not modified
        editor.edit_config(target="candidate", config=session_config(
            "steady", ca_name="/C=DE/CN=ca"))
        other.lock("candidate")
        other.unlock("candidate")
        # a real change: refused, naming the session that made it, until committed
        editor.edit_config(target="candidate", config=session_config(
            "steady", ca_name="/C=DE/CN=other"))
        lock_denied_by(other, editor)
        editor.commit()
        other.lock("candidate")
        other.unlock("candidate")
        # ... or discarded
        editor.edit_config(target="candidate", config=session_config("dropped"))
        lock_denied_by(other, editor)
        editor.discard_changes()
        other.lock("candidate")
        other.unlock("candidate")


def test_a_no_op_edit_after_a_change_keeps_candidate_modified(agent):
    with connect(agent) as editor, connect(agent) as other, connect(agent) as third:
        editor.edit_config(target="candidate", config=session_config("pending"))
        # a no-op edit by another session neither clears the modification nor makes
        # that session one of its editors
        other.edit_config(target="candidate", config=session_config("pending"))
        lock_denied_by(third, editor)
        lock_denied_by(other, editor)
        editor.lock("candidate")  # the session that made the change may lock
        editor.unlock("candidate")  # and its changes go with the lock (section 8.3.5.2)
        other.lock("candidate")
        other.unlock("candidate")
