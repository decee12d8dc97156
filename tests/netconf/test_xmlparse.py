"""Hardened XML parsing: no DTDs, no entities, no network, bounded depth."""

from __future__ import annotations

import random

import pytest
from lxml import etree

from agent.netconf import xmlparse
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


# --- the push parser (small messages) against the memory parser (as before) ---

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
DECL = b'<?xml version="1.0" encoding="UTF-8"?>'


def _rpc(body: str, mid: str = "101") -> bytes:
    return f'<rpc message-id="{mid}" xmlns="{NC}">{body}</rpc>'.encode()


def _declared(encoding: str, doc: str) -> bytes:
    return b'<?xml version="1.0" encoding="%s"?>' % encoding.encode() + doc.encode(encoding)


WELL_FORMED = [
    f'<hello xmlns="{NC}"><capabilities><capability>{NC}</capability>'
    f'<capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>'.encode(),
    _rpc('<get-config><source><running/></source><filter type="subtree">'
         '<pki xmlns="urn:example:cmp-agent:pki"><file-format/></pki></filter></get-config>'),
    _rpc('<get><filter type="xpath" xmlns:p="urn:example:cmp-agent:pki" select="/p:pki/p:file-format"/></get>'),
    _rpc(f'<edit-config><target><candidate/></target><default-operation>merge</default-operation>'
         f'<config><pki xmlns="urn:example:cmp-agent:pki" xmlns:nc="{NC}" nc:operation="remove"/>'
         f'</config></edit-config>'),
    _rpc("<commit/>"), _rpc("<close-session/>"), _rpc("<kill-session><session-id>4</session-id></kill-session>"),
    _rpc("<lock><target><running/></target></lock>", mid="a&amp;b&lt;&gt;&quot;&apos;"),
    _rpc("<x>caf\u00e9 \u2603 &#233;&#x2603; &amp;</x>"),
    _rpc("<x><![CDATA[<not-a-tag> & ]]></x><!-- comment --><?pi data?>"),
    _rpc("<x>\n  <y>  </y>\n  <z>text</z>\n</x>\n"),
    b"<!-- before --><?pi before?><r/><!-- after --><?pi after?>\n \t",
    b'<nc:rpc xmlns:nc="' + NC.encode() + b'" nc:message-id="1"><nc:get/></nc:rpc>',
    b'<r xmlns="relative"/>', b'<r xmlns:a="urn:a"><a:b xmlns:a="urn:b"/><c xmlns=""/></r>',
    b"<r a='1' b=\"2\"  c = '3' />", b"<r>\r\n</r>", b"<r/>", b"<r></r>",
    DECL + _rpc("<get/>"), DECL + b"\n" + _rpc("<get/>"),
    b'<?xml version="1.0"?><r/>', b"<?xml version='1.0' encoding='utf-8' standalone='yes'?><r/>",
    b'<?xml version="1.0" encoding="US-ASCII"?><r>&#233;</r>',
    b'<?xml version="1.0" encoding="ISO-8859-1"?><r a="\xe9">\xe9</r>',
    b'<?xml version="1.0" encoding="windows-1252"?><r>\x80</r>',
    b'<?xml version="1.1"?><r/>', b'<?xml version="1.0" encoding="UTF-16"?><r/>',
    b"\xef\xbb\xbf<r/>", b"\xef\xbb\xbf" + DECL + b"<r/>",
    "<r>\u00e9</r>".encode("utf-16"), "<r>\u00e9</r>".encode("utf-32"),
    "<r/>".encode("utf-32-le"), "<r/>".encode("utf-32-be"),  # lxml reads UTF-32 without a BOM
    _declared("UTF-7", "<r a='&amp;'>&lt;\u00e9</r>"), _declared("ISO-2022-JP", "<r>\u3042</r>"),
    b'<?xml version="1.0"?><r xmlns="relative"/>', b"<r xmlns='relative'>&amp;</r>",
    '<?xml version="1.0" encoding="UTF-16"?><r/>'.encode("utf-16"),
    b"<a>" * 64 + b"</a>" * 64, b"<a>" * 65 + b"</a>" * 65,
    b"<r " + b" ".join(b'a%d="v"' % i for i in range(64)) + b"/>",
    b"<r " + b" ".join(b'a%d="v"' % i for i in range(65)) + b"/>",
]

MALFORMED = [
    b"", b" ", b"\n\t ", b"<", b"<r", b"<r>", b"<r></s>", b"<r/><s/>", b"<r/>junk", b"junk<r/>",
    b"<r>&x;</r>", b'<r a="&x;"/>', b"<r>&x;", b"<r>&x</r>", b"<r>&#0;</r>", b"<r>&#xD800;</r>",
    b"<r>&amp</r>", b"<r>&;</r>", b"<r/>&x;", b"<a><r a='&x;'/></a>",
    b"<r>a\0b</r>", b"<r\0/>", b"<\0r/>", b"\0<r/>", b"<r>\xff</r>", b"<r>\xc3</r>", b"<r>\xed\xa0\x80</r>",
    b"\xff\xfe<r/>", b"\xfe\xff<r/>", b"\xff\xfe\0\0<r/>", "<r/>".encode("utf-16-le"), "<r/>".encode("utf-16-be"),
    b'<?xml version="1.0" encoding="bogus"?><r/>', b'<?xml version="1.0" encoding="UTF-32"?><r/>',
    b'<?xml version="2.0"?><r/>', b'<?xml encoding="UTF-8"?><r/>', b" <?xml version='1.0'?><r/>",
    b"<r/><?xml version='1.0'?>", b'<?xml version="1.0" encoding="cp500"?><r/>',
    '<?xml version="1.0" encoding="cp500"?><r/>'.encode("cp500"),
    b"<!DOCTYPE r><r/>", b"<!doctype r><r/>", b"<!DOCTYPE", b"<?xml version='1.0'?><!DOCTYPE r><r/>",
    "<!DOCTYPE r><r/>".encode("utf-16"), "<!DOCTYPE r [<!ENTITY a 'b'>]><r>&a;</r>".encode("utf-32"),
    b"<r><![CDATA[x</r>", b"<r><!-- x </r>", b"<r><!-- a -- b --></r>", b"<r><?xml x?></r>",
    b"<r a='1' a='2'/>", b"<r a=1/>", b"<r a='<'/>", b"<1r/>", b"<r:/>", b"<p:r/>", b"<r xmlns:p=''/>",
    b"<r>]]></r>", b"</r>", b"<r/></r>",
    # an ASCII XML declaration naming an encoding in which "<", "!" or "&" are other bytes
    *(_declared(enc, "<!DOCTYPE r SYSTEM 'http://127.0.0.1:9/x'><r/>")
      for enc in ("UTF-7", "ISO-2022-JP", "IBM500", "IBM037", "UTF-16LE")),
    _declared("UTF-7", "<r>&x;</r>"), b'<?xml version="1.0" encoding="UTF-7"?><r>+ACY-x;</r>',
    b"<a>" * 300 + b"</a>" * 300, b"<a>" * 10_000,
    b"<r " + b" ".join(b'a%d="v"' % i for i in range(5000)) + b"/>",
]


def _outcome(data: bytes):
    try:
        root = parse_message(data)
    except XmlError as exc:
        return "error", str(exc)
    info = root.getroottree().docinfo
    return ("tree", etree.tostring(root), info.encoding, info.xml_version, info.standalone,
            [e.sourceline for e in root.iter()])


def _both(data: bytes, monkeypatch):
    new = _outcome(data)
    with monkeypatch.context() as m:
        m.setattr(xmlparse, "PUSH_MAX", -1)  # the memory parser only, as before the push parser
        old = _outcome(data)
    return new, old


def _sizes() -> list[bytes]:
    """Messages just under and over the push parser's limit."""
    out = []
    for size in (xmlparse.PUSH_MAX - 1, xmlparse.PUSH_MAX, xmlparse.PUSH_MAX + 1):
        filler = size - len(_rpc("<x></x>"))
        out.append(_rpc(f"<x>{'y' * filler}</x>"))
        out.append(_rpc(f"<x>{'y' * (filler - 4)}&x;</x>"))
    assert [len(d) for d in out[::2]] == [xmlparse.PUSH_MAX - 1, xmlparse.PUSH_MAX, xmlparse.PUSH_MAX + 1]
    return out


@pytest.mark.parametrize("data", WELL_FORMED + MALFORMED + _sizes())
def test_push_parser_answers_as_the_memory_parser(data, monkeypatch):
    new, old = _both(data, monkeypatch)
    assert new == old
    # and the push parser, whatever it met, reads the next message afresh
    assert parse_message(b"<next/>").tag == "next"


class _Spy:
    """The thread's push parser, counting what it answered."""

    def __init__(self, parser):
        self.parser, self.trees, self.errors, self.logged = parser, 0, 0, 0

    def feed(self, data):
        try:
            self.parser.feed(data)
        except etree.XMLSyntaxError:
            self.errors += 1
            raise

    def close(self):
        try:
            root = self.parser.close()
        except etree.XMLSyntaxError:
            self.errors += 1
            raise
        self.trees += 1
        return root

    @property
    def feed_error_log(self):
        log = self.parser.feed_error_log
        self.logged += bool(log)
        return log


def test_corpus_takes_every_path(monkeypatch):
    """The corpus has the push parser's trees, its refusals, its distrusted trees
    (an entity reference or an XML declaration and something in its log) and
    messages it is not given (too large, not starting as UTF-8 does)."""
    spy = _Spy(xmlparse._this_thread.push)
    monkeypatch.setattr(xmlparse._this_thread, "push", spy)
    outcomes = [_outcome(d)[0] for d in WELL_FORMED + MALFORMED + _sizes()]
    assert spy.trees > 30 and spy.errors > 40 and spy.logged >= 3, vars(spy)
    assert spy.trees + spy.errors < len(outcomes)
    assert outcomes.count("tree") > 30 and outcomes.count("error") > 50
    assert "Entity 'x' not defined" in _outcome(b"<r>&x;</r>")[1]


def _mutations(rng: random.Random, base: list[bytes], n: int):
    specials = [b"<", b">", b"&", b";", b"/", b"!", b"?", b"'", b'"', b"=", b"[", b"]", b"\0", b"\xff", b"\xc3",
                b" ", b":", b"&x;", b"&amp;", b"&#0;", b"<!DOCTYPE r>", b"]]>", b"<!--", b"-->", b"<?", b"?>",
                b"<![CDATA[", b"\xef\xbb\xbf", b"<?xml version='1.0'?>", b'encoding="UTF-16"', b"</x>", b"<x>"]
    for _ in range(n):
        data = bytearray(rng.choice(base))
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            op = rng.randrange(6)
            i = rng.randrange(len(data) + 1)
            if op == 0 and data:  # flip a byte
                data[min(i, len(data) - 1)] = rng.randrange(256)
            elif op == 1:  # truncate
                del data[i:]
            elif op == 2:  # insert a special
                data[i:i] = rng.choice(specials)
            elif op == 3 and data:  # delete a run
                del data[i:i + rng.randrange(1, 8)]
            elif op == 4:  # duplicate a slice
                j = rng.randrange(len(data) + 1)
                data[i:i] = data[min(i, j):max(i, j)][:64]
            else:  # overwrite with a special
                s = rng.choice(specials)
                data[i:i + len(s)] = s
        yield bytes(data)


def test_push_parser_answers_as_the_memory_parser_on_mutations(monkeypatch):
    rng = random.Random(6241)
    base = [d for d in WELL_FORMED if len(d) < 2000] + [DECL + _rpc("<get/>")]
    seen = {"tree": 0, "error": 0}
    for data in _mutations(rng, base, 5000):
        new, old = _both(data, monkeypatch)
        assert new == old, data
        seen[new[0]] += 1
    assert seen["tree"] > 300 and seen["error"] > 3000, seen


def test_push_parser_is_per_thread_and_reset_after_an_error():
    from concurrent.futures import ThreadPoolExecutor

    import threading

    # four tasks at a time wait for each other: the pool runs them on four threads
    # (it reuses an idle thread otherwise)
    together = threading.Barrier(4)

    def work(i: int):
        together.wait(timeout=30)
        out = []
        for _ in range(50):
            with pytest.raises(XmlError):
                parse_message(b"<a><b>")  # ends mid-document
            out.append(parse_message(_rpc("<get/>", mid=str(i))).get("message-id"))
        return threading.get_ident(), xmlparse._this_thread.push, out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    assert all(out == [str(i)] * 50 for i, (_, _, out) in enumerate(results))
    by_thread: dict[int, set[int]] = {}
    for ident, parser, _ in results:
        by_thread.setdefault(ident, set()).add(id(parser))
    # one parser per thread, each its own, none the main thread's
    assert len(by_thread) == 4 and all(len(ids) == 1 for ids in by_thread.values())
    parsers = set().union(*by_thread.values())
    assert len(parsers) == 4 and id(xmlparse._this_thread.push) not in parsers
    # a feed parser that met a refused message is not left inside it
    with pytest.raises(XmlError):
        parse_message(b"<a>")
    assert etree.tostring(parse_message(b"<b/>")) == b"<b/>"


def test_push_parser_replaced_after_an_unexpected_failure(monkeypatch):
    class Failing:
        def feed(self, data):
            raise MemoryError

    monkeypatch.setattr(xmlparse._this_thread, "push", Failing())
    assert parse_message(b"<r><s/></r>")[0].tag == "s"  # the memory parser answered
    assert isinstance(xmlparse._this_thread.push, etree.XMLParser)
    assert parse_message(b"<r/>").tag == "r"
