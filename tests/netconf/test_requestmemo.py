"""The repeated-request memo's template (agent/netconf/requestmemo.py) on its own, and
what the session does with it (agent/netconf/session.py): a message equal but for its
message-id to one remembered is not parsed, and its reply is the full path's."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.netconf.framing import Framing, frame
from agent.netconf.replycache import SerializedElement
from agent.netconf.requestmemo import MemoEntry, RequestMemo, Template, template
from agent.netconf.session import BASE_1_0, BASE_1_1, RepeatedRpc, RpcReceived, Session

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BODY = "<get-config><source><running/></source></get-config>"

ACCEPTED = [
    # (message with {id} where the template's value is, the value found)
    f'<rpc message-id="{{id}}" xmlns="{NC}">{BODY}</rpc>',
    f"<rpc xmlns='{NC}' message-id='{{id}}'>{BODY}</rpc>",
    f'<nc:rpc xmlns:nc="{NC}" message-id="{{id}}"><nc:get-config/></nc:rpc>',
    f'<?xml version="1.0" encoding="UTF-8"?>\n<rpc message-id="{{id}}" xmlns="{NC}">{BODY}</rpc>',
    f"<?xml version='1.0' encoding='utf-8' standalone='yes' ?><rpc xmlns='{NC}' message-id='{{id}}'>{BODY}</rpc>",
    f'\n\t <rpc\n  message-id =\t"{{id}}"  xmlns="{NC}" >{BODY}</rpc>',
    f'<rpc xmlns="{NC}" note=\'message-id="7"\' message-id="{{id}}">{BODY}</rpc>',
    f'<rpc xmlns="{NC}" a="x>y" message-id="{{id}}" b=">">{BODY}</rpc>',
    f'<rpc xmlns="{NC}" xmlns:ex="urn:example" ex:trace="t" message-id="{{id}}">{BODY}</rpc>',
    f'<rpc message-id="{{id}}" xmlns="{NC}" message-idx="3" nc:message-id="4" xmlns:nc="{NC}">'
    f"{BODY}</rpc>",
]

REFUSED = [
    f'<rpc xmlns="{NC}">{BODY}</rpc>',                                   # no message-id
    f'<nc:rpc xmlns:nc="{NC}" nc:message-id="1"><nc:get-config/></nc:rpc>',  # prefixed only
    f'<rpc xmlns="{NC}" note=\'message-id="1"\'>{BODY}</rpc>',            # only inside a value
    f'<rpc message-id="a b" xmlns="{NC}">{BODY}</rpc>',                  # outside the safe set
    f'<rpc message-id="a&amp;b" xmlns="{NC}">{BODY}</rpc>',
    f'<rpc message-id="\u00e9" xmlns="{NC}">{BODY}</rpc>',
    f'<rpc message-id="a\tb" xmlns="{NC}">{BODY}</rpc>',
    f'<rpc message-id="{"1" * 65}" xmlns="{NC}">{BODY}</rpc>',
    f'<rpc message-id="" xmlns="{NC}">{BODY}</rpc>',
    f'<rpc x="a&amp;b" message-id="1" xmlns="{NC}">{BODY}</rpc>',         # a reference before it
    f'<rpc x="a\nb" message-id="1" xmlns="{NC}">{BODY}</rpc>',            # normalized before it
    f'<?xml version="1.0" encoding="ISO-8859-1"?><rpc message-id="1" xmlns="{NC}">{BODY}</rpc>',
    f'\ufeff<rpc message-id="1" xmlns="{NC}">{BODY}</rpc>',               # byte order mark
    f'<!-- poll --><rpc message-id="1" xmlns="{NC}">{BODY}</rpc>',
    f'<!DOCTYPE rpc><rpc message-id="1" xmlns="{NC}">{BODY}</rpc>',
    f'<rpcx message-id="1" xmlns="{NC}">{BODY}</rpcx>',
    f'<rpc message-id="1" xmlns="{NC}"/>',
    f'<hello message-id="1" xmlns="{NC}"/>',
    f'<rpc message-id="1" xmlns="{NC}"',                                 # no end of start tag
]


def _shape(el: etree._Element) -> tuple:
    return (el.tag, sorted(el.attrib.items()), el.text, el.tail, [_shape(c) for c in el])


@pytest.mark.parametrize("message", ACCEPTED)
def test_an_accepted_message_parses_as_another_with_its_template(message):
    """The value found is the <rpc>'s message-id as lxml reads it; any other safe value
    in its place gives the same tree but for that attribute."""
    first, second = (message.replace("{id}", v).encode() for v in ("101", "x.Y:z-_9"))
    found, other = template(first), template(second)
    assert found is not None and other is not None
    assert found.message_id == "101" and other.message_id == "x.Y:z-_9"
    assert found.key == other.key
    assert found.key == (first[:first.index(b"101")], first[first.index(b"101") + 3:])
    parsed = etree.fromstring(first.lstrip())
    assert parsed.get("message-id") == "101"
    again = etree.fromstring(second.lstrip())
    assert again.get("message-id") == "x.Y:z-_9"
    again.set("message-id", "101")
    assert _shape(again) == _shape(parsed)


@pytest.mark.parametrize("message", REFUSED)
def test_a_message_the_grammar_does_not_read_has_no_template(message):
    assert template(message.encode()) is None


def test_a_value_inside_another_attribute_is_not_the_message_id():
    data = f'<rpc xmlns="{NC}" note=\'a message-id="1"\' message-id="5">{BODY}</rpc>'.encode()
    found = template(data)
    assert found is not None and found.message_id == "5"
    assert found.key[0].endswith(b'\' message-id="')


def _poll(memo: RequestMemo, n: int, prefix: str = "") -> Template:
    found = memo.find(f'{prefix}<rpc message-id="1" xmlns="{NC}" poll="{n}">{BODY}</rpc>'.encode())
    assert found is not None
    return found


def test_the_memo_keeps_the_entries_used_last_and_no_large_message():
    memo: RequestMemo[int] = RequestMemo(max_entries=3, max_message_size=200)
    for n in range(5):
        memo.put(_poll(memo, n), MemoEntry(b"", b"", n))
        assert len(memo) == min(n + 1, 3)
    assert memo.get(_poll(memo, 2).key).value == 2  # used: now the last to go
    memo.put(_poll(memo, 5), MemoEntry(b"", b"", 5))
    assert memo.get(_poll(memo, 3).key) is None and memo.get(_poll(memo, 2).key) is not None
    small = f'<rpc message-id="1" xmlns="{NC}"><get/></rpc>'.encode()
    assert memo.find(small) is not None
    assert memo.find(small + b" " * (201 - len(small))) is None
    memo.clear()
    assert len(memo) == 0


def test_a_request_is_admitted_the_second_time_among_the_last_answered_once():
    memo: RequestMemo[int] = RequestMemo(max_entries=2)
    assert [memo.admits(_poll(memo, n)) for n in (1, 1, 1, 2, 3, 4, 3, 2)] == [
        False, True, False, False, False, False, True, False]  # 2 was pushed out by 4
    memo.clear()
    assert not memo.admits(_poll(memo, 4))


@pytest.mark.parametrize("message", [
    f'<rpc xmlns="{NC}" note=\'message-id="1"\' message-id="2">{BODY}</rpc>',  # cut elsewhere
    f'<!-- poll --><rpc message-id="1" xmlns="{NC}">{BODY}</rpc>',            # no template
    f'<rpc x="a&amp;b" message-id="1" xmlns="{NC}">{BODY}</rpc>',
])
def test_the_memo_stores_only_what_the_grammar_reads_as_its_look_up_cuts_it(message):
    """The look-up only cuts at the first message-id="value"; the grammar is checked
    on storing, so the memo answers no message the grammar does not read."""
    memo: RequestMemo[int] = RequestMemo()
    found = memo.find(message.encode())
    assert found is not None
    memo.put(found, MemoEntry(b"", b"", 1))
    assert len(memo) == 0
    accepted = memo.find(ACCEPTED[0].replace("{id}", "3").encode())
    assert accepted is not None
    memo.put(accepted, MemoEntry(b"", b"", 1))
    assert len(memo) == 1


@pytest.mark.parametrize("message", ACCEPTED)
def test_the_look_up_cuts_an_accepted_message_where_the_grammar_does(message):
    data = message.replace("{id}", "42").encode()
    expected = template(data)
    if b"note=" in data:
        return  # cut at the note's text: stored never (the test above)
    assert RequestMemo().find(data) == expected


# --- the session ------------------------------------------------------------------------------
def _open(base: str, memo: RequestMemo) -> Session:
    session = Session(1, [BASE_1_0, BASE_1_1], memo=memo)
    session.receive_data(frame(f'<hello xmlns="{NC}"><capabilities><capability>{base}'
                               "</capability></capabilities></hello>".encode(),
                               Framing.END_OF_MESSAGE))
    return session


def _send(session: Session, message: str):
    [event] = session.receive_data(frame(message.encode(), session.framing))
    return event


@pytest.mark.parametrize("base", [BASE_1_0, BASE_1_1])
def test_a_remembered_request_is_not_parsed_and_gets_the_full_paths_reply(base):
    memo: RequestMemo = RequestMemo()
    session = _open(base, memo)
    data = SerializedElement(b'<data><x xmlns="urn:example">1</x></data>')
    # the reply escapes the quotes and ">" the request need not
    message = f'<rpc xmlns="{NC}" a=\'"q"\' message-id="{{id}}" z=\'>\'>{BODY}</rpc>'
    for mid in ("1", "x"):  # kept the second time it is answered
        assert len(memo) == 0
        first = _send(session, message.replace("{id}", mid))
        assert isinstance(first, RpcReceived) and first.template is not None
        session.remember(first, "value")
    assert len(memo) == 1
    repeated = _send(session, message.replace("{id}", "2-b"))
    assert isinstance(repeated, RepeatedRpc)
    assert repeated.entry.value == "value" and repeated.message_id == "2-b"
    assert session.counters.in_rpcs == 3
    # the reply the full path gives, from the message parsed
    full = session.reparse(repeated)
    assert isinstance(full, RpcReceived) and session.counters.in_rpcs == 3
    assert session.reply_repeated(repeated, data) == session.reply(full, data)


def test_a_request_with_an_attribute_in_a_namespace_is_not_remembered():
    memo: RequestMemo = RequestMemo()
    session = _open(BASE_1_0, memo)
    for _ in range(2):
        first = _send(session, f'<rpc xmlns="{NC}" xmlns:ex="urn:example" ex:t="1" '
                               f'message-id="1">{BODY}</rpc>')
        assert isinstance(first, RpcReceived) and first.template is not None
        session.remember(first, "value")
    assert len(memo) == 0


def test_no_template_without_a_memo_or_for_a_large_message():
    session = _open(BASE_1_0, RequestMemo(max_message_size=200))
    large = _send(session, f'<rpc message-id="1" xmlns="{NC}">{BODY}{" " * 200}</rpc>')
    assert isinstance(large, RpcReceived) and large.template is None
    plain = Session(1, [BASE_1_0])
    plain.receive_data(frame(f'<hello xmlns="{NC}"><capabilities><capability>{BASE_1_0}'
                             "</capability></capabilities></hello>".encode(),
                             Framing.END_OF_MESSAGE))
    event = _send(plain, f'<rpc message-id="1" xmlns="{NC}">{BODY}</rpc>')
    assert isinstance(event, RpcReceived) and event.template is None
