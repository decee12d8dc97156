"""agent/xmltext.py: text as an XML 1.0 document can carry it (section 2.2, Char)."""

from lxml import etree

from agent.xmltext import xml_text


def test_what_xml_carries_is_kept_as_is():
    text = "tab\there\nline\r é \ud7ff \ue000 \ufffd \U0001f600"
    assert xml_text(text) == text


def test_what_xml_cannot_carry_is_written_escaped_and_lxml_takes_it():
    text = "CA\x00\x01\x1b[2J\x7f-\ud800-\ufffe\uffff"
    escaped = xml_text(text)
    assert escaped == "CA\\x00\\x01\\x1b[2J\x7f-\\ud800-\\ufffe\\uffff"
    element = etree.Element("status-text")
    element.text = escaped
    assert etree.fromstring(etree.tostring(element)).text == escaped


def test_every_code_point_as_the_char_production_says():
    """XML 1.0 section 2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
    [#x10000-#x10FFFF]; every other code point is escaped, one by one."""
    def is_char(c: int) -> bool:
        return (c in (0x9, 0xA, 0xD) or 0x20 <= c <= 0xD7FF or 0xE000 <= c <= 0xFFFD
                or 0x10000 <= c <= 0x10FFFF)

    every = "".join(map(chr, range(0x110000)))
    expected = "".join(ch if is_char(ord(ch)) else
                       (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
                       for ch in every)
    assert xml_text(every) == expected
