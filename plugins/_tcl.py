"""A small reader for the Tcl syntax of Nuke scripts (.nk) - enough to find nodes, knobs and curves.

Not a Tcl interpreter: no substitution is evaluated. Words are braced (``{...}``, nested, raw),
quoted (``"..."``, backslash escapes resolved) or bare. :func:`parse_script` splits commands on
newlines / ``;`` and skips ``#`` comments; :func:`parse_list` splits a Tcl list. Errors carry the
1-based line number. :func:`quote` makes a Nuke-safe quoted string.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._common import double_quoted

_WS = " \t\r"
_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "{": "{", "}": "}", "[": "[", "]": "]", "$": "$"}


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
                    buf.append(_ESC.get(text[j + 1], text[j + 1]))
                    if text[j + 1] == "\n":
                        line += 1
                    j += 2
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
                    buf.append(_ESC.get(text[j + 1], text[j + 1]))
                    j += 2
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


def quote(s: str) -> str:
    """A double-quoted Tcl string with ``\\ " [ ] $ { }`` and control characters escaped."""
    return double_quoted(s, '\\"[]${}')
