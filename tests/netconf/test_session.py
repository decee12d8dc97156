"""The sans-IO session: hello exchange, framing switch, rpc parsing (RFC 6241 sections 4, 8.1)."""

from __future__ import annotations

from lxml import etree

from agent.netconf.errors import RpcError
from agent.netconf.framing import Framing, frame
from agent.netconf.session import (
    BASE_1_0,
    BASE_1_1,
    CloseSession,
    EndOfInput,
    HelloReceived,
    ParseRequested,
    RpcReceived,
    SendData,
    Session,
    State,
    parse_client_message,
)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def hello(*caps: str, session_id: str | None = None) -> bytes:
    body = "".join(f"<capability>{c}</capability>" for c in caps)
    sid = f"<session-id>{session_id}</session-id>" if session_id else ""
    return frame(f'<hello xmlns="{NC}"><capabilities>{body}</capabilities>{sid}</hello>'.encode(),
                 Framing.END_OF_MESSAGE)


def new_session() -> Session:
    return Session(7, [BASE_1_0, BASE_1_1])


def unframe_chunked(data: bytes) -> etree._Element:
    assert data.startswith(b"\n#") and data.endswith(b"\n##\n")
    size, _, rest = data[2:].partition(b"\n")
    return etree.fromstring(rest[: int(size)])


def test_server_hello_has_capabilities_and_session_id():
    root = etree.fromstring(new_session().hello()[: -len(b"]]>]]>")])
    assert root.findtext(f"{{{NC}}}session-id") == "7"
    caps = root.xpath("//nc:capability/text()", namespaces={"nc": NC})
    assert caps == [BASE_1_0, BASE_1_1]


def test_base11_hello_switches_to_chunked_and_rpc_follows_in_same_read():
    s = new_session()
    rpc = f'<rpc xmlns="{NC}" message-id="5"><get/></rpc>'.encode()
    events = s.receive_data(hello(BASE_1_0, BASE_1_1) + frame(rpc, Framing.CHUNKED))
    assert isinstance(events[0], HelloReceived)
    assert isinstance(events[1], RpcReceived) and events[1].message_id == "5"
    assert s.framing is Framing.CHUNKED and s.state is State.OPEN
    reply = unframe_chunked(s.reply(events[1], None))
    assert reply.get("message-id") == "5" and reply[0].tag == f"{{{NC}}}ok"


def test_base10_only_client_keeps_end_of_message():
    s = new_session()
    s.receive_data(hello(BASE_1_0))
    assert s.framing is Framing.END_OF_MESSAGE


def test_client_hello_with_session_id_closes():
    s = new_session()
    (event,) = s.receive_data(hello(BASE_1_0, session_id="4"))
    assert isinstance(event, CloseSession) and s.state is State.CLOSED and s.bad_hello


def test_hello_without_common_base_closes():
    (event,) = new_session().receive_data(hello("urn:ietf:params:netconf:base:2.0"))
    assert isinstance(event, CloseSession)


def test_rpc_before_hello_closes():
    s = new_session()
    (event,) = s.receive_data(frame(f'<rpc xmlns="{NC}" message-id="1"><get/></rpc>'.encode(),
                                    Framing.END_OF_MESSAGE))
    assert isinstance(event, CloseSession)


def test_missing_message_id_and_malformed_xml_get_replies_and_session_stays_open():
    s = new_session()
    s.receive_data(hello(BASE_1_0))
    events = s.receive_data(frame(f'<rpc xmlns="{NC}"><get/></rpc>'.encode(),
                                  Framing.END_OF_MESSAGE)
                            + frame(b"<rpc", Framing.END_OF_MESSAGE))
    assert [type(e) for e in events] == [SendData, SendData]
    first = etree.fromstring(events[0].data[:-6])
    assert first.findtext(f".//{{{NC}}}error-tag") == "missing-attribute"
    second = etree.fromstring(events[1].data[:-6])
    # RFC 6241 Appendix A: malformed-message MUST NOT be sent to a base:1.0 peer
    assert second.findtext(f".//{{{NC}}}error-tag") == "operation-failed"
    assert second.findtext(f".//{{{NC}}}error-type") == "rpc"
    assert s.state is State.OPEN
    assert s.counters.in_bad_rpcs == 2


def test_reply_copies_rpc_attributes_and_serialises_errors():
    s = new_session()
    s.receive_data(hello(BASE_1_0))
    (event,) = s.receive_data(frame(
        f'<rpc xmlns="{NC}" xmlns:x="urn:x" message-id="9" x:user="y"><get/></rpc>'.encode(),
        Framing.END_OF_MESSAGE))
    data = s.reply_errors(event, [RpcError("lock-denied", "held", type="protocol",
                                           info={"session-id": "3"})])
    reply = etree.fromstring(data[:-6])
    assert reply.get("message-id") == "9" and reply.get("{urn:x}user") == "y"
    assert reply.findtext(f".//{{{NC}}}session-id") == "3"
    assert s.counters.out_rpc_errors == 1


def test_two_operations_in_one_rpc_is_refused():
    s = new_session()
    s.receive_data(hello(BASE_1_0))
    (event,) = s.receive_data(frame(f'<rpc xmlns="{NC}" message-id="1"><get/><get/></rpc>'
                                    .encode(), Framing.END_OF_MESSAGE))
    assert isinstance(event, SendData) and b"bad-element" in event.data


def test_white_space_between_base10_messages_is_ignored():
    s = new_session()
    s.receive_data(hello(BASE_1_0))
    (event,) = s.receive_data(b'\n  <?xml version="1.0"?><rpc xmlns="' + NC.encode()
                              + b'" message-id="9"><close-session/></rpc>]]>]]>')
    assert isinstance(event, RpcReceived)
    assert event.message_id == "9"


def run_events(s: Session, data: bytes) -> list:
    """The events of *data*, each ParseRequested parsed (as a worker thread would)
    and handed back; what a server sees, in order."""
    events = s.receive_data(data)
    while events and isinstance(events[-1], ParseRequested):
        request = events.pop()
        assert s.parsing and s.buffered >= len(request.data)
        assert s.receive_data(b"") == []  # no message is read before the result
        events += s.message_parsed(parse_client_message(request.data))
    return events


def test_messages_parsed_off_the_session_give_the_same_events_as_inline():
    """Issue 9: a message above inline_parse_limit comes out as ParseRequested;
    message_parsed() then gives the events the inline path gives (hello and
    framing switch, malformed XML, missing message-id, rpc, a second hello),
    in order, with the same rpc-errors and counters."""
    rpcs = [b"<rpc", f'<rpc xmlns="{NC}"><get/></rpc>'.encode(),
            f'<rpc xmlns="{NC}" message-id="3"><get/></rpc>'.encode(),
            f'<hello xmlns="{NC}"/>'.encode(),
            f'<rpc xmlns="{NC}" message-id="4"><get/></rpc>'.encode()]
    stream = hello(BASE_1_0, BASE_1_1) + b"".join(frame(r, Framing.CHUNKED) for r in rpcs)
    inline, deferred = new_session(), new_session()
    deferred.inline_parse_limit = 0
    expected = run_events(inline, stream)
    assert not any(isinstance(e, ParseRequested) for e in expected)
    assert deferred.receive_data(stream) == [ParseRequested(hello(BASE_1_0, BASE_1_1)[:-6])]
    deferred = new_session()
    deferred.inline_parse_limit = 0
    got = run_events(deferred, stream)
    assert [type(e) for e in got] == [type(e) for e in expected] == [
        HelloReceived, SendData, SendData, RpcReceived, CloseSession]
    for a, b in zip(got, expected):
        if isinstance(a, RpcReceived):
            assert a.message_id == b.message_id == "3"
        else:
            assert a == b
    assert deferred.counters == inline.counters
    assert deferred.framing is inline.framing is Framing.CHUNKED
    assert deferred.state is State.CLOSED and not deferred.parsing
    assert deferred.buffered == inline.buffered  # the message after the second hello


def test_eof_after_complete_messages_gives_their_events_then_end_of_input():
    """RFC 6242 section 4: messages completed before EOF are answered; the
    incomplete trailing one is dropped (here of both framings)."""
    rpc = f'<rpc xmlns="{NC}" message-id="1"><get/></rpc>'.encode()
    for caps, framing, partial in ((BASE_1_0,), Framing.END_OF_MESSAGE, rpc[:20]), (
            (BASE_1_0, BASE_1_1), Framing.CHUNKED, b"\n#100\n" + rpc):
        s = new_session()
        events = s.receive_data(hello(*caps) + frame(rpc, framing) + partial)
        assert [type(e) for e in events] == [HelloReceived, RpcReceived]
        assert s.buffered == len(partial)
        assert s.receive_eof() == [EndOfInput(len(partial))]
        assert s.state is State.CLOSED and s.buffered == 0
        assert s.receive_eof() == [] and s.receive_data(rpc) == []


def test_eof_while_a_message_is_parsed_ends_input_after_the_messages_behind_it():
    s = new_session()
    s.receive_data(hello(BASE_1_0))
    s.inline_parse_limit = 100
    big = f'<rpc xmlns="{NC}" message-id="1"><get/><!-- {"x" * 100} --></rpc>'.encode()
    small = f'<rpc xmlns="{NC}" message-id="2"><get/></rpc>'.encode()
    events = s.receive_data(frame(big, Framing.END_OF_MESSAGE)
                            + frame(small, Framing.END_OF_MESSAGE))
    assert [type(e) for e in events] == [ParseRequested]
    assert s.receive_eof() == []  # the message after the one being parsed comes first
    rest = s.message_parsed(parse_client_message(events[0].data))
    assert [type(e) for e in rest] == [RpcReceived, RpcReceived, EndOfInput]
    assert [e.message_id for e in rest[:2]] == ["1", "2"] and rest[2] == EndOfInput(0)


def test_eof_before_the_hello_ends_input():
    s = new_session()
    assert s.receive_data(hello(BASE_1_0)[:30]) == []
    assert s.receive_eof() == [EndOfInput(30)]
    assert s.state is State.CLOSED and not s.bad_hello
