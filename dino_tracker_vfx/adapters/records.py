"""Records shared by the plugin system: :class:`Adapter`, :class:`OptionSpec`, :class:`ReadResult`.

Adapter contract
----------------
* ``write(tracks, path, options)`` writes ONE main file ``path`` atomically (through
  :mod:`dino_tracker_vfx.atomic`); ``options`` is the dict returned by :func:`resolve_options`
  (every declared option present, converted to its type, defaults filled in). An adapter may write
  companion files beside the main one (e.g. one ``.txt`` per track) - each atomically, and it says so
  in its docstring.
* ``read_queries(path, options) -> ReadResult``: query points found in a host file.
* ``read_tracks(path, options) -> TrackSet``: full tracks (for round trips / re-export).
* ``check(options, context)`` (optional): validate resolved write options against what a caller knows
  before any tracks exist, writing nothing; raise ConfigError/InputError naming the option. ``context``
  keys: ``track_names`` (the names the tracks will have, or None when not known yet), ``frame_numbers``,
  ``plate_size``. A job calls it when it is submitted, so e.g. a cornerpin naming 3 tracks fails then,
  not after training (see :func:`dino_tracker_vfx.adapters.check_write_options`).
* ``capabilities``: what the format carries, from :data:`CAPABILITIES`.
* ``options``: the adapter options (:class:`OptionSpec`). The CLI passes them as
  ``--option name=value``; an option with ``flag`` set (e.g. ``"--blend"``) is ALSO a flag of
  ``dtvfx export`` (``dtvfx export t.json --to blender --blend out.blend --clip plate.####.exr``).

Context keys
------------
Callers that know the shot put these into the ``options`` dict of ``read_queries`` /
``read_tracks`` (readers of normalised formats such as Fusion need the plate size):
``"plate_size"``: ``(W, H)``; ``"frame_numbers"``: the shot's host frame numbers (a list of int);
``"keyed"``: true when the caller reads corrections and wants every keyed (visible) frame of a track as
:attr:`HostQuery.keys`, not the query alone (readers of Nuke, Blender and the matchmove formats honour it;
a reader that does not is read as queries only).
They are never declared as OptionSpecs; :func:`resolve_options` converts them (``plate_size`` from
``"WxH"`` too, ``frame_numbers`` from ``"1001-1010"`` / ``"1001,1003"``) so a user can also give them
as ``--option plate_size=1920x1080``.

Host frames -> image indices (ReadResult)
-----------------------------------------
A reader never guesses image indices. Each :class:`HostQuery` carries the **host frame number**
(as displayed by the host on the plate's frame axis, e.g. 1001) and the position already converted
to core plate pixels (top-left origin, y down, centre of the first pixel at (0, 0) - conversions
only through :mod:`dino_tracker_vfx.coords`). Formats that count frames relative to the shot start
(After Effects: 0 = first shot frame) add ``first_frame`` (an adapter option, default the shot's
first frame when the caller passes ``frame_numbers``) before building the HostQuery.
:meth:`ReadResult.to_queries` then maps host frames to 0-based image indices with the shot's
``frame_numbers`` (a :class:`~dino_tracker_vfx.shots.Shot`, a TrackSet, or a plain sequence): a frame
that is not in the shot (outside the range or in a gap) is an :class:`InputError` naming the file,
the query and the frame - never a silently shifted frame.

Keyed frames (corrections): a :class:`HostQuery` may carry ``keys``, the host frames and positions the
artist keyed on that tracker besides its query; :meth:`ReadResult.to_queries` returns each as a further
:class:`~dino_tracker_vfx.tracks.Query` with the tracker's name, i.e. an anchor of the same track
(:func:`~dino_tracker_vfx.tracks.group_anchors`); their frames are checked like the query's.

Names: a ReadResult always holds unique names. Readers pass what the host file says; duplicates are
renamed deterministically ``a``, ``a_2``, ``a_3`` in file order (:func:`~dino_tracker_vfx.tracks.unique_names`)
and each rename is recorded in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Optional, Sequence

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from ..errors import ConfigError, InputError
from ..tracks import Query, TrackSet, unique_names

CAPABILITIES = frozenset({"tracks", "groups", "visibility", "confidence", "queries", "cornerpin", "masks"})
OPTION_TYPES = ("str", "int", "float", "bool", "list", "path", "size")
CONTEXT_KEYS = ("plate_size", "frame_numbers", "keyed")

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


@dataclass(frozen=True)
class OptionSpec:
    """One adapter option.

    ``type``: ``"str" | "int" | "float" | "bool" | "list" | "path" | "size"``. ``list`` values are
    comma-separated on the command line (``cornerpin=a,b,c,d``); ``size`` is ``WxH``.
    ``flag``: also expose the option as this ``dtvfx export`` flag (e.g. ``"--blend"``).
    ``required``: the writer/reader cannot run without it (a missing one is a ConfigError).
    ``choices``: allowed values (after conversion), empty = any.
    """

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    flag: str | None = None
    required: bool = False
    choices: tuple = ()

    def __post_init__(self):
        if self.type not in OPTION_TYPES:
            raise ValueError(f"OptionSpec {self.name!r}: type {self.type!r} not in {OPTION_TYPES}")
        if self.flag is not None and not self.flag.startswith("--"):
            raise ValueError(f"OptionSpec {self.name!r}: flag {self.flag!r} must start with '--'")

    def convert(self, value: Any) -> Any:
        """``value`` (a CLI string or an already typed Python value) as this option's type; ValueError or
        TypeError when it is not one (choices are checked by the options model, :func:`options_model`)."""
        if value is None:
            return None
        if self.type == "str":
            return str(value)
        if self.type == "path":
            return Path(value)
        if self.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if self.type == "float":
            return float(value)
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in _TRUE:
                return True
            if str(value).strip().lower() in _FALSE:
                return False
            raise ValueError(value)
        if self.type == "list":
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        # size
        w, h = value.lower().replace(",", "x").split("x") if isinstance(value, str) else value
        out = (int(w), int(h))
        if out[0] <= 0 or out[1] <= 0:
            raise ValueError(value)
        return out

    def parse(self, value: Any, where: str = "option") -> Any:
        """Convert and check one value of this option (as :func:`resolve_options` does)."""
        if value is None:
            return None
        return _validated(options_model("option", (self,)), {self.name: value}, where, "option", (self,))[self.name]


@dataclass(frozen=True)
class HostQuery:
    """A query as found in a host file: host frame number + core plate-pixel position."""

    frame: int
    x: float
    y: float
    name: str | None = None
    group: str | None = None
    line: int | None = None  # line of the host file it came from, for error messages
    keys: tuple[tuple[int, float, float], ...] = ()  # keyed frames (frame, x, y): corrections, same track


@dataclass(frozen=True)
class ReadResult:
    """Queries read from a host file (see the module docstring for the frame mapping)."""

    queries: tuple[HostQuery, ...]
    frame_numbers: tuple[int, ...] | None = None  # host frames the file covers, when it says
    plate_size: tuple[int, int] | None = None  # (W, H) when the file says
    notes: tuple[str, ...] = ()
    source: str = ""  # file name, for messages

    def __post_init__(self):
        qs = tuple(self.queries)
        notes = list(self.notes)
        names = unique_names([q.name for q in qs], prefix="query")
        fixed = []
        for q, n in zip(qs, names):
            if q.name is not None and q.name != n:
                notes.append(f"duplicate name {q.name!r} renamed to {n!r}")
            fixed.append(HostQuery(int(q.frame), float(q.x), float(q.y), n, q.group, q.line,
                                   tuple((int(f), float(x), float(y)) for f, x, y in q.keys)))
        object.__setattr__(self, "queries", tuple(fixed))
        object.__setattr__(self, "notes", tuple(notes))
        if self.frame_numbers is not None:
            object.__setattr__(self, "frame_numbers", tuple(int(f) for f in self.frame_numbers))
        if self.plate_size is not None:
            object.__setattr__(self, "plate_size", (int(self.plate_size[0]), int(self.plate_size[1])))

    def to_queries(self, shot: Any) -> list[Query]:
        """Map host frames to image indices of ``shot`` (Shot, TrackSet or a sequence of frame numbers).

        Raises InputError for a frame outside the shot or a plate size that disagrees with it.
        """
        if hasattr(shot, "frame_numbers"):
            frames = np.asarray(shot.frame_numbers, dtype=np.int64)
            size = getattr(shot, "size", None) or getattr(shot, "plate_size", None)
        else:
            frames, size = np.asarray(list(shot), dtype=np.int64), None
        where = self.source or None
        if size is not None and self.plate_size is not None and tuple(size) != tuple(self.plate_size):
            raise InputError(f"the file is for a {self.plate_size[0]}x{self.plate_size[1]} plate, "
                             f"the shot is {size[0]}x{size[1]}", where=where)
        rng = f"{frames[0]}-{frames[-1]}" if len(frames) else "empty"
        out = []
        for q in self.queries:
            for k, (frame, x, y) in enumerate(((q.frame, q.x, q.y), *q.keys)):
                hits = np.nonzero(frames == frame)[0]
                if len(hits) == 0:
                    what = "outside" if not len(frames) or not frames[0] <= frame <= frames[-1] else "in a gap of"
                    loc = f"{where}:{q.line}" if (where and q.line) else where
                    kind = "query" if k == 0 else "keyed correction of"
                    raise InputError(f"{kind} {q.name!r} is at frame {frame}, {what} the shot ({rng})", where=loc)
                out.append(Query(int(hits[0]), x, y, q.name, q.group))
        return out


@dataclass(frozen=True)
class Adapter:
    """One host format. See the module docstring for the contract of each callable."""

    name: str
    suffixes: tuple[str, ...]
    description: str
    write: Callable[[TrackSet, Path, dict], None] | None = None
    read_queries: Callable[[Path, dict], ReadResult] | None = None
    read_tracks: Callable[[Path, dict], TrackSet] | None = None
    capabilities: frozenset[str] = frozenset()
    options: tuple[OptionSpec, ...] = ()
    check: Callable[[dict, dict], None] | None = None

    def __post_init__(self):
        object.__setattr__(self, "suffixes", tuple(s.lower() for s in self.suffixes))
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        object.__setattr__(self, "options", tuple(self.options))
        bad = [s for s in self.suffixes if not s.startswith(".")]
        if bad:
            raise ValueError(f"adapter {self.name!r}: suffixes must start with '.', got {bad}")
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise ValueError(f"adapter {self.name!r}: unknown capabilities {sorted(unknown)}")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"adapter {self.name!r}: duplicate option names {names}")

    def option(self, name: str) -> OptionSpec:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)

    def can(self, need: str) -> bool:
        """``need`` in ``write``, ``read_queries``, ``read_tracks``."""
        return getattr(self, need) is not None


_PY_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": tuple[str, ...], "path": Path,
             "size": tuple[int, int]}


def options_model(adapter_name: str, options: Sequence[OptionSpec]) -> type[BaseModel]:
    """The pydantic model of an adapter's options, built from its :class:`OptionSpec` declarations: one
    field per option (aliased by the option's name), its type, ``choices`` as a Literal, ``required`` as a
    required field, the default converted like a given value, command-line text converted by
    :meth:`OptionSpec.convert`; unknown names are refused."""
    fields: dict[str, Any] = {}
    for i, o in enumerate(options):
        ann: Any = Literal[tuple(o.choices)] if o.choices else _PY_TYPES[o.type]
        ann = Annotated[ann if o.required else Optional[ann], BeforeValidator(o.convert)]
        fields[f"o{i}"] = (ann, Field(... if o.required else o.default, alias=o.name))
    return create_model(f"{adapter_name}_options", __config__=ConfigDict(extra="forbid", validate_default=True,
                                                                         arbitrary_types_allowed=True), **fields)


def _validated(model: type[BaseModel], given: dict, where: str, adapter_name: str,
               options: Sequence[OptionSpec]) -> dict:
    """``given`` through ``model``; the first problem as one ConfigError naming the option."""
    try:
        return model.model_validate(given).model_dump(by_alias=True)
    except ValidationError as e:
        err = e.errors()[0]
        known = {o.name: o for o in options}
        k = err["loc"][0] if err["loc"] else None
        if err["type"] == "extra_forbidden" or k not in known:
            listing = ", ".join(sorted(known)) or "none"
            msg = f"unknown option {k!r} (options of {adapter_name}: {listing})"
        elif err["type"] == "missing":
            o = known[k]
            how = f"{o.flag} or --option {o.name}=..." if o.flag else f"--option {o.name}=..."
            msg = f"option {o.name!r} is required ({how}): {o.help}"
        elif err["type"] == "literal_error":
            msg = f"{k}={given.get(k, known[k].default)!r} must be one of {', '.join(map(str, known[k].choices))}"
        else:
            o = known[k]
            msg = f"{k}={given.get(k, o.default)!r} is not a valid {o.type}{' (WxH)' if o.type == 'size' else ''}"
        raise ConfigError(msg, where=where) from None


def resolve_options(adapter: Adapter, given: Mapping[str, Any] | None, where: str | None = None) -> dict:
    """Validate ``given`` with the adapter's options model (:func:`options_model`): unknown names and
    missing required options are ConfigErrors (listing the known ones); values are converted; defaults
    filled in (a None value counts as not given). Context keys (:data:`CONTEXT_KEYS`) are converted beside."""
    given = dict(given or {})
    where = where or f"adapter {adapter.name}"
    context = {k: _parse_context(k, given.pop(k), where) for k in CONTEXT_KEYS if k in given}
    given = {k: v for k, v in given.items() if v is not None}
    out = _validated(options_model(adapter.name, adapter.options), given, where, adapter.name, adapter.options)
    return {**out, **context}


def _parse_context(key: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    if key == "plate_size":
        return OptionSpec("plate_size", "size").parse(value, where)
    if key == "keyed":
        return OptionSpec("keyed", "bool").parse(value, where)
    try:  # frame_numbers: a sequence of ints, or text "1001,1002" / "1001-1010"
        if isinstance(value, str):
            if "-" in value.strip()[1:] and "," not in value:
                a, b = value.strip().rsplit("-", 1)
                return [int(f) for f in range(int(a), int(b) + 1)]
            return [int(f) for f in value.split(",") if f.strip()]
        return [int(f) for f in value]
    except (TypeError, ValueError):
        raise ConfigError(f"frame_numbers={value!r} is not a list of frame numbers", where=where) from None


def parse_option_pairs(pairs: Sequence[str] | None, where: str = "--option") -> dict[str, str]:
    """``["a=1", "b=x,y"]`` -> ``{"a": "1", "b": "x,y"}`` (values converted later by resolve_options)."""
    out: dict[str, str] = {}
    for p in pairs or ():
        if "=" not in p:
            raise ConfigError(f"{p!r} is not key=value", where=where)
        k, v = p.split("=", 1)
        k = k.strip().replace("-", "_")
        if not k:
            raise ConfigError(f"{p!r} has an empty key", where=where)
        out[k] = v
    return out


__all__ = ["Adapter", "OptionSpec", "HostQuery", "ReadResult", "CAPABILITIES", "CONTEXT_KEYS",
           "OPTION_TYPES", "options_model", "resolve_options", "parse_option_pairs"]
