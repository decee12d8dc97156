"""``display pki cmp statistics [ session NAME ]`` as a table, from a ``<get>`` reply.

The counters are the module's ``statistics`` grouping (RFC 4210 message
body types, PKIStatus outcomes, failures); see yang/cmp-agent-pki.yang.
"""

from __future__ import annotations

from lxml import etree

from .operations import NC_NS, PKI_NS

_NS = {"p": PKI_NS, "nc": NC_NS}

#: (group title, container, [(label, leaf)])
_GROUPS = (
    ("Messages sent", "messages-sent", (("IR", "ir"), ("CR", "cr"), ("KUR", "kur"),
                                        ("CertConf", "cert-conf"), ("PollReq", "poll-req"))),
    ("Messages received", "messages-received", (("IP", "ip"), ("CP", "cp"), ("KUP", "kup"),
                                                ("PKIConf", "pki-conf"), ("PollRep", "poll-rep"),
                                                ("Error", "error"))),
    ("Outcomes", "outcomes", (("Accepted", "accepted"), ("GrantedWithMods", "granted-with-mods"),
                              ("Rejection", "rejection"), ("Waiting", "waiting"))),
    ("Failures", "failures", (("Transport", "transport"), ("Timeout", "timeout"),
                              ("Protection", "protection"))),
)
_LAST = (("Type", "type"), ("Trigger", "trigger"), ("Start time", "start-time"),
         ("Duration (ms)", "duration-ms"), ("Result", "result"), ("Reason", "reason"))
_TIMES = (("Local certificate not after", "local-certificate-not-after"),
          ("Next automatic update", "next-auto-update"),
          ("Counters reset at", "discontinuity-time"))
_WIDTH = 64


def _text(el: etree._Element | None, path: str, default: str = "0") -> str:
    if el is None:
        return default
    found = el.findtext(path, namespaces=_NS)
    return found.strip() if found is not None else default


def statistics_table(stats: etree._Element, title: str) -> list[str]:
    """The rows of one ``statistics`` (or ``cmp-statistics``) container."""
    lines = [title, "-" * _WIDTH, f"{'Item':<22}{'Counter':<20}{'Value':>22}", "-" * _WIDTH]
    for group, container, leaves in _GROUPS:
        first = True
        for label, leaf in leaves:
            lines.append(f"{group if first else '':<22}{label:<20}"
                         f"{_text(stats, f'p:{container}/p:{leaf}'):>22}")
            first = False
        if container == "failures":
            for info in stats.iterfind("p:failures/p:failure-info", _NS):
                lines.append(f"{'':<22}{'FailInfo ' + _text(info, 'p:bit', '?'):<20}"
                             f"{_text(info, 'p:count'):>22}")
    last = stats.find("p:last-request", _NS)
    if last is not None:
        lines.append("-" * _WIDTH)
        first = True
        for label, leaf in _LAST:
            value = _text(last, f"p:{leaf}", "")
            if value:
                lines.append(f"{'Last request' if first else '':<22}{label:<20}{value:>22}"
                             if len(value) <= 22 else
                             f"{'Last request' if first else '':<22}{label:<20}{value}")
                first = False
    times = [(label, _text(stats, f"p:{leaf}", "")) for label, leaf in _TIMES]
    if any(value for _, value in times):
        lines.append("-" * _WIDTH)
        lines += [f"{label:<30}{value:>34}" for label, value in times if value]
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
            lines.append(
                f"{_text(s, 'p:name', '?'):<20}{_text(st, 'p:messages-sent/p:ir'):>6}"
                f"{_text(st, 'p:messages-sent/p:cr'):>6}{_text(st, 'p:messages-sent/p:kur'):>6}"
                f"{_text(st, 'p:outcomes/p:accepted'):>10}{_text(st, 'p:outcomes/p:rejection'):>10}"
                f"  {_text(st, 'p:last-request/p:result', '-')}")
    return lines
