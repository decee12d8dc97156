"""``cmp-agent cli --to-xml``: the NETCONF ``<rpc>`` messages a command file becomes.

Nothing is sent: the lines go through the same :class:`~agent.opcli.shell.Shell`
as a live session and commits are assumed to succeed. Each operation is
printed as one ``<rpc>`` (RFC 6241 section 4.1) after a comment naming the
lines it comes from; consecutive configuration commands share one
``<edit-config>`` when that changes nothing (:func:`merge_edits`). As a replay
of the file does (:func:`agent.opcli.runner.run_lines`), the candidate is
locked before the first edit and unlocked at the end (RFC 6241 sections 7.5
and 7.6). Secret values are in the XML (they have to be, to be configured)
but masked in the comments.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from .grammar import ParseError, masked
from .operations import (NC_NS, NC_OPERATION, PKI_NS, Commit, EditCandidate, LockCandidate,
                         Operation, UnlockCandidate)
from .runner import parse_error_lines
from .shell import Shell

_PRETTY = etree.XMLParser(remove_blank_text=True)


def rpc_document(op: Operation, message_id: int) -> str:
    """*op* as a complete, indented ``<rpc>`` element."""
    text = f'<rpc xmlns="{NC_NS}" message-id="{message_id}">{op.body()}</rpc>'
    return etree.tostring(etree.fromstring(text, _PRETTY), pretty_print=True).decode()


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "- -") + " -->\n"


#: leaves of the cases of one choice (RFC 7950 section 7.9): writing one replaces the other
_CHOICE = {f"{{{PKI_NS}}}source-interface": "source", f"{{{PKI_NS}}}source-address": "source"}


def _key(el: etree._Element) -> tuple[str, str | None]:
    """Identity of a node for merging: its tag (or choice), and a list entry's ``name``."""
    name = el.find(f"{{{PKI_NS}}}name") if len(el) else None
    return _CHOICE.get(el.tag, el.tag), (name.text if name is not None else None)


def merge_edits(into: etree._Element, edit: etree._Element) -> bool:
    """Merge the ``<pki>`` subtree *edit* into *into* if that equals sending both in turn.

    Leaves written again take the later value (as a second ``merge`` would, or
    as the other case of a choice would); a node that carries ``nc:operation``
    in either tree must not be touched by the other one, otherwise nothing is
    merged and False is returned.
    """
    appends: list[tuple[etree._Element, etree._Element]] = []
    replaces: list[tuple[etree._Element, etree._Element]] = []

    def walk(a: etree._Element, b: etree._Element) -> bool:
        existing = {_key(child): child for child in a}
        for child in b:
            twin = existing.get(_key(child))
            if twin is None:
                appends.append((a, child))
            elif twin.get(NC_OPERATION) or child.get(NC_OPERATION):
                return False
            elif len(child) == 0 and len(twin) == 0:
                replaces.append((twin, child))  # a leaf written again
            elif not walk(twin, child):
                return False
        return True

    if not walk(into, edit):
        return False
    copy = lambda el: etree.fromstring(etree.tostring(el))  # noqa: E731
    for old, child in replaces:
        old.getparent().replace(old, copy(child))
    for parent, child in appends:
        parent.append(copy(child))
    return True


class ToXmlError(Exception):
    """A line is not a command, or requests wait for a commit that never comes."""


def to_xml(lines: Iterable[str], source: str = "-") -> str:
    """The ``<rpc>`` messages of the command *lines*; raises :class:`ToXmlError`.

    Consecutive configuration commands become one ``<edit-config>`` when that
    changes nothing (:func:`merge_edits`), the way a person would write it.
    """
    shell = Shell()
    out: list[str] = []
    batch: list = []  # [EditCandidate, [comment lines]] not yet printed
    message_id = 0
    locked = False

    def emit(op: Operation, comments: list[str]) -> None:
        nonlocal message_id, locked
        if isinstance(op, EditCandidate) and not locked:
            locked = True
            emit(LockCandidate(), ["the replay's lock of the candidate, before its first edit"])
        message_id += 1
        out.append(_comment("\n     ".join(comments)))
        out.append(rpc_document(op, message_id))

    def flush() -> None:
        if batch:
            emit(*batch)
            batch.clear()

    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith(("#", "!")):
            continue
        prompt = shell.prompt
        try:
            found = shell.parse(line)
        except ParseError as err:
            raise ToXmlError("\n".join([f"{source}, line {number}:",
                                        *parse_error_lines(prompt, line, err)])) from None
        comment = f"line {number}: {masked(line, found).strip()}"
        for step in shell.apply(found):
            if isinstance(step, str):
                continue
            if isinstance(step, EditCandidate):
                if batch and merge_edits(batch[0].pki, step.pki):
                    batch[1].append(comment)
                    continue
                flush()
                batch[:] = [EditCandidate(etree.fromstring(etree.tostring(step.pki)), step.session),
                            [comment]]
                continue
            flush()
            emit(step, [comment])
            if isinstance(step, Commit):
                for later in shell.commit_succeeded():
                    if not isinstance(later, str):
                        emit(later, [f"the {later.description}, sent after this commit"])
    flush()
    if shell.waiting:
        names = ", ".join(r.description for r in shell.waiting)
        raise ToXmlError(f"Error: No commit after the request(s), never sent: {names}.")
    if locked:
        emit(UnlockCandidate(), ["the replay's unlock of the candidate, at its end"])
    return "".join(out)
