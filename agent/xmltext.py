"""Text as an XML 1.0 document can carry it.

A YANG ``string`` leaf is XML character data: the characters outside XML 1.0's
``Char`` production (section 2.2) cannot appear in it, even as character
references, and lxml refuses them. Text the agent did not write itself (a CA's
statusString, RFC 4210 5.2.3; a certificate name in a forged answer) may hold
them; :func:`xml_text` writes them as ``\\xNN`` instead.
"""

from __future__ import annotations

import re

#: what XML 1.0 cannot carry (outside its Char production, section 2.2)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """*text* as a YANG string leaf can carry it: the characters XML 1.0 cannot (the
    controls a CA's statusString (RFC 4210 5.2.3), or a certificate name in a forged
    answer, may hold) written as ``\\xNN``; lxml refuses them otherwise."""
    return _NOT_XML.sub(lambda match: _escaped(ord(match[0])), text)


def _escaped(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
