"""RFC 6242 section 4 framing, sans-IO."""

from __future__ import annotations

import pytest

from agent.netconf.framing import Deframer, Framing, FramingError, Message, frame


def events(deframer: Deframer) -> list:
    out = []
    while (event := deframer.next_event()) is not None:
        out.append(event)
    return out


def test_end_of_message_split_anywhere():
    wire = frame(b"<a/>", Framing.END_OF_MESSAGE) + frame(b"<b/>", Framing.END_OF_MESSAGE)
    for cut in range(len(wire) + 1):
        d = Deframer()
        d.feed(wire[:cut])
        got = events(d)
        d.feed(wire[cut:])
        got += events(d)
        assert got == [Message(b"<a/>"), Message(b"<b/>")], cut


def test_chunked_round_trip_byte_by_byte():
    wire = frame(b"<rpc>hello</rpc>", Framing.CHUNKED)
    assert wire == b"\n#16\n<rpc>hello</rpc>\n##\n"
    d = Deframer()
    d.set_framing(Framing.CHUNKED)
    got = []
    for byte in wire:
        d.feed(bytes([byte]))
        got += events(d)
    assert got == [Message(b"<rpc>hello</rpc>")]


def test_chunked_message_of_several_chunks():
    d = Deframer()
    d.set_framing(Framing.CHUNKED)
    d.feed(b"\n#4\n<rpc\n#18\n message-id=\"102\"\n\n#79\n" + b"x" * 79 + b"\n##\n")
    assert events(d) == [Message(b'<rpc message-id="102"\n' + b"x" * 79)]


def test_switch_between_messages_in_one_read():
    """The client's hello (EOM) and its first chunked rpc arrive together (RFC 6242 section 4.1)."""
    d = Deframer()
    d.feed(b"<hello/>]]>]]>\n#5\n<rpc/\n#1\n>\n##\n")
    assert d.next_event() == Message(b"<hello/>")
    d.set_framing(Framing.CHUNKED)
    assert d.next_event() == Message(b"<rpc/>")


@pytest.mark.parametrize("bad", [b"\n#0\nx\n##\n", b"\n#01\nx\n##\n", b"\n#abc\n", b"garbage!",
                                 b"\n#99999999999\n", b"\n##\n"])
def test_invalid_chunk_framing_cannot_continue(bad):
    d = Deframer()
    d.set_framing(Framing.CHUNKED)
    d.feed(bad)
    got = events(d)
    assert len(got) == 1 and isinstance(got[0], FramingError)
    assert not got[0].can_continue
    d.feed(frame(b"<a/>", Framing.CHUNKED))
    assert events(d) == []


def test_oversized_eom_message_is_dropped_and_session_continues():
    d = Deframer(max_message_size=100)
    d.feed(b"x" * 500)
    assert events(d) == []
    d.feed(b"x" * 500 + b"]]>]]><ok/>]]>]]>")
    got = events(d)
    assert isinstance(got[0], FramingError) and got[0].too_big and got[0].can_continue
    assert got[1] == Message(b"<ok/>")


def test_oversized_chunked_message_is_dropped_and_session_continues():
    d = Deframer(max_message_size=100)
    d.set_framing(Framing.CHUNKED)
    d.feed(b"\n#80\n" + b"y" * 80 + b"\n#1000\n" + b"z" * 300)
    assert events(d) == []
    d.feed(b"z" * 700 + b"\n##\n" + frame(b"<ok/>", Framing.CHUNKED))
    got = events(d)
    assert isinstance(got[0], FramingError) and got[0].too_big and got[0].can_continue
    assert got[1] == Message(b"<ok/>")


def test_many_tiny_chunks_make_one_message_and_their_framing_counts_to_the_limit():
    tiny = b"".join(b"\n#1\nx" for _ in range(1000)) + b"\n##\n"
    roomy = Deframer(max_message_size=10_000)
    roomy.set_framing(Framing.CHUNKED)
    roomy.feed(tiny)
    assert roomy.next_event() == Message(b"x" * 1000)
    # 1,000 bytes of data, but 5,000 bytes on the wire: over a 2,000-byte limit
    tight = Deframer(max_message_size=2_000)
    tight.set_framing(Framing.CHUNKED)
    tight.feed(tiny)
    event = tight.next_event()
    assert event.too_big and event.can_continue


def test_a_whole_one_chunk_message_is_read_as_when_it_arrives_in_pieces():
    """A message of one chunk received with its end-of-chunks is taken at once; the
    events, and the limit (which counts the chunk header), are those of the bytes
    arriving one by one."""
    wire = frame(b"x" * 100, Framing.CHUNKED)  # a 6-byte header: 106 bytes count
    for limit in (105, 106, 107):
        whole, pieces = Deframer(max_message_size=limit), Deframer(max_message_size=limit)
        whole.set_framing(Framing.CHUNKED)
        pieces.set_framing(Framing.CHUNKED)
        whole.feed(wire + wire)
        got = events(whole)
        expected = []
        for byte in wire + wire:
            pieces.feed(bytes((byte,)))
            expected += events(pieces)
        assert got == expected, limit
        assert (got == [Message(b"x" * 100)] * 2) == (limit >= 106), limit
        assert whole.buffered == pieces.buffered == 0
