"""Carries out the shell's steps over NETCONF and tells the operator what happened.

:class:`Runner` is given a *send* callable (an operation -> the ``<rpc-reply>``
element, raising :class:`~agent.netconf.client.NetconfRpcError`), so that it
does not care how the RPC travels. :func:`run_lines` replays a file or stdin
and stops at the first failure; :mod:`agent.opcli.interactive` is the TTY loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from lxml import etree

from ..netconf.client import NetconfError, NetconfRpcError
from ..netconf.errors import RpcError
from .display import format_statistics
from .grammar import Match, ParseError, masked
from .operations import (
    NC_NS,
    PKI_NS,
    ClearStatistics,
    CmpRequest,
    Commit,
    DiscardChanges,
    EditCandidate,
    GetConfig,
    GetStatistics,
    LockCandidate,
    Operation,
    UnlockCandidate,
)
from .shell import Shell, Step

Send = Callable[[Operation], etree._Element]
_NS = {"p": PKI_NS, "nc": NC_NS}


def parse_error_lines(prompt: str, line: str, err: ParseError, echo: bool = True) -> list[str]:
    """The device's error display: the line (secrets masked), a caret under the fault, the error.

    With *echo* false the line is already on the screen after the prompt (interactive).
    """
    shown = err.detail or line
    caret = " " * (len(prompt) + err.position) + "^"
    return ([prompt + shown] if echo else []) + [caret, err.message]


def request_result(req: CmpRequest, reply: etree._Element) -> list[str]:
    """What to tell the operator about a request the agent answered with output:
    success, or waiting (a failure is an rpc-error, see :func:`error_line`)."""
    def leaf(name: str) -> str:
        return (reply.findtext(f"p:{name}", namespaces=_NS) or "").strip()

    if leaf("status") == "waiting":
        return [f"Info: The CA is processing the {req.description}; the agent polls"
                " for the certificate (see display pki cmp statistics)."]
    lines = [f"Info: The {req.description} succeeded."]
    detail = f"Info: Certificate saved as {leaf('certificate-file')}"
    if leaf("serial"):
        detail += f" (serial {leaf('serial')}, valid until {leaf('not-after')})"
    lines.append(detail + ".")
    cas = reply.xpath("p:ca-certificate-file/text()", namespaces=_NS)
    if cas:
        lines.append("Info: CA certificates saved as " + ", ".join(cas) + ".")
    if leaf("key-pair-created") == "true":
        lines.append("Info: A new key pair was created for this request.")
    return lines


def error_line(op: Operation, error: RpcError) -> str:
    """The device's display of one rpc-error. A CMP request that failed once sent
    (error-app-tag cmp-*: "session NAME: TYPE failed: REASON") is named as the
    operator typed it, with the reason: the CA's answer, its PKIFailureInfo and text."""
    where = f" ({error.path})" if error.path and error.path not in error.message else ""
    if isinstance(op, CmpRequest) and (error.app_tag or "").startswith("cmp-"):
        reason = error.message.partition(" failed: ")[2] or error.message
        return f"Error: The {op.description} failed: {reason}"
    return f"Error: {error.message or error.tag}{where}"


@dataclass
class Runner:
    """Runs lines through a :class:`Shell`, sending its operations with *send*."""

    shell: Shell
    send: Send
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    #: lock the candidate before the first edit (replays: see :func:`run_lines`)
    lock_for_edits: bool = False
    locked: bool = False

    def say(self, text: str, error: bool = False) -> None:
        print(text, file=self.err if error else self.out, flush=True)

    def run_line(self, line: str, *, echo_on_error: bool = True, where: str = "",
                 complete: Callable[[Match], Match] | None = None) -> bool:
        """Run one command line; False if it failed (the error is printed).

        *complete* may fill in what the line left out (a secret asked for on the terminal).
        """
        if not line.strip() or line.lstrip().startswith(("#", "!")):
            return True
        prompt = self.shell.prompt
        try:
            found = self.shell.parse(line)
        except ParseError as err:
            if where:
                self.say(where, error=True)
            for text in parse_error_lines(prompt, line, err, echo_on_error):
                self.say(text, error=True)
            return False
        if complete is not None:
            found = complete(found)
        if found.command.reads_changes:
            self.check_changes()
        ok = self.run_steps(self.shell.apply(found))
        if not ok and where:
            self.say(f"{where} {prompt}{masked(line, found)}", error=True)
        return ok

    def run_steps(self, steps: Iterable[Step]) -> bool:
        for step in steps:
            if isinstance(step, str):
                self.say(step)
            elif not self.run_operation(step):
                return False
        return True

    def run_operation(self, op: Operation) -> bool:
        if isinstance(op, EditCandidate) and self.lock_for_edits and not self.locked:
            if not self.run_operation(LockCandidate()):
                return False
            self.locked = True
        try:
            reply = self.send(op)
        except NetconfRpcError as exc:
            for e in exc.errors:
                self.say(error_line(op, e), error=True)
            return False
        except NetconfError as exc:
            self.say(f"Error: The NETCONF session failed: {exc}", error=True)
            return False
        if isinstance(op, Commit):
            return self.run_steps(self.shell.commit_succeeded())
        if isinstance(op, CmpRequest):
            for text in request_result(op, reply):
                self.say(text)
        if isinstance(op, GetStatistics):
            try:
                lines = format_statistics(reply, op.session)
            except LookupError as exc:
                self.say(str(exc), error=True)
                return False
            for text in lines:
                self.say(text)
        if isinstance(op, ClearStatistics):
            self.say("Info: Statistics cleared.")
        return True

    def check_changes(self) -> None:
        """Ask the agent whether the nodes edited since the last time differ between
        candidate and running (two ``<get-config>`` of those nodes); edits that changed
        nothing (entering an existing session's view ...) are then not uncommitted.
        If the agent does not answer, they still count as changes."""
        selection = self.shell.pending_filter()
        if selection is None:
            return
        try:
            candidate, running = (self.send(GetConfig(source, selection))
                                  for source in ("candidate", "running"))
        except NetconfError:
            return
        self.shell.checked(*(reply.find("nc:data/p:pki", _NS) for reply in (candidate, running)))

    def uncommitted(self) -> bool:
        """Whether this run's edits left the candidate different from running."""
        self.check_changes()
        return self.shell.uncommitted

    def finish(self) -> bool:
        """At the end of interactive input: requests still waiting for a commit are a failure."""
        if self.shell.waiting:
            names = ", ".join(r.description for r in self.shell.waiting)
            self.say(f"Error: No commit after the request(s), never sent: {names}.", error=True)
            return False
        if self.uncommitted():
            self.say("Warning: The configuration was not committed; it stays in the candidate"
                     " datastore (run 'commit' to apply it).", error=True)
        return True

    def discard(self) -> None:
        """Drop this run's uncommitted configuration (and the requests waiting for it)."""
        ours = self.locked or not self.lock_for_edits  # unlocked replays edited nothing yet
        if ours and self.uncommitted() and self.run_operation(DiscardChanges()):
            self.say("Info: The uncommitted configuration of this run was discarded.", error=True)
        self.shell.discarded()


def run_lines(runner: Runner, lines: Iterable[str], source: str) -> int:
    """Replay *lines* (a file or stdin); 0, or 1 at the first failed command.

    The candidate is locked from the first edit on, so that the replay edits
    alone (the agent refuses the lock while another session's changes are
    uncommitted). At a failure, or at the end without ``commit``, the run's
    uncommitted configuration is discarded: nothing half-done is left for the
    next commit. When the output is closed by its reader, the run stops as at a failure,
    and BrokenPipeError goes on to the command's end (:func:`agent.cli.main`).
    """
    runner.lock_for_edits = True
    try:
        try:
            for number, line in enumerate(lines, 1):
                line = line.rstrip("\r\n")
                if not runner.run_line(line, where=f"{source}, line {number}:"):
                    runner.discard()
                    return 1
                if runner.shell.finished:
                    break
        except BrokenPipeError:  # the output's reader went away (| head): a failure as any other
            from ..cli import quiet_closed_output

            quiet_closed_output()  # what the run still says goes nowhere, without raising
            runner.discard()
            raise
        if runner.uncommitted():
            waiting = "".join(f"; never sent: the {r.description}" for r in runner.shell.waiting)
            runner.say(f"Error: The configuration was not committed (no 'commit' after it){waiting}.",
                       error=True)
            runner.discard()
            return 1
        return 0
    finally:
        if runner.locked:
            runner.run_operation(UnlockCandidate())
            runner.locked = False
