"""``display pki cmp statistics [ session NAME ]`` as a table, from a ``<get>`` reply.

The rows are what the reply holds, in its order: the module's ``statistics``
grouping (RFC 4210 message body types, PKIStatus outcomes, failures, the last
request; see yang/cmp-agent-pki.yang). Nothing here lists the counters, so a
counter the module gains is shown without a change here: a container of
numbers is a group of counters (a list entry in it, such as a PKIFailureInfo
bit, a counter named by its key), another container a group of details (the
last request), a leaf outside containers a time. Labels come from the names
(``cert-conf`` -> ``CertConf``; a message body type in capitals, ``ir`` ->
``IR``), a few of them as the device writes them (:data:`_LABELS`).
"""

from __future__ import annotations

from lxml import etree

from .operations import NC_NS, PKI_NS

_NS = {"p": PKI_NS, "nc": NC_NS}

#: labels that are not made from the name
_LABELS = {"pki-conf": "PKIConf", "error": "Error", "failure-info": "FailInfo",
           "duration-ms": "Duration (ms)", "next-auto-update": "Next automatic update",
           "discontinuity-time": "Counters reset at"}
_WIDTH = 64


def _name(el: etree._Element) -> str:
    return etree.QName(el).localname


def _elements(el: etree._Element) -> list[etree._Element]:
    return [child for child in el if isinstance(child.tag, str)]


def _value(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _counter_label(name: str, group: str) -> str:
    """``cert-conf`` -> ``CertConf``; in a messages group, a body type ``ir`` -> ``IR``."""
    if name in _LABELS:
        return _LABELS[name]
    if group.startswith("messages-") and "-" not in name:
        return name.upper()
    return "".join(word.capitalize() for word in name.split("-"))


def _label(name: str) -> str:
    """``start-time`` -> ``Start time``."""
    return _LABELS.get(name) or name.replace("-", " ").capitalize()


def _row(first: str, second: str, value: str) -> str:
    """Three columns, the value right-aligned at the table's width (after a longer label)."""
    row = f"{first:<22}{second:<20}"
    return row + " " * max(1, _WIDTH - len(row) - len(value)) + value


def _is_counters(container: etree._Element) -> bool:
    leaves = [el for el in _elements(container) if not _elements(el)]
    return all(_value(el).isdigit() for el in leaves)


def statistics_table(stats: etree._Element, title: str) -> list[str]:
    """The rows of one ``statistics`` (or ``cmp-statistics``) container."""
    lines = [title, "-" * _WIDTH, f"{'Item':<22}{'Counter':<20}{'Value':>22}", "-" * _WIDTH]
    details: list[str] = []
    times: list[str] = []
    for child in _elements(stats):
        name = _name(child)
        members = _elements(child)
        if not members:
            times.append(f"{_label(name):<30}{_value(child):>34}")
        elif _is_counters(child):
            group = _label(name)
            for member in members:
                entry = _elements(member)
                if entry:  # a list entry: its key, then its count
                    label = f"{_counter_label(_name(member), name)} {_value(entry[0])}"
                    value = _value(entry[-1])
                else:
                    label, value = _counter_label(_name(member), name), _value(member)
                lines.append(_row(group, label, value or "0"))
                group = ""
        else:
            details.append("-" * _WIDTH)
            group = _label(name)
            for member in members:
                if _value(member):
                    details.append(_row(group, _label(_name(member)), _value(member)))
                    group = ""
    lines += details
    if times:
        lines += ["-" * _WIDTH, *times]
    lines.append("-" * _WIDTH)
    return lines


def format_statistics(reply: etree._Element, session: str | None) -> list[str]:
    """The output of ``display pki cmp statistics``; raises LookupError for an unknown session."""
    data = reply.find("nc:data", _NS)
    if session is not None:
        found = data.xpath("p:pki/p:cmp-session[p:name=$n]/p:statistics", namespaces=_NS,
                           n=session) if data is not None else []
        if not found:
            raise LookupError(f"Error: The CMP session {session} does not exist"
                              " (configure it with 'pki cmp session' and commit).")
        return statistics_table(found[0], f"CMP statistics of session {session}")
    total = data.find("p:pki/p:cmp-statistics", _NS) if data is not None else None
    lines = statistics_table(total if total is not None else etree.Element("empty"),
                             "CMP statistics of all sessions")
    sessions = data.findall("p:pki/p:cmp-session", _NS) if data is not None else []
    if sessions:
        lines += ["", f"{'Session':<20}{'IR':>6}{'CR':>6}{'KUR':>6}{'Accepted':>10}"
                      f"{'Rejected':>10}  Last result", "-" * _WIDTH]
        for s in sessions:
            st = s.find("p:statistics", _NS)

            def text(path: str, default: str = "0") -> str:
                return _value(st.find(path, _NS) if st is not None else None) or default

            lines.append(
                f"{_value(s.find('p:name', _NS)) or '?':<20}{text('p:messages-sent/p:ir'):>6}"
                f"{text('p:messages-sent/p:cr'):>6}{text('p:messages-sent/p:kur'):>6}"
                f"{text('p:outcomes/p:accepted'):>10}{text('p:outcomes/p:rejection'):>10}"
                f"  {text('p:last-request/p:result', '-')}")
    return lines
