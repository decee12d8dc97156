"""CMP statistics (seed: ``display pki cmp statistics [session NAME]``), exposed as
the ``config false`` container ``statistics`` of each ``cmp-session`` and the
global ``/pki/cmp-statistics`` (YANG grouping ``cmp-statistics``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from lxml import etree

from agent import PKI_NS
from agent.clock import yang_datetime
from agent.xmltext import xml_text

#: CMP body types counted, by direction, as named in the YANG module; these lists are the
#: leaves of grouping cmp-statistics in its order (tests/pki/test_statistics_model.py)
SENT_TYPES = ("ir", "cr", "kur", "cert-conf", "poll-req", "p10cr", "rr", "genm", "error")
RECEIVED_TYPES = ("ip", "cp", "kup", "pki-conf", "poll-rep", "error", "rp", "genp")
OUTCOMES = ("accepted", "granted-with-mods", "rejection", "waiting")
FAILURE_KINDS = ("transport", "timeout", "protection", "certificate-rejected")

#: YANG typedef cmp-request-type (last-request/type, cmp-session-result/request-type): the
#: enrolment requests of :data:`agent.pki.config.RequestType`, a revocation and a general message
CmpRequestType = Literal["ir", "cr", "kur", "p10cr", "rr", "genm"]
#: YANG typedef request-trigger
Trigger = Literal["manual", "auto"]
#: YANG typedef request-result
Result = Literal["success", "failure", "waiting"]


@dataclass
class LastRequest:
    type: CmpRequestType
    trigger: Trigger
    start_time: datetime
    duration_ms: int = 0
    result: Result = "waiting"
    reason: str = ""
    #: while waiting: when the next pollReq goes out
    next_poll_time: datetime | None = None


@dataclass
class CmpStatistics:
    """Counters of one CMP session (or of all of them)."""

    discontinuity_time: datetime
    sent: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failure_info: Counter[str] = field(default_factory=Counter)
    last_request: LastRequest | None = None
    local_certificate_not_after: datetime | None = None
    next_auto_update: datetime | None = None

    def clear(self, now: datetime) -> None:
        """``clear-statistics``: counters to zero; what describes the present stays."""
        for counter in (self.sent, self.received, self.outcomes, self.failures, self.failure_info):
            counter.clear()
        self.last_request = None
        self.discontinuity_time = now

    def add(self, other: "CmpStatistics") -> None:
        """Fold *other*'s counters into these (for the global total)."""
        for mine, theirs in (
            (self.sent, other.sent),
            (self.received, other.received),
            (self.outcomes, other.outcomes),
            (self.failures, other.failures),
            (self.failure_info, other.failure_info),
        ):
            mine.update(theirs)

    def to_xml(self, tag: str) -> etree._Element:
        """The container *tag* (``statistics`` or ``cmp-statistics``) in the PKI namespace."""
        q = lambda name: f"{{{PKI_NS}}}{name}"  # noqa: E731
        root = etree.Element(q(tag), nsmap={None: PKI_NS})
        for container, names, counter in (
            ("messages-sent", SENT_TYPES, self.sent),
            ("messages-received", RECEIVED_TYPES, self.received),
            ("outcomes", OUTCOMES, self.outcomes),
        ):
            el = etree.SubElement(root, q(container))
            for name in names:
                etree.SubElement(el, q(name)).text = str(counter[name])
        failures = etree.SubElement(root, q("failures"))
        for kind in FAILURE_KINDS:
            etree.SubElement(failures, q(kind)).text = str(self.failures[kind])
        for bit, count in sorted(self.failure_info.items()):
            entry = etree.SubElement(failures, q("failure-info"))
            etree.SubElement(entry, q("bit")).text = bit
            etree.SubElement(entry, q("count")).text = str(count)
        if self.last_request is not None:
            last = self.last_request
            el = etree.SubElement(root, q("last-request"))
            etree.SubElement(el, q("type")).text = last.type
            etree.SubElement(el, q("trigger")).text = last.trigger
            etree.SubElement(el, q("start-time")).text = yang_datetime(last.start_time)
            etree.SubElement(el, q("duration-ms")).text = str(last.duration_ms)
            etree.SubElement(el, q("result")).text = last.result
            if last.reason:
                etree.SubElement(el, q("reason")).text = xml_text(last.reason)
            if last.next_poll_time is not None:
                etree.SubElement(el, q("next-poll-time")).text = yang_datetime(last.next_poll_time)
        for name, moment in (
            ("local-certificate-not-after", self.local_certificate_not_after),
            ("next-auto-update", self.next_auto_update),
            ("discontinuity-time", self.discontinuity_time),
        ):
            if moment is not None:
                etree.SubElement(root, q(name)).text = yang_datetime(moment)
        return root
