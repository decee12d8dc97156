"""Hardened XML parsing: no DTDs, no entities, no network, bounded depth."""

from __future__ import annotations

import pytest

from agent.netconf.xmlparse import MAX_DEPTH, XmlError, parse_message


def test_plain_message_parses():
    root = parse_message(b'<?xml version="1.0" encoding="UTF-8"?><rpc message-id="1"><get/></rpc>')
    assert root.tag == "rpc" and root[0].tag == "get"


@pytest.mark.parametrize("doc", [
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><r>&b;</r>',
    b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
])
def test_doctype_is_refused(doc):
    with pytest.raises(XmlError, match="DOCTYPE"):
        parse_message(doc)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp500"])
def test_doctype_is_refused_in_any_encoding(encoding):
    """The byte search for a DOCTYPE sees only an ASCII-compatible one; in an
    encoding libxml2 reads (UTF-16 and UTF-32 with a byte order mark) the parsed
    tree tells; what it does not read is malformed."""
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding == "cp500" else ""
    refusal = "DOCTYPE" if encoding in ("utf-16", "utf-32") else "not well-formed"
    for doc in (decl + '<!DOCTYPE r [<!ENTITY a "aa">]><r>&a;</r>', decl + "<!DOCTYPE r><r/>"):
        data = doc.encode(encoding)
        assert b"<!DOCTYPE" not in data
        with pytest.raises(XmlError, match=refusal):
            parse_message(data)


def test_undeclared_entity_is_malformed():
    with pytest.raises(XmlError, match="not well-formed"):
        parse_message(b"<r>&x;</r>")


def test_depth_is_bounded():
    ok = b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH
    parse_message(ok)
    deep = b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1)
    with pytest.raises(XmlError, match="deeper"):
        parse_message(deep)


@pytest.mark.parametrize("doc", [b"", b"<a>", b"<a></b>", b"\xff\xfe<a/>", b"<a/><b/>"])
def test_malformed_is_refused(doc):
    with pytest.raises(XmlError):
        parse_message(doc)


def test_attributes_per_element_are_bounded():
    from agent.netconf.xmlparse import MAX_ATTRIBUTES

    def doc(n: int) -> bytes:
        attrs = " ".join(f'a{i}="v"' for i in range(n))
        return f'<rpc message-id="1"><get {attrs}/></rpc>'.encode()

    parse_message(doc(MAX_ATTRIBUTES))
    with pytest.raises(XmlError, match="more than 64 attributes"):
        parse_message(doc(MAX_ATTRIBUTES + 1))
    # the reproducer of issue 9: 100,000 attributes are refused at once, not copied
    with pytest.raises(XmlError, match="attributes"):
        parse_message(doc(100_000))
