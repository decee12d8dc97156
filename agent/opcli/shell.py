"""The command line's state: the current view, uncommitted edits, waiting requests.

:class:`Shell` is pure (sans-IO): :meth:`Shell.execute` turns one line into
*steps*, NETCONF operations to run in order and messages for the operator;
the runner (:mod:`agent.opcli.runner`) or the XML printer
(:mod:`agent.opcli.toxml`) carries them out.

The guide lists the request commands (``pki cmp initial-request session``
...) before ``commit`` (its step 13). The device accepts that order, and so
does this shell: a request whose session has uncommitted edits waits and runs
right after the next successful commit (:meth:`Shell.commit_succeeded`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from .commands import ENTITY, SESSION, SYSTEM, USER, KEYWORD_HELP, commands_of
from .grammar import Help, Match, match, next_words
from .operations import CmpRequest, EditCandidate, Operation, pki_node

#: a step of a command: an operation to run, or a message for the operator
Step = Operation | str

HOSTNAME = "cmp-agent"


@dataclass
class Shell:
    """Views and the commit bookkeeping of one command-line session."""

    hostname: str = HOSTNAME
    view: str = USER
    #: the session or entity name of the SESSION and ENTITY views
    view_object: str | None = None
    #: set by ``quit`` in the user view
    finished: bool = False
    #: sessions with uncommitted edits
    dirty_sessions: set[str] = field(default_factory=set)
    #: uncommitted edits outside sessions (entities, file format): they affect every session
    dirty_global: bool = False
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
    def uncommitted(self) -> bool:
        return self.dirty_global or bool(self.dirty_sessions)

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
        """An edit of the candidate; remembers what is now uncommitted."""
        if session is None:
            self.dirty_global = True
        else:
            self.dirty_sessions.add(session)
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
        self.dirty_sessions.clear()
        self.dirty_global = False
        self.waiting.clear()

    def commit_succeeded(self) -> list[Step]:
        """After a successful commit: nothing is uncommitted; the waiting requests run."""
        self.dirty_sessions.clear()
        self.dirty_global = False
        waiting, self.waiting = self.waiting, []
        steps: list[Step] = []
        for req in waiting:
            steps += [f"Info: Sending the {req.description} that waited for this commit.", req]
        return steps
