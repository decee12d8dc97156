"""Text as an XML 1.0 document can carry it.

A YANG ``string`` leaf is XML character data: the characters outside XML 1.0's
``Char`` production (section 2.2) cannot appear in it, even as character
references, and lxml refuses them. Text the agent did not write itself (a CA's
statusString, RFC 4210 5.2.3; a certificate name in a forged answer) may hold
them; :func:`xml_text` writes them as ``\\xNN`` instead.
"""

from __future__ import annotations

import re

#: what XML 1.0 cannot carry: the code points outside its Char production (section 2.2),
#: ``#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]``, written as
#: the few ranges left out rather than as the negated production: for a character class,
#: ``re``'s compiler walks in Python each code point of a range below U+10000, 63,000 of
#: them for the negated form (about 20 ms of the agent's start)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """*text* as a YANG string leaf can carry it: the characters XML 1.0 cannot (the
    controls a CA's statusString (RFC 4210 5.2.3), or a certificate name in a forged
    answer, may hold) written as ``\\xNN``; lxml refuses them otherwise."""
    return _NOT_XML.sub(lambda match: _escaped(ord(match[0])), text)


def _escaped(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
