"""NETCONF message framing over SSH (RFC 6242 section 4), sans-IO.

Two framings exist. Until both hellos have been exchanged (and afterwards, if
either side speaks only ``base:1.0``) every message ends with the
end-of-message marker ``]]>]]>`` (RFC 6242 section 4.3). When both sides
advertise ``base:1.1`` the session switches to chunked framing
(RFC 6242 section 4.2)::

    \\n#<chunk-size>\\n<chunk-data> ... \\n##\\n

:class:`Deframer` turns received bytes into :class:`Message` or
:class:`FramingError` events, one per :meth:`Deframer.next_event` call, so
that the caller can switch the framing exactly between the client's hello and
the message after it. :func:`frame` does the opposite for sending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

EOM = b"]]>]]>"
#: RFC 6242 section 4.2: chunk-size is 1..4294967295, no leading zeros
MAX_CHUNK_SIZE = 4294967295
#: default largest message the agent accepts (bytes of XML, without framing)
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_CHUNK_HEADER = re.compile(rb"\n#([1-9][0-9]{0,9})\n")
_END_OF_CHUNKS = b"\n##\n"
# the longest header that can still be incomplete: "\n#" + 10 digits + "\n"
_MAX_HEADER_LEN = 13


class Framing(Enum):
    """The two framing mechanisms of RFC 6242 section 4."""

    END_OF_MESSAGE = "base:1.0"
    CHUNKED = "base:1.1"


@dataclass(slots=True)  # not frozen: its __init__ would cost every RPC ~4k instructions
class Message:
    """One complete NETCONF message (the XML document, framing removed)."""

    data: bytes


@dataclass(frozen=True)
class FramingError:
    """The byte stream broke the framing rules or a limit.

    *can_continue* tells whether the deframer found the end of the offending
    message and can go on with the next one (answer ``malformed-message`` or
    ``too-big`` and keep the session), or whether the stream cannot be
    resynchronised and the session has to be closed (RFC 6242 section 4.2).
    """

    reason: str
    can_continue: bool
    too_big: bool = False


Event = Message | FramingError


def frame(data: bytes, framing: Framing) -> bytes:
    """*data* framed for sending (RFC 6242 sections 4.2 and 4.3)."""
    if framing is Framing.END_OF_MESSAGE:
        return data + EOM
    return b"\n#%d\n%s\n##\n" % (len(data), data)


class Deframer:
    """Reassembles messages from received bytes (RFC 6242 section 4).

    Feed bytes with :meth:`feed`; call :meth:`next_event` until it returns
    ``None``. Switch framing with :meth:`set_framing` between events.
    After a non-recoverable :class:`FramingError` the deframer returns no
    further events.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE):
        self.framing = Framing.END_OF_MESSAGE
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._scan_from = 0  # EOM search resumes here (no rescans of long messages)
        self._message = bytearray()  # chunked: data of the message so far
        self._chunked_size = 0
        self._discarding = False  # skipping the rest of an oversized message
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes held for messages not yet complete."""
        return len(self._buf) + len(self._message)

    def set_framing(self, framing: Framing) -> None:
        """Use *framing* from the next message on (RFC 6242 section 4.1)."""
        self.framing = framing
        self._scan_from = 0

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        if not self._broken:
            self._buf += data

    def next_event(self) -> Event | None:
        """The next complete message or framing error, or ``None`` if more bytes are needed."""
        if self._broken or not self._buf:  # nothing to read (as after every whole message)
            return None
        if self.framing is Framing.END_OF_MESSAGE:
            return self._next_eom()
        return self._next_chunked()

    # --- RFC 6242 section 4.3: end-of-message framing --------------------------------
    def _next_eom(self) -> Event | None:
        buf = self._buf
        end = buf.find(EOM, self._scan_from)
        if end < 0:
            # keep the last bytes: they may be the start of a split marker
            self._scan_from = max(0, len(buf) - len(EOM) + 1)
            if len(buf) > self.max_message_size + len(EOM):
                self._discarding = True
                keep = bytes(buf[-(len(EOM) - 1):])
                buf.clear()
                buf += keep
                self._scan_from = 0
            return None
        data = bytes(buf[:end])
        del buf[: end + len(EOM)]
        self._scan_from = 0
        if self._discarding or end > self.max_message_size:
            self._discarding = False
            return FramingError(
                f"message larger than the limit of {self.max_message_size} bytes",
                can_continue=True, too_big=True)
        return Message(data)

    # --- RFC 6242 section 4.2: chunked framing ---------------------------------------
    def _next_chunked(self) -> Event | None:
        buf = self._buf
        if not self._chunked_size and not self._discarding:
            # the usual message: one chunk and end-of-chunks, all received
            match = _CHUNK_HEADER.match(buf)
            if match is not None:
                size = int(match.group(1))
                start = match.end()
                end = start + size
                # the limit counts the chunk's header too, as below
                if (size <= MAX_CHUNK_SIZE and end <= self.max_message_size
                        and buf.startswith(_END_OF_CHUNKS, end)):
                    data = bytes(buf[start:end])
                    del buf[:end + 4]
                    return Message(data)
        pos = 0  # bytes consumed; deleted once on the way out, not once per chunk
        try:
            while True:
                if len(buf) - pos < 4:
                    return None
                if buf.startswith(_END_OF_CHUNKS, pos):
                    pos += 4
                    return self._end_of_message()
                match = _CHUNK_HEADER.match(buf, pos)
                if match is None:
                    head = bytes(buf[pos:pos + _MAX_HEADER_LEN])
                    if len(buf) - pos >= _MAX_HEADER_LEN or not _may_be_header_prefix(head):
                        pos = 0
                        return self._break("invalid chunk header (RFC 6242 section 4.2)")
                    return None
                size = int(match.group(1))
                if size > MAX_CHUNK_SIZE:
                    pos = 0
                    return self._break("chunk-size above 4294967295 (RFC 6242 section 4.2)")
                start = match.end()
                # the limit counts the framing too: tiny chunks cannot multiply the cost
                cost = start - pos + size
                if len(buf) - start < size:
                    if self._chunked_size + cost > self.max_message_size:
                        # drop what is there already, remember how much is still to skip
                        self._discarding = True
                        self._message.clear()
                    if not self._discarding:
                        return None
                    del buf[:pos]
                    start, pos = start - pos, 0
                    return self._skip_partial(start, size)
                if not self._discarding:
                    self._message += buf[start:start + size]
                self._chunked_size += cost
                pos = start + size
                if self._chunked_size > self.max_message_size:
                    self._discarding = True
                    self._message.clear()
        finally:
            if pos:
                del buf[:pos]

    def _skip_partial(self, start: int, size: int) -> None:
        """Drop the received part of a chunk of an oversized message."""
        have = len(self._buf) - start
        del self._buf[start:]
        # rewrite the header so that the remaining bytes of the chunk are still counted
        self._buf[:] = b"\n#%d\n" % (size - have)
        self._chunked_size += have
        return None

    def _end_of_message(self) -> Event:
        if self._discarding:
            self._discarding = False
            self._chunked_size = 0
            return FramingError(
                f"message larger than the limit of {self.max_message_size} bytes",
                can_continue=True, too_big=True)
        if not self._chunked_size:
            return self._break("end-of-chunks without any chunk (RFC 6242 section 4.2)")
        data = bytes(self._message)
        self._message.clear()
        self._chunked_size = 0
        return Message(data)

    def _break(self, reason: str) -> FramingError:
        self.close()
        return FramingError(reason, can_continue=False)

    def close(self) -> None:
        """Drop what is buffered and accept no more bytes (the session is over)."""
        self._broken = True
        self._buf.clear()
        self._message.clear()


def _may_be_header_prefix(data: bytes) -> bool:
    """Whether *data* could still grow into a chunk header or end-of-chunks."""
    if not data.startswith(b"\n#"):
        return not data or data == b"\n"[: len(data)]
    rest = data[2:]
    if rest in (b"", b"#"):
        return True
    if rest == b"##\n"[: len(rest)]:
        return True
    digits = rest.rstrip(b"\n") if rest.endswith(b"\n") else rest
    return digits.isdigit() and not digits.startswith(b"0") and not rest.endswith(b"\n")
