"""Helpers for the datastore tests."""

from __future__ import annotations

from lxml import etree

from agent import PKI_NS

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"


def config(pki_body: str, extra: str = "") -> etree._Element:
    """A <config> element with *pki_body* inside <pki>."""
    return etree.fromstring(
        f'<config xmlns="{NC_NS}" xmlns:nc="{NC_NS}"><pki xmlns="{PKI_NS}">{pki_body}</pki>'
        f"{extra}</config>"
    )


def pki(tree: etree._Element) -> etree._Element | None:
    return tree.find(f"{{{PKI_NS}}}pki")


def xp(tree: etree._Element, path: str) -> list:
    """XPath on a config tree with prefix p for the PKI namespace."""
    return tree.xpath(path, namespaces={"p": PKI_NS, "nc": NC_NS})


def session(name: str, body: str = "", op: str | None = None) -> str:
    attr = f' nc:operation="{op}"' if op else ""
    return f"<cmp-session{attr}><name>{name}</name>{body}</cmp-session>"
