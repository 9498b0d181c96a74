"""Helpers of the typed settings (pydantic models): tracker presets (tracker/config.py), job specs
(jobs/spec.py) and adapter options (adapters/records.py).

:data:`Number`: an int or float field that keeps an int as given (cache keys and saved specs stay the same).

Errors as one line: a pydantic ``ValidationError`` -> ``dotted.field: message``.

The tracker settings (tracker/config.py) and job specs (jobs/spec.py) are pydantic models; both report
their first problem through :func:`one_line`, so every settings error reads the same way:

* an unknown field: ``train.iteratons: unknown field; did you mean train.iterations?`` (or the known fields);
* a bad value: ``train.lr: must be a number in 1e-09..10, got 'fast'`` - what the field takes is worded from
  its type and bounds (:func:`expect`), or from its ``description`` when the field gives one;
* a rule a validator checks: the validator raises :class:`FieldError` (or a ValueError naming the field
  itself) and its text is the message.

List items are named ``outputs[1].format``. The caller adds the file (``ConfigError(..., where=file)``).
"""

from __future__ import annotations

import difflib
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ValidationError, WrapValidator


def _keep_int(v: Any, handler: Any) -> Any:
    out = handler(v)
    return v if type(v) is int else out


Number = Annotated[float, WrapValidator(_keep_int)]  # int or float (not bool, not text in strict models)


class FieldError(ValueError):
    """A validator's problem with one field; ``field`` is its full name (``queries[1]``, ``shot.path``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _unwrap(ann: Any) -> tuple[Any, bool]:
    """``Optional[X]`` -> (X, True) (X without its Annotated metadata); anything else -> (ann, False)."""
    args = typing.get_args(ann)
    if type(None) in args and typing.get_origin(ann) is not Literal:
        rest = [a for a in args if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
        if typing.get_origin(inner) is typing.Annotated:  # Optional[Number]
            inner = typing.get_args(inner)[0]
        return inner, True
    return ann, False


def model_of(ann: Any) -> type[BaseModel] | None:
    """The model a field holds (directly, optionally or as list items), or None."""
    ann, _ = _unwrap(ann)
    if typing.get_origin(ann) is list:
        ann, _ = _unwrap(typing.get_args(ann)[0])
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _bounds(metadata: list) -> tuple[Any, Any]:
    lo = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in metadata if hasattr(m, "le")), None)
    return lo, hi


def _range(lo: Any, hi: Any, fmt: str = "") -> str:
    if lo is not None and hi is not None:
        return f" in {lo:{fmt}}..{hi:{fmt}}"
    if lo is not None:
        return f" >= {lo:{fmt}}"
    return f" <= {hi:{fmt}}" if hi is not None else ""


def expect(fi: Any) -> str:
    """What a field takes, in words, from its type and bounds (``an integer in 1..10000000``), or its
    ``description`` when it has one."""
    if fi.description:
        return fi.description
    ann, nullable = _unwrap(fi.annotation)
    lo, hi = _bounds(fi.metadata)
    null = " or null" if nullable else ""
    origin = typing.get_origin(ann)
    if origin is Literal:
        return "one of " + ", ".join(str(x) for x in typing.get_args(ann)) + null
    if ann is bool:
        return "true or false" + null
    if ann is str:
        return "text" + null
    if origin is list:
        item = typing.get_args(ann)[0]
        meta = [m for a in typing.get_args(item)[1:] for m in getattr(a, "metadata", [a])]
        nonempty = "non-empty " if any(getattr(m, "min_length", None) for m in fi.metadata) else ""
        what = f" of integers{_range(*_bounds(meta))}" if typing.get_args(item)[:1] == (int,) or item is int else ""
        return f"a {nonempty}list{what}{null}"
    if ann is int:
        return f"an integer{_range(lo, hi)}{null}"
    if ann is float:
        return f"a number{_range(lo, hi, 'g')}{null}"
    return "a mapping" + null


def one_line(e: ValidationError, model: type[BaseModel], raw: Any, verb: str = "must be", prefix: str = "") -> str:
    """The first problem of ``e`` (raised validating ``raw`` as ``model``) as ``field: message``; unknown
    fields first, as a reader meets them. ``prefix``: the name of ``model``'s place in a bigger document."""
    err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return str(cause)
    name, fi, value, cur = prefix, None, raw, model
    for part in err["loc"]:
        if isinstance(part, int):
            if cur is None:  # an item of a plain list: the list is the field
                break
            name += f"[{part}]"
            value = value[part] if isinstance(value, list) and -len(value) <= part < len(value) else None
            continue
        if cur is None:
            break
        prefix = f"{name}." if name else ""
        if part not in cur.model_fields:
            known = list(cur.model_fields)
            near = difflib.get_close_matches(str(part), known, n=1)
            hint = f"; did you mean {prefix}{near[0]}?" if near else f" (known: {', '.join(known)})"
            return f"{prefix}{part}: unknown field{hint}"
        name, fi = prefix + part, cur.model_fields[part]
        cur = model_of(fi.annotation)
        value = value.get(part) if isinstance(value, dict) else None
    if err["type"] == "value_error":
        msg = str(cause if cause is not None else err["msg"])
        return f"{name}: {msg}" if name else msg
    if fi is None:
        return f"{name}: {err['msg']}" if name else err["msg"]
    if err["type"] == "missing":
        return f"{name}: missing" + (f" ({fi.description})" if fi.description else "")
    if cur is not None and err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{name}: {verb} a mapping of settings, got {type(value).__name__}"
    if value is None:
        value = err.get("input")
    return f"{name}: {verb} {expect(fi)}, got {value!r}"
