"""Named-shape checks at public boundaries (after kornia's ``KORNIA_CHECK_SHAPE``).

``check_shape(x, "N T 2", "tracks")`` checks ``x.shape`` against named dims; a literal
number must match exactly, a name binds on first use and must agree afterwards
(pass ``dims={"T": 32}`` to bind ahead of time). Works on numpy arrays and torch tensors.
Errors show expected vs actual::

    ShapeError: tracks: expected shape (N, T, 2) with T=32, got (5, 31, 2)
"""

from __future__ import annotations

from typing import Any

from .errors import ShapeError


def check_shape(x: Any, spec: str, name: str = "tensor", dims: dict[str, int] | None = None) -> dict[str, int]:
    """Check ``x.shape`` against ``spec`` (space separated names/ints, ``*`` = any rank prefix).

    Returns the dict of bound dimension names so callers can reuse them.
    """
    bound: dict[str, int] = dict(dims or {})
    shape = tuple(int(s) for s in x.shape)
    tokens = spec.split()
    if tokens and tokens[0] == "*":
        tokens = tokens[1:]
        if len(shape) < len(tokens):
            _fail(name, spec, bound, shape)
        shape_tail = shape[len(shape) - len(tokens):]
    else:
        if len(shape) != len(tokens):
            _fail(name, spec, bound, shape)
        shape_tail = shape
    for tok, size in zip(tokens, shape_tail):
        if tok.isdigit():
            if int(tok) != size:
                _fail(name, spec, bound, shape)
        elif tok in bound:
            if bound[tok] != size:
                _fail(name, spec, bound, shape)
        else:
            bound[tok] = size
    return bound


def _fail(name: str, spec: str, bound: dict[str, int], shape: tuple[int, ...]) -> None:
    fixed = ", ".join(f"{k}={v}" for k, v in bound.items())
    exp = "(" + ", ".join(spec.split()) + ")"
    raise ShapeError(f"{name}: expected shape {exp}{' with ' + fixed if fixed else ''}, got {shape}")
