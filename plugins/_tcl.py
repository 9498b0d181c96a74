"""A small reader for the Tcl syntax of Nuke scripts (.nk) - enough to find nodes, knobs and curves.

Not a Tcl interpreter: no substitution is evaluated. Words are braced (``{...}``, nested, raw),
quoted (``"..."``, backslash escapes resolved) or bare. :func:`parse_script` splits commands on
newlines / ``;`` and skips ``#`` comments; :func:`parse_list` splits a Tcl list. Errors carry the
1-based line number.

Writing: :func:`quote` is the one Tcl string escaper (a double-quoted word; every character survives
Tcl's parsing). Nuke also applies Tcl substitution (``[cmd]``, ``$var``, ``\\``) to the *values* of
some knobs - a node's ``label`` at least - so a host string goes through :func:`subst_escape` first
(:func:`name_word`); :func:`subst_unescape` is its exact inverse (what Nuke's substitution shows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._common import double_quoted

_WS = " \t\r"
_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_NUMERIC = re.compile(r"[0-7]{1,3}|x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}")
_SUBST = re.compile(r"([\\\[\]$])")
_UNSUBST = re.compile(r"\\([\\\[\]$])")


def _backslash(text: str, j: int) -> tuple[str, int]:
    """The character(s) of the backslash sequence at ``text[j] == "\\"`` (Tcl's rules) and the index after it."""
    m = _NUMERIC.match(text, j + 1)
    if m:
        t = m.group()
        code = int(t, 8) if t[0] in "01234567" else int(t[1:], 16)
        return chr(code), m.end()
    c = text[j + 1]
    return _ESC.get(c, c), j + 2


class TclSyntaxError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Word:
    text: str
    kind: str  # "brace" | "quote" | "bare"
    line: int


def _words(text: str, line0: int, script: bool):
    """Yield lists of Words (one list per command when ``script``, else one list)."""
    i, n, line = 0, len(text), line0
    cmd: list[Word] = []
    cmd_line = line
    while i < n:
        c = text[i]
        if c in _WS:
            i += 1
            continue
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":  # line continuation
            i += 2
            line += 1
            continue
        if c == "\n" or (c == ";" and script):
            if c == "\n":
                line += 1
            i += 1
            if script and cmd:
                yield cmd, cmd_line
                cmd = []
            continue
        if script and not cmd and c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if not cmd:
            cmd_line = line
        start_line = line
        if c == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                ch = text[j]
                if ch == "\\" and j + 1 < n:
                    if text[j + 1] == "\n":
                        line += 1
                    j += 2
                    continue
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                elif ch == "\n":
                    line += 1
                j += 1
            if depth:
                raise TclSyntaxError("missing close-brace for the brace opened here", start_line)
            word = Word(text[i + 1:j - 1], "brace", start_line)
            i = j
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                ch = text[j]
                if ch == "\\" and j + 1 < n:
                    if text[j + 1] == "\n":
                        line += 1
                    c, j = _backslash(text, j)
                    buf.append(c)
                    continue
                if ch == "\n":
                    line += 1
                buf.append(ch)
                j += 1
            if j >= n:
                raise TclSyntaxError("missing close-quote for the quote opened here", start_line)
            word = Word("".join(buf), "quote", start_line)
            i = j + 1
        else:
            j, buf, depth = i, [], 0
            while j < n:
                ch = text[j]
                if depth == 0 and (ch in _WS or ch == "\n" or (script and ch == ";")):
                    break
                if ch == "\\" and j + 1 < n:
                    c, j = _backslash(text, j)
                    buf.append(c)
                    continue
                if ch == "[":  # command substitution [stack 0]: keep as text
                    depth += 1
                elif ch == "]" and depth:
                    depth -= 1
                elif ch == "\n":
                    line += 1
                buf.append(ch)
                j += 1
            word = Word("".join(buf), "bare", start_line)
            i = j
        if i < n and word.kind != "bare" and text[i] not in _WS + "\n" + (";" if script else ""):
            raise TclSyntaxError(f"extra characters after close-{'brace' if word.kind == 'brace' else 'quote'}",
                                 line)
        cmd.append(word)
    if cmd:
        yield cmd, cmd_line


def parse_script(text: str, line0: int = 1) -> list[tuple[list[Word], int]]:
    """Commands of a Tcl script as (words, line)."""
    return list(_words(text, line0, True))


def parse_list(text: str, line0: int = 1) -> list[Word]:
    """Elements of a Tcl list."""
    out: list[Word] = []
    for words, _ in _words(text, line0, False):
        out.extend(words)
    return out


def _numeric(code: int) -> str:
    return f"\\{code:03o}" if code < 0o400 else f"\\u{code:04x}"


def quote(s: str) -> str:
    """A double-quoted Tcl word: ``\\ " [ ] $ { }`` escaped, control characters and Unicode line breaks
    as ``\\n``, ``\\t``, ``\\ooo`` or ``\\uhhhh`` (always full width: never merged with what follows)."""
    return double_quoted(s, '\\"[]${}', _numeric)


def subst_escape(s: str) -> str:
    """``s`` with a backslash before every ``\\ [ ] $``: Tcl's ``subst`` (what Nuke applies to a label)
    gives ``s`` back literally and never runs a command or reads a variable."""
    return _SUBST.sub(r"\\\1", str(s))


def subst_unescape(s: str) -> str:
    """Inverse of :func:`subst_escape` (= Tcl ``subst`` of its result)."""
    return _UNSUBST.sub(r"\1", s)


def name_word(s: str) -> str:
    """A host string as a Nuke knob value that stays literal through parsing *and* substitution."""
    return quote(subst_escape(s))
