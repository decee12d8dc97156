"""The interactive command line on a terminal: the device's prompt, tab completion
and ``?`` help (GNU readline).

``?`` shows at once what may come next, as on the device, and gives the line
back for further typing; tab completes keywords. Lines holding a secret value
are kept in the history with the value masked.
"""

from __future__ import annotations

from .grammar import Help, ParseError, masked
from .runner import Runner


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
                runner.run_line(line, echo_on_error=False)
            except KeyboardInterrupt:
                print("\nInfo: Interrupted; the agent may still complete the operation.")
    finally:
        readline.set_startup_hook(None)
    return 0 if runner.finish() else 1


def _mask_history(shell, line: str, readline) -> None:
    """Keep no secret in the readline history."""
    try:
        found = shell.parse(line)
    except ParseError:
        return
    if found.secret_spans:
        last = readline.get_current_history_length()
        if last:
            readline.replace_history_item(last - 1, masked(line, found))
