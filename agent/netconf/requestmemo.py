"""Repeated requests: a message's bytes but for its ``<rpc>``'s message-id, and a memo of them.

Pollers send the same small request again and again; only the value of the
``<rpc>``'s ``message-id`` attribute changes. That value is the client's own
(RFC 6241 section 4.1); the server copies it, with every other attribute of
the ``<rpc>``, onto the ``<rpc-reply>`` (section 4.2) and reads nothing else of
it. :func:`template` cuts it out of a message; the server keeps, in a
:class:`RequestMemo`, what answering a request took, under its template, and
answers a request with the same template without parsing it again.

Why two messages with the same template parse to the same tree but for that
value: :func:`template` accepts only a message whose ``<rpc ...>`` start tag a
strict grammar reads from the first byte, a subset of XML 1.0's (section 2.8
prolog, section 3.1 start tag): white space, an optional XML declaration that
names no encoding but UTF-8, white space, ``<``, an optional prefix, ``rpc``,
then attributes, each ``name="value"`` or ``name='value'`` with ASCII names and
values holding no ``<``, ``&`` or their quote, then ``>``. So the unprefixed
``message-id`` attribute it finds is the ``<rpc>``'s, never text inside
another attribute's value (``x='a message-id="1"'``). Its value is made of
``[A-Za-z0-9._:-]`` only: no character that attribute-value normalization
changes (XML 1.0 section 3.3.3: references, tab, CR and LF), so the parsed
value is the raw bytes; and none that a serializer escapes, so the reply
carries the raw bytes too. The template keeps the bytes before and after the
value apart, so only messages with the value in the same place share one.
Everything else (no match, a message larger than the memo takes) gets no
template and is parsed as any message is.

The grammar is checked when a template is stored (:meth:`RequestMemo.put`), not
on every look-up (:meth:`RequestMemo.find`, which only cuts out the first
``message-id="value"`` with a value of those characters): a message with the
same bytes around another such value is read by the grammar just as the stored
one was, so every message the memo answers is one the grammar reads.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: the bytes before and after the value of the ``<rpc>``'s message-id
Key = tuple[bytes, bytes]

#: requests the memo keeps, the ones used last
MAX_ENTRIES = 256
#: the largest message the memo takes (pollers' requests are a few hundred bytes)
MAX_MESSAGE_SIZE = 4096

_S = r"[ \t\r\n]"
_NAME = r"[A-Za-z_][A-Za-z0-9._-]*"
_EQ = rf"{_S}*={_S}*"
_VALUE = r"""(?:"[^"<&\t\r\n]*"|'[^'<&\t\r\n]*')"""
_ATTRIBUTE = rf"{_S}+{_NAME}(?::{_NAME})?{_EQ}{_VALUE}"
_SAFE = r"[A-Za-z0-9._:-]{1,64}"
#: where :meth:`RequestMemo.find` cuts a message (the grammar checked on storing)
_FIRST_MESSAGE_ID = re.compile(rf"message-id{_EQ}([\"'])({_SAFE})\1".encode())
_DECLARATION = (rf"<\?xml{_S}+version{_EQ}(?:\"1\.[0-9]+\"|'1\.[0-9]+')"
                rf"(?:{_S}+encoding{_EQ}(?:\"(?i:utf-8)\"|'(?i:utf-8)'))?"
                rf"(?:{_S}+standalone{_EQ}(?:\"(?:yes|no)\"|'(?:yes|no)'))?{_S}*\?>")
#: the start tag of the <rpc>, up to the value of its first unprefixed message-id
#: (the attributes before it are not named message-id), then to its ">"
_RPC_START = re.compile(
    rf"{_S}*(?:{_DECLARATION}{_S}*)?<(?:{_NAME}:)?rpc"
    rf"(?:(?!{_S}+message-id{_EQ}){_ATTRIBUTE})*"
    rf"{_S}+message-id{_EQ}([\"'])({_SAFE})\1"
    rf"(?:{_ATTRIBUTE})*{_S}*>".encode())


@dataclass(slots=True)
class Template:
    """A message cut at the value of its message-id: the bytes around it, and the value."""

    key: Key
    message_id: str


def template(data: bytes) -> Template | None:
    """*data* without the value of its ``<rpc>``'s message-id, and that value;
    ``None`` unless the start tag is read as the module docstring says."""
    return _cut(data, _RPC_START.match(data))


def _cut(data: bytes, found: re.Match[bytes] | None) -> Template | None:
    if found is None:
        return None
    start, end = found.span(2)
    return Template((data[:start], data[end:]), found.group(2).decode("ascii"))


@dataclass(slots=True)
class MemoEntry(Generic[T]):
    """A request answered before: the head of its reply's ``<rpc-reply>`` start tag
    before and after the message-id's value, and what answering it again takes."""

    before: bytes
    after: bytes
    value: T


class RequestMemo(Generic[T]):
    """The *max_entries* requests of at most *max_message_size* bytes used last, by
    :attr:`Template.key`. The server's own: what a request needs does not depend on
    who sent it (access control is decided on each use).

    A request is kept the second time one of its template is answered
    (:meth:`admits`): one that never comes again (a filter made for one request)
    would cost the keeping and then its eviction, and save nothing."""

    def __init__(self, max_entries: int = MAX_ENTRIES,
                 max_message_size: int = MAX_MESSAGE_SIZE):
        self.max_entries = max_entries
        self.max_message_size = max_message_size
        self._entries: OrderedDict[Key, MemoEntry[T]] = OrderedDict()
        #: the templates of the *max_entries* requests answered once last, not kept
        self._once: OrderedDict[Key, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, data: bytes) -> Template | None:
        """Where to look *data* up: cut at its first ``message-id="value"`` (a value
        :func:`template` accepts), if the memo may take a message of its size."""
        if len(data) > self.max_message_size:
            return None
        return _cut(data, _FIRST_MESSAGE_ID.search(data))

    def get(self, key: Key) -> MemoEntry[T] | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def admits(self, found: Template) -> bool:
        """Whether to keep a request of template *found* that was answered: yes if
        *found* is among the templates of the last *max_entries* requests answered
        once (then it leaves them), else no (and it joins them)."""
        key = found.key
        if key in self._once:
            del self._once[key]
            return True
        self._once[key] = None
        if len(self._once) > self.max_entries:
            self._once.popitem(last=False)
        return False

    def put(self, found: Template, entry: MemoEntry[T]) -> None:
        """Keep *entry* for the messages of template *found* (from :meth:`find`),
        unless :func:`template` does not read that message the same way."""
        before, after = found.key
        if template(b"%s%s%s" % (before, found.message_id.encode(), after)) != found:
            return
        self._entries[found.key] = entry
        self._entries.move_to_end(found.key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._once.clear()
