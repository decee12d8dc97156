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
