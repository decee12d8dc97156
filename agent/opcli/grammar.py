"""The vendor's command syntax, as the configuration guide writes it, and a matcher.

A command is declared in the guide's own notation: lower-case words are
keywords, upper-case words are parameters (see :data:`PARAMS`), ``[ ... ]`` is
optional and ``{ a | b }`` is a choice::

    cmp-request rsa local-key-pair KEY-NAME [ regenerate [ KEY-BITS ] ]

:func:`expand` turns that into the flat sequences of :class:`Keyword` and
:class:`Param` elements it stands for. :func:`match` finds the command a line
is, the way the device does: keywords are case-insensitive and may be
shortened to any unique prefix (``dis pki cmp stat``), a fault is reported
with the position of the offending word (:class:`ParseError`), and
:func:`next_words` lists what may come next (``?`` help, tab completion).

Everything here is pure: no I/O, no NETCONF.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


# --- tokens ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    """One word of a command line; *start* is its offset in the line."""

    text: str
    start: int
    end: int
    quoted: bool = False


def tokenize(line: str) -> list[Token]:
    """Split *line* at blanks; ``"..."`` keeps blanks inside one word (as on the device).

    Raises :class:`ParseError` for an unterminated quote.
    """
    tokens, open_quote = _split(line)
    if open_quote is not None:
        raise ParseError(ParseError.UNRECOGNIZED, open_quote.start, line)
    return tokens


def _split(line: str) -> tuple[list[Token], Token | None]:
    """The words of *line* and, if a quote is left open, the rest of the line from it."""
    tokens = []
    for m in re.finditer(r'"([^"]*)("?)|\S+', line):
        if m.group(0).startswith('"'):
            if not m.group(2):
                return tokens, Token(m.group(1), m.start(), len(line), quoted=True)
            tokens.append(Token(m.group(1), m.start(), m.end(), quoted=True))
        else:
            tokens.append(Token(m.group(0), m.start(), m.end()))
    return tokens, None


# --- syntax elements ------------------------------------------------------------------
@dataclass(frozen=True)
class Keyword:
    """A literal word; matched case-insensitively, or by a unique prefix."""

    word: str


@dataclass(frozen=True)
class Param:
    """A value the operator writes: *label* is shown in ``?`` help (``STRING<1-64>``)."""

    name: str
    label: str
    help: str
    check: Callable[[str], bool] = lambda value: True
    #: takes the rest of the line (blanks included), like the device's TEXT parameters
    rest_of_line: bool = False
    #: masked when the line is shown back (error messages, history)
    secret: bool = False


Element = Keyword | Param


def _length(low: int, high: int) -> Callable[[str], bool]:
    return lambda value: low <= len(value) <= high


def _int_in(*allowed: int, low: int | None = None, high: int | None = None) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        if not value.isdigit():
            return False
        number = int(value)
        if allowed:
            return number in allowed
        return low <= number <= high

    return check


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return "%" not in value


def _file_name(value: str) -> bool:
    return 1 <= len(value) <= 255 and "/" not in value and "\\" not in value


#: The parameters of the guide's commands; the upper-case words of the syntax.
PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("SESSION-NAME", "STRING<1-64>", "CMP session name", _length(1, 64)),
    Param("ENTITY-NAME", "STRING<1-64>", "PKI entity name", _length(1, 64)),
    Param("CA-NAME", "TEXT<1-255>", "CA name, e.g. /C=CN/O=Example/CN=Example CA",
          _length(1, 255), rest_of_line=True),
    Param("URL", "STRING<1-255>", "CMPv2 server URL, e.g. http://192.0.2.5:8080/pkix/",
          _length(1, 255)),
    Param("KEY-NAME", "STRING<1-64>", "RSA key pair name", _length(1, 64)),
    Param("KEY-BITS", "INTEGER<2048,3072,4096>", "Modulus length of a regenerated key pair",
          _int_in(2048, 3072, 4096)),
    Param("IFTYPE", "STRING<1-64>", "Interface type, or the whole name, e.g. GigabitEthernet0/0/1",
          _length(1, 64)),
    Param("IFNUM", "STRING<1-32>", "Interface number, e.g. 0/0/1", _length(1, 32)),
    Param("IP-ADDRESS", "IP-ADDRESS", "Source IP address", _ip),
    Param("CERT-FILE", "STRING<1-255>", "Certificate file name", _file_name),
    Param("REFERENCE", "STRING<1-128>", "Reference value of the message authentication code",
          lambda v: 1 <= len(v) <= 128 and "?" not in v),
    Param("SECRET", "STRING<1-255>", "Secret value of the message authentication code",
          _length(1, 255), secret=True),
    Param("PERCENT", "INTEGER<10-100>", "Update time, in percent of the validity period",
          _int_in(low=10, high=100)),
    Param("TEXT", "TEXT<1-255>", "Value", _length(1, 255), rest_of_line=True),
    Param("COUNTRY", "STRING<2-2>", "Country code, two upper-case letters (ISO 3166)",
          lambda v: re.fullmatch("[A-Z]{2}", v) is not None),
    Param("FQDN", "STRING<1-253>", "Fully qualified domain name", _length(1, 253)),
)}


def _parse_notation(words: list[str], pos: int, closer: str | None) -> tuple[list, int]:
    """Parse ``[ ]`` / ``{ | }`` notation into nested ("seq"|"opt"|"alt", ...) items."""
    seq: list = []
    alternatives: list[list] = []
    while pos < len(words):
        word = words[pos]
        if word == closer:
            break
        if word == "|":
            alternatives.append(seq)
            seq = []
        elif word in ("[", "{"):
            inner, pos = _parse_notation(words, pos + 1, "]" if word == "[" else "}")
            seq.append(("opt" if word == "[" else "alt", inner))
        elif word.isupper():
            seq.append(PARAMS[word])
        else:
            seq.append(Keyword(word))
        pos += 1
    else:
        if closer is not None:
            raise ValueError(f"missing {closer!r} in command syntax")
    alternatives.append(seq)
    return alternatives, pos


def _expand_seq(seq: list) -> list[tuple[Element, ...]]:
    paths: list[tuple[Element, ...]] = [()]
    for item in seq:
        if isinstance(item, tuple):
            kind, alternatives = item
            options = [p for alt in alternatives for p in _expand_seq(alt)]
            if kind == "opt":
                options = [(), *options]
            paths = [a + b for a, b in itertools.product(paths, options)]
        else:
            paths = [p + (item,) for p in paths]
    return paths


def expand(syntax: str) -> list[tuple[Element, ...]]:
    """Every flat word sequence that *syntax* (the guide's notation) allows."""
    alternatives, _ = _parse_notation(syntax.split(), 0, None)
    return [p for alt in alternatives for p in _expand_seq(alt)]


# --- matching -------------------------------------------------------------------------
@dataclass
class ParseError(Exception):
    """A line that is not a command; *position* is the offset of the fault in the line."""

    UNRECOGNIZED = "Unrecognized command"
    INCOMPLETE = "Incomplete command"
    WRONG_PARAMETER = "Wrong parameter"
    TOO_MANY = "Too many parameters"
    AMBIGUOUS = "Ambiguous command"

    kind: str
    position: int
    detail: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The device's wording: ``Error: Unrecognized command found at '^' position.``"""
        return f"Error: {self.kind} found at '^' position."


@dataclass
class Candidate:
    """A command whose path is still possible while a line is being matched."""

    command: object
    path: tuple[Element, ...]
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """A line matched to a command: keywords present (canonical) and parameter values."""

    command: object
    keywords: frozenset[str]
    values: dict[str, str]
    #: (start, end) offsets of secret values in the line
    secret_spans: tuple[tuple[int, int], ...] = ()

    def __contains__(self, keyword: str) -> bool:
        return keyword in self.keywords

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)


def _step(cands: list[Candidate], i: int, tok: Token, line: str, n_tokens: int
          ) -> tuple[list[Candidate], bool]:
    """The candidates that survive word *i*; second: the word consumed the rest of the line."""
    here = [c for c in cands if len(c.path) > i]
    if not here:
        raise ParseError(ParseError.TOO_MANY, tok.start)
    word = tok.text.lower()
    keywords = {c.path[i].word for c in here if isinstance(c.path[i], Keyword)}
    if not tok.quoted:
        if word in keywords:
            return [c for c in here if c.path[i] == Keyword(word)], False
        prefixed = {k for k in keywords if k.startswith(word)}
        params_take_it = any(isinstance(c.path[i], Param) and c.path[i].check(tok.text) for c in here)
        if len(prefixed) == 1 and not params_take_it:
            (full,) = prefixed
            return [c for c in here if c.path[i] == Keyword(full)], False
        if len(prefixed) > 1 and not params_take_it:
            raise ParseError(ParseError.AMBIGUOUS, tok.start)
    survivors, rest = [], False
    wrong = False
    for c in here:
        el = c.path[i]
        if not isinstance(el, Param):
            continue
        if el.rest_of_line and n_tokens > i + 1:
            value = line[tok.start:].rstrip()
            rest = True
        else:
            value = tok.text
        if el.check(value):
            survivors.append(Candidate(c.command, c.path, {**c.values, el.name: value}))
        else:
            wrong = True
    if survivors:
        return survivors, rest
    if wrong:
        raise ParseError(ParseError.WRONG_PARAMETER, tok.start)
    if any(len(c.path) == i for c in cands):
        raise ParseError(ParseError.TOO_MANY, tok.start)
    raise ParseError(ParseError.UNRECOGNIZED, tok.start)


def _secret_spans(path: Sequence[Element], tokens: Sequence[Token]) -> tuple[tuple[int, int], ...]:
    return tuple((t.start, t.end) for el, t in zip(path, tokens)
                 if isinstance(el, Param) and el.secret)


def _possible_secret_spans(cands: Sequence[Candidate], tokens: Sequence[Token]
                           ) -> tuple[tuple[int, int], ...]:
    """The words of *tokens* that are a secret in any of *cands*."""
    return tuple(sorted({span for c in cands for span in _secret_spans(c.path, tokens)}))


def match(commands: Iterable[tuple[object, tuple[Element, ...]]], line: str) -> Match:
    """The command *line* is, among (*command*, *path*) pairs; raises :class:`ParseError`."""
    tokens, open_quote = _split(line)
    cands = [Candidate(cmd, path) for cmd, path in commands]
    if not tokens and open_quote is None:
        raise ParseError(ParseError.INCOMPLETE, 0)
    consumed = len(tokens)
    for i, tok in enumerate(tokens):
        try:
            cands, rest = _step(cands, i, tok, line, len(tokens))
        except ParseError as err:
            # the faulty word too: a secret its own check refused (too long) is still a secret
            err.detail = _mask(line, _possible_secret_spans(cands, tokens[:i + 1]))
            raise
        if rest:
            consumed = i + 1
            break
    if open_quote is not None:
        # the line is shown back with the caret at the quote: masked from there to its end
        # when a secret may stand there (a secret typed with its closing quote forgotten)
        raise ParseError(ParseError.UNRECOGNIZED, open_quote.start,
                         _mask(line, _possible_secret_spans(cands, [*tokens, open_quote])))
    complete = [c for c in cands if len(c.path) == consumed]
    if not complete:
        raise ParseError(ParseError.INCOMPLETE, len(line.rstrip()) + 1,
                         _mask(line, _secret_spans(cands[0].path, tokens)))
    chosen = complete[0]
    return Match(chosen.command,
                 frozenset(el.word for el in chosen.path if isinstance(el, Keyword)),
                 chosen.values, _secret_spans(chosen.path, tokens))


def _mask(line: str, spans: Iterable[tuple[int, int]]) -> str:
    for start, end in spans:
        line = line[:start] + "*" * (end - start) + line[end:]
    return line


def masked(line: str, m: Match) -> str:
    """*line* with its secret values replaced by ``*``: safe to show or keep in history."""
    return _mask(line, m.secret_spans)


@dataclass(frozen=True)
class Help:
    """One line of ``?`` help: a keyword or parameter label, and its meaning."""

    label: str
    help: str
    keyword: bool


def next_words(commands: Iterable[tuple[object, tuple[Element, ...]]], line: str,
               keyword_help: dict[str, str]) -> list[Help]:
    """What may follow *line* (help for a trailing ``?`` and tab completion).

    If *line* does not end in a blank, its last word is being typed: the
    keywords it starts, and the parameters it is a valid value of, are listed. ``<cr>`` means the line is a
    complete command already.
    """
    try:
        tokens = tokenize(line)
    except ParseError:
        return []
    partial = typed = ""
    if tokens and not line[-1:].isspace():
        typed = tokens.pop().text
        partial = typed.lower()
    cands = [Candidate(cmd, path) for cmd, path in commands]
    for i, tok in enumerate(tokens):
        try:
            cands, rest = _step(cands, i, tok, line, len(tokens))
        except ParseError:
            return []
        if rest:
            return [Help("<cr>", "", False)] if not partial else []
    i = len(tokens)
    seen: dict[str, Help] = {}
    for c in cands:
        if len(c.path) > i:
            el = c.path[i]
            if isinstance(el, Keyword) and el.word.startswith(partial):
                seen.setdefault(el.word, Help(el.word, keyword_help.get(el.word, ""), True))
            elif isinstance(el, Param) and (not partial or el.check(typed)):
                seen.setdefault(el.label + el.name, Help(el.label, el.help, False))
    found = sorted((h for h in seen.values() if h.keyword), key=lambda h: h.label)
    found += [h for h in seen.values() if not h.keyword]
    if not partial and any(len(c.path) == i for c in cands):
        found.append(Help("<cr>", "", False))
    return found
