"""The command line's state: the current view, uncommitted edits, waiting requests.

:class:`Shell` is pure (sans-IO): :meth:`Shell.execute` turns one line into
*steps*, NETCONF operations to run in order and messages for the operator;
the runner (:mod:`agent.opcli.runner`) or the XML printer
(:mod:`agent.opcli.toxml`) carries them out.

The guide lists the request commands (``pki cmp initial-request session``
...) before ``commit`` (its step 13). The device accepts that order, and so
does this shell: a request whose session has uncommitted changes waits and runs
right after the next successful commit (:meth:`Shell.commit_succeeded`).

Uncommitted means, as on the device, that a command changed the
configuration: entering the view of a session or entity that exists, or
setting a value it already has, changes nothing. The shell remembers which
nodes of ``/pki`` its edits touched (:attr:`Shell.changed`); a node counts as
changed until the agent says otherwise: the runner asks, only when the answer
matters (a request, leaving the configuration views, the end of a replay) and
only about the nodes edited since it last asked, for candidate and running of
those nodes (:meth:`Shell.pending_filter`, :meth:`Shell.checked`). Without an
agent (``--to-xml``) every edit counts as a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from agent import PKI_NS

from .commands import ENTITY, SESSION, SYSTEM, USER, KEYWORD_HELP, commands_of
from .grammar import Help, Match, match, next_words
from .operations import CmpRequest, EditCandidate, Operation, pki_node

#: a step of a command: an operation to run, or a message for the operator
Step = Operation | str

HOSTNAME = "cmp-agent"

#: a child of ``/pki`` an edit touched: (its CMP session or None, its name, its list key or None)
Touched = tuple[str | None, str, str | None]


@dataclass
class Shell:
    """Views and the commit bookkeeping of one command-line session."""

    hostname: str = HOSTNAME
    view: str = USER
    #: the session or entity name of the SESSION and ENTITY views
    view_object: str | None = None
    #: set by ``quit`` in the user view
    finished: bool = False
    #: the nodes edited since the last commit or discard that differ from running, or may:
    #: those in :attr:`unchecked` were edited since the agent was last asked
    changed: set[Touched] = field(default_factory=set)
    unchecked: set[Touched] = field(default_factory=set)
    #: requests waiting for the next commit
    waiting: list[CmpRequest] = field(default_factory=list)

    # --- parsing ------------------------------------------------------------------
    @property
    def prompt(self) -> str:
        """``<cmp-agent>``, ``[cmp-agent]``, ``[cmp-agent-pki-cmp-session-s1]`` ..."""
        if self.view == USER:
            return f"<{self.hostname}>"
        if self.view == SESSION:
            return f"[{self.hostname}-pki-cmp-session-{self.view_object}]"
        if self.view == ENTITY:
            return f"[{self.hostname}-pki-entity-{self.view_object}]"
        return f"[{self.hostname}]"

    def parse(self, line: str) -> Match:
        """The command *line* is in the current view (raises ParseError)."""
        return match(commands_of(self.view), line)

    def execute(self, line: str) -> list[Step]:
        """Parse *line* and apply it to the shell; the steps to run (raises ParseError)."""
        return self.apply(self.parse(line))

    def apply(self, found: Match) -> list[Step]:
        """Apply a parsed command to the shell; the steps to run."""
        return found.command.action(self, found)

    def help(self, line: str) -> list[Help]:
        """What may follow *line* in the current view (``?`` and tab completion)."""
        return next_words(commands_of(self.view), line, KEYWORD_HELP)

    @property
    def dirty_sessions(self) -> set[str]:
        """The sessions with uncommitted changes."""
        return {session for session, _, _ in self.changed if session is not None}

    @property
    def dirty_global(self) -> bool:
        """Uncommitted changes outside sessions (entities, file format): they affect every session."""
        return any(session is None for session, _, _ in self.changed)

    @property
    def uncommitted(self) -> bool:
        return bool(self.changed)

    def pending_filter(self) -> etree._Element | None:
        """A subtree filter (RFC 6241 section 6) of the nodes in :attr:`unchecked`, or None."""
        if not self.unchecked:
            return None
        pki = pki_node("pki")
        for _, name, key in sorted(self.unchecked, key=lambda t: (t[1], t[2] or "")):
            pki.append(pki_node(name, pki_node("name", text=key)) if key is not None
                       else pki_node(name))
        return pki

    def checked(self, candidate: etree._Element | None, running: etree._Element | None) -> None:
        """The agent's candidate and running ``<pki>`` under :meth:`pending_filter`: the
        unchecked nodes that are the same in both are not changes (any more)."""
        for touched in self.unchecked:
            if _node_of(candidate, touched) == _node_of(running, touched):
                self.changed.discard(touched)
        self.unchecked.clear()

    # --- used by the commands -------------------------------------------------------
    def enter(self, view: str, name: str | None = None) -> None:
        self.view, self.view_object = view, name

    def leave(self) -> None:
        """``quit``: session and entity views -> system view -> user view -> end."""
        if self.view in (SESSION, ENTITY):
            self.enter(SYSTEM)
        elif self.view == SYSTEM:
            self.enter(USER)
        else:
            self.finished = True

    def edit(self, pki: etree._Element, session: str | None = None) -> EditCandidate:
        """An edit of the candidate; remembers the nodes it may change."""
        for child in pki:
            key = child.findtext(f"{{{PKI_NS}}}name")
            touched = (session, etree.QName(child).localname, key)
            self.changed.add(touched)
            self.unchecked.add(touched)
        return EditCandidate(pki, session)

    def edit_session(self, name: str, *children: etree._Element) -> EditCandidate:
        """Merge *children* into ``/pki/cmp-session[name]`` (created if missing)."""
        entry = pki_node("cmp-session", pki_node("name", text=name), *children)
        return self.edit(pki_node("pki", entry), session=name)

    def edit_entity(self, name: str, *children: etree._Element) -> EditCandidate:
        """Merge *children* into ``/pki/entity[name]`` (created if missing)."""
        return self.edit(pki_node("pki", pki_node("entity", pki_node("name", text=name), *children)))

    def request(self, req: CmpRequest) -> list[Step]:
        """Run *req* now, or after the next commit if its session has uncommitted edits."""
        if self.dirty_global or req.session in self.dirty_sessions:
            self.waiting.append(req)
            return [f"Info: Session {req.session} has uncommitted configuration: the CMP"
                    f" {req.what} will be sent after the next commit."]
        return [req]

    def discarded(self) -> None:
        """The candidate went back to running: nothing is uncommitted, nothing waits."""
        self.changed.clear()
        self.unchecked.clear()
        self.waiting.clear()

    def commit_succeeded(self) -> list[Step]:
        """After a successful commit: nothing is uncommitted; the waiting requests run."""
        self.changed.clear()
        self.unchecked.clear()
        waiting, self.waiting = self.waiting, []
        steps: list[Step] = []
        for req in waiting:
            steps += [f"Info: Sending the {req.description} that waited for this commit.", req]
        return steps


def _node_of(pki: etree._Element | None, touched: Touched) -> list:
    """The *touched* node(s) of a ``<pki>`` tree, comparable: what they hold, in any order."""
    if pki is None:
        return []
    _, name, key = touched
    return sorted(_canonical(el) for el in pki.iterchildren(f"{{{PKI_NS}}}{name}")
                  if key is None or el.findtext(f"{{{PKI_NS}}}name") == key)


def _canonical(el: etree._Element) -> tuple:
    return (el.tag, (el.text or "").strip(),
            tuple(sorted(_canonical(child) for child in el if isinstance(child.tag, str))))
