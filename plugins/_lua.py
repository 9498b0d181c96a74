"""A small reader for the Lua table syntax of Fusion ``.setting`` / ``.comp`` files.

Grammar subset: ``value := table | string | number | true | false | nil | Name ['(' ')'] [table]``
(``ordered() { ... }`` and ``Tracker { ... }`` are constructor calls); ``table := '{' fields '}'``
with fields ``[key] = value``, ``Name = value`` or a positional ``value``. A call becomes a
:class:`LuaCall` (type name + its table). Comments ``--`` and ``--[[ ]]`` are skipped. Errors carry the
1-based line. :func:`lua_string` quotes a Python string as a Lua string literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._common import double_quoted

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<lcomment>--\[\[.*?\]\])
  | (?P<comment>--[^\n]*)
  | (?P<num>-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<name>[A-Za-z_]\w*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op>[{}\[\]=,;()])
""", re.X | re.S)
_UNESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_UNESC_RE = re.compile(r"\\(\d{1,3}|.)", re.S)


def _unescape(m: re.Match) -> str:
    e = m.group(1)
    return chr(int(e)) if e.isdigit() else _UNESC.get(e, e)


class LuaSyntaxError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.message, self.line = message, line


@dataclass
class LuaTable:
    fields: dict = field(default_factory=dict)  # named and [key] fields, in order
    items: list = field(default_factory=list)  # positional values
    line: int = 0

    def get(self, key, default=None):
        return self.fields.get(key, default)


@dataclass
class LuaCall:
    name: str
    table: LuaTable | None
    line: int = 0


def _tokens(text: str):
    pos, line, n = 0, 1, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if not m:
            raise LuaSyntaxError(f"unexpected character {text[pos]!r}", line)
        kind = m.lastgroup
        tok = m.group()
        if kind not in ("ws", "comment", "lcomment"):
            yield kind, tok, line
        line += tok.count("\n")
        pos = m.end()
    yield "eof", "", line


class _Parser:
    def __init__(self, text: str):
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self, expect: str | None = None):
        kind, tok, line = self.toks[self.i]
        if expect is not None and tok != expect:
            raise LuaSyntaxError(f"expected {expect!r}, got {tok or 'end of file'!r}", line)
        self.i += 1
        return kind, tok, line

    def value(self):
        kind, tok, line = self.peek()
        if tok == "{":
            return self.table()
        if kind == "num":
            self.take()
            return int(tok, 16) if tok.lower().startswith(("0x", "-0x")) else (
                float(tok) if any(c in tok for c in ".eE") else int(tok))
        if kind == "str":
            self.take()
            return _UNESC_RE.sub(_unescape, tok[1:-1])
        if kind == "name":
            self.take()
            if tok in ("true", "false"):
                return tok == "true"
            if tok == "nil":
                return None
            if self.peek()[1] == "(":
                self.take("(")
                self.take(")")
            tbl = self.table() if self.peek()[1] == "{" else None
            return LuaCall(tok, tbl, line)
        raise LuaSyntaxError(f"unexpected {tok or 'end of file'!r}", line)

    def table(self) -> LuaTable:
        _, _, line = self.take("{")
        t = LuaTable(line=line)
        while self.peek()[1] != "}":
            kind, tok, _ = self.peek()
            if tok == "[":
                self.take("[")
                key = self.value()
                self.take("]")
                self.take("=")
                t.fields[key] = self.value()
            elif kind == "name" and self.toks[self.i + 1][1] == "=":
                self.take()
                self.take("=")
                t.fields[tok] = self.value()
            else:
                t.items.append(self.value())
            if self.peek()[1] in (",", ";"):
                self.take()
            elif self.peek()[1] != "}":
                k2, t2, l2 = self.peek()
                raise LuaSyntaxError(f"expected ',' or '}}', got {t2 or 'end of file'!r}", l2)
        self.take("}")
        return t


def parse_lua_value(text: str):
    """Parse one Lua value (a ``.setting`` file is one table); trailing text is an error."""
    p = _Parser(text)
    v = p.value()
    kind, tok, line = p.peek()
    if kind != "eof":
        raise LuaSyntaxError(f"unexpected {tok!r} after the table", line)
    return v


def lua_string(s: str) -> str:
    """The one Lua string escaper: a double-quoted literal with ``\\ "`` escaped, ``\\n``/``\\t``, other
    ASCII control characters as ``\\ddd`` (3 digits); other characters as UTF-8 (Lua 5.1 strings are bytes)."""
    return double_quoted(s, '\\"', lambda code: f"\\{code:03d}" if code < 128 else chr(code))
