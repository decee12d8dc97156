"""The interactive command line on a terminal: the device's prompt, tab completion
and ``?`` help (GNU readline).

``?`` shows at once what may come next, as on the device, and gives the line
back for further typing; tab completes keywords. Leaving the configuration
views with uncommitted configuration asks, like the device, whether to commit
it, discard it or stay. A secret left out of a command is asked for without
echo, as on the device. Lines holding a secret value are kept in the history
with the value masked.
"""

from __future__ import annotations

from dataclasses import replace

from .commands import SYSTEM, USER
from .grammar import Help, Match, Param, ParseError, masked
from .operations import Commit
from .runner import Runner
from .shell import Shell


def help_lines(helps: list[Help]) -> list[str]:
    """``?`` output: one word or parameter per line, with its meaning."""
    width = max((len(h.label) for h in helps), default=0) + 2
    return [f"  {h.label:<{width}}{h.help}".rstrip() for h in helps]


def interactive(runner: Runner) -> int:
    """Read commands at the device's prompt until ``quit`` in the user view or end of input."""
    import readline

    shell = runner.shell

    def complete(text: str, state: int) -> str | None:
        before = readline.get_line_buffer()[:readline.get_endidx()]
        words = [h.label + " " for h in shell.help(before) if h.keyword]
        return words[state] if state < len(words) else None

    readline.set_completer_delims(" \t")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    # '?' inserts itself and ends the line at once: help without pressing Enter
    readline.parse_and_bind(r'"?": "\C-v?\n"')
    prefill = ""
    readline.set_startup_hook(lambda: readline.insert_text(prefill))
    try:
        while not shell.finished:
            try:
                line = input(shell.prompt)
            except EOFError:
                print()
                break
            except KeyboardInterrupt:
                print()
                prefill = ""
                continue
            if line.endswith("?"):
                prefill = line[:-1]
                helps = shell.help(prefill)
                if helps:
                    print("\n".join(help_lines(helps)))
                else:
                    try:
                        shell.parse(prefill)
                    except ParseError as err:
                        print(" " * (len(shell.prompt) + err.position) + "^")
                        print(err.message)
                continue
            prefill = ""
            _mask_history(shell, line, readline)
            try:
                if _leaving_config_views(shell, line) and not _settle_uncommitted(runner):
                    continue
                runner.run_line(line, echo_on_error=False, complete=_ask_secret)
            except KeyboardInterrupt:
                print("\nInfo: Interrupted; the agent may still complete the operation.")
    finally:
        readline.set_startup_hook(None)
    return 0 if runner.finish() else 1


def _ask_secret(found: Match) -> Match:
    """A secret the command may take but the line left out is asked for, without echo,
    as the device does (``cmp-request message-authentication-code REFERENCE``)."""
    import getpass

    for path in found.command.paths:
        for el in path:
            if isinstance(el, Param) and el.secret and el.name not in found.values:
                while True:
                    secret = getpass.getpass("Enter the secret value (empty: leave it unchanged): ")
                    if not secret:
                        return found
                    if el.check(secret):
                        return replace(found, values={**found.values, el.name: secret})
                    print(f"Error: The secret value must be a {el.label}.")
    return found


def _leaving_config_views(shell: Shell, line: str) -> bool:
    """Whether *line* leaves the configuration views (``quit`` in the system view, ``return``)."""
    try:
        found = shell.parse(line)
    except ParseError:
        return False
    return shell.view != USER and (found.keywords == {"return"}
                                   or (found.keywords == {"quit"} and shell.view == SYSTEM))


def _settle_uncommitted(runner: Runner) -> bool:
    """Ask, as the device does, what becomes of uncommitted configuration; False: stay."""
    if not runner.uncommitted():
        return True
    while True:
        try:
            answer = input("Warning: Uncommitted configurations found. Are you sure to commit them"
                           " before exiting? [Y(yes)/N(no)/C(cancel)]:").strip().lower()
        except (EOFError, KeyboardInterrupt):
            print()
            return False
        if answer in ("y", "yes"):
            return runner.run_operation(Commit())
        if answer in ("n", "no"):
            runner.discard()
            return True
        if answer in ("c", "cancel"):
            return False


def _mask_history(shell, line: str, readline) -> None:
    """Keep no secret in the readline history."""
    try:
        found = shell.parse(line)
    except ParseError as err:
        # a refused line is shown back masked (err.detail, as long as the line): keep that
        kept = err.detail if len(err.detail) == len(line) else line
    else:
        kept = masked(line, found)
    if kept != line:
        last = readline.get_current_history_length()
        if last:
            readline.replace_history_item(last - 1, kept)
