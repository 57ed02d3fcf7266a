"""Command lines, written once: a config dataclass's fields become ``--flags``, and one set of
flag validators (argparse ``type=`` callables) that every command shares.

Torch-free and public. The ``d4g-edge`` commands use it, and so do the tooling entry points
(``train``, ``quantize``, ``export``, ``tools``): a flag's type, default and help come from the
dataclass the function takes, so the command line and the function cannot drift apart.

**The builder.** One ``--flag`` per field (``snake_case`` -> ``--kebab-case``):

* the type from the annotation (``X | None`` is ``X``): ``bool`` is ``--flag/--no-flag``;
  ``tuple[int, ...]`` takes one or more values; any other ``tuple`` is a ``HxW`` size
  (:func:`parse_size`); ``Path``, ``int``, ``float``; anything else a string;
* the default from the field (none: the flag is required), appended to the help as
  ``(default: X)`` unless it is None (the field's help says what None means);
* field metadata (:func:`flag` writes it): ``help``, ``choices``, ``metavar``, ``type`` (a
  validator below, instead of the plain type), ``default`` (the flag's, instead of the
  field's: e.g. None for "the preset's value"), ``group`` (the title of an argument group to
  list the flag under), ``one_of`` (the name of a required set of mutually exclusive flags:
  exactly one of them must be given).

A dataclass whose fields carry no metadata (e.g. :class:`d4g_edge.index.IndexParams`) gets
its help and validators from ``flags={field: metadata}``, and ``only=`` picks the fields that
are flags; the defaults still come from the dataclass.

**The validators.** A bad value is argparse's ``PROG: error: argument --FLAG: MESSAGE`` and
exit status 2, before any work starts (no bundle loaded, no model built). Each one that
mirrors an API check calls that check, so a flag and the API refuse the same values.

Usage::

    @dataclass(frozen=True)
    class Config:
        data: Path = field(metadata=flag("dataset root"))
        steps: int = field(default=300, metadata=flag("fine-tuning steps", type=whole(0)))

    parser = dataclass_parser(Config, __doc__, prog="python -m mytool")
    cfg = config_from_args(Config, parser.parse_args(argv))
    add_fields(parser, IndexParams, only=("M", "ef"), flags={"M": flag("degree", type=whole(2))})
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from d4g_edge.errors import D4GEdgeError

__all__ = [
    "SizeError",
    "add_fields",
    "cell_degrees",
    "checked",
    "config_from_args",
    "dataclass_parser",
    "finite",
    "flag",
    "flight",
    "heading_deg",
    "lat_lon",
    "number",
    "parse_size",
    "positive_int",
    "positive_metres",
    "prior",
    "shard_spec",
    "whole",
    "zoom_level",
]

# ---- the builder ----------------------------------------------------------------------------


def flag(help: str, choices: Sequence[str] | None = None, **more: Any) -> dict[str, Any]:
    """Field metadata that :func:`add_fields` turns into the flag's help, choices and any of
    ``metavar``, ``type``, ``group``, ``one_of``."""
    return {"help": help, **({"choices": tuple(choices)} if choices else {}), **more}


def _plain_type(tp: Any) -> Any:
    """``X`` of ``X | None`` (``Optional[X]``); ``tp`` itself otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _type_kwargs(tp: Any) -> dict[str, Any]:
    """argparse ``type`` (and ``nargs`` / ``metavar``) of a field annotation."""
    tp = _plain_type(tp)
    if typing.get_origin(tp) is tuple:
        if typing.get_args(tp)[1:] == (Ellipsis,):  # tuple[int, ...]: one or more values
            return {"type": typing.get_args(tp)[0], "nargs": "+"}
        return {"type": parse_size, "metavar": "HxW"}
    return {"type": {Path: Path, int: int, float: float, str: str}.get(tp, str)}


def _default(f: dataclasses.Field, meta: Mapping[str, Any]) -> Any:
    if "default" in meta:  # the flag's own, e.g. None for "the preset's value"
        return meta["default"]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _flag_kwargs(f: dataclasses.Field, tp: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``add_argument`` keywords of one field (everything but where the flag is listed)."""
    default = _default(f, meta)
    kw: dict[str, Any] = {"help": meta.get("help", "")}
    if _plain_type(tp) is bool:  # bool | None: None means "the preset decides"
        # --flag / --no-flag; BooleanOptionalAction states the default in the help itself
        kw["action"] = argparse.BooleanOptionalAction
        if default is dataclasses.MISSING:
            return kw | {"required": True}
        return kw | {"default": default}
    kw |= _type_kwargs(tp)
    kw |= {k: meta[k] for k in ("choices", "metavar", "type") if k in meta}
    if default is dataclasses.MISSING:
        kw["required"] = True
    else:
        kw["default"] = default
        if default is not None and "one_of" not in meta:
            kw["help"] += f" (default: {default})"
    return kw


def add_fields(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    flags: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Add one ``--flag`` per field of the dataclass ``cls`` to ``parser`` (or an argument
    group): the fields named in ``only`` (default: all), in ``only``'s order; ``flags``
    adds to (or replaces) a field's metadata, for dataclasses that carry none."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields) if only is None else list(only)
    unknown = [n for n in names if n not in fields] + [n for n in flags or {} if n not in fields]
    if unknown:  # a programming error: a renamed field must not silently drop its flag
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    targets: dict[str, Any] = {}
    for name in names:
        f = fields[name]
        meta = {**f.metadata, **(flags or {}).get(name, {})}
        if one_of := meta.get("one_of"):
            key = "one_of:" + one_of
            if key not in targets:
                targets[key] = parser.add_mutually_exclusive_group(required=True)
            target = targets[key]
        elif title := meta.get("group"):
            target = targets.setdefault(title, parser.add_argument_group(title))
        else:
            target = parser
        target.add_argument("--" + name.replace("_", "-"), **_flag_kwargs(f, hints[name], meta))


def dataclass_parser(
    cls: type,
    description: str | None = None,
    *,
    prog: str | None = None,
    only: Iterable[str] | None = None,
    flags: Mapping[str, Mapping[str, Any]] | None = None,
) -> argparse.ArgumentParser:
    """A parser with one ``--flag`` per field of the dataclass ``cls`` (see :func:`add_fields`);
    ``description`` is shown as written (a module docstring keeps its layout)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_fields(parser, cls, only=only, flags=flags)
    return parser


def config_from_args(cls: type, args: argparse.Namespace, *, only: Iterable[str] | None = None):
    """``cls`` built from the parsed flags of its fields (``only``: just those; the others
    keep their defaults). ``nargs`` lists become tuples, as the dataclasses annotate them."""
    names = [f.name for f in dataclasses.fields(cls)] if only is None else list(only)
    values = {name: getattr(args, name) for name in names}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ---- validators: numbers --------------------------------------------------------------------


def finite(text: str, what: str = "a number") -> float:
    """A finite float; ``what`` names the expected value in the message."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"expected {what}, got {text!r}: NaN and infinity are not allowed"
        )
    return value


def number(
    kind: type = float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], Any]:
    """A validator of a finite ``kind`` (``int`` or ``float``) within the bounds, each bound
    closed unless ``lo_open`` / ``hi_open``: ``number(float, 0, lo_open=True)`` is > 0."""
    left = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    right = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
    noun = "an integer" if kind is int else "a finite number"
    want = f"{noun} {left}{' and ' * bool(left and right)}{right}".strip()

    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        ok = math.isfinite(x)
        ok = ok and (lo is None or (x > lo if lo_open else x >= lo))
        ok = ok and (hi is None or (x < hi if hi_open else x <= hi))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return x

    return parse


def whole(low: int, high: int | None = None, what: str | None = None) -> Callable[[str], int]:
    """A validator of a whole number in ``low..high`` (``high`` None: no upper bound);
    ``what`` names it in the message (default: "a whole number >= LOW")."""
    what = what or f"a whole number >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


positive_int = whole(1)  # a count >= 1 (--top-k, --threads, --queries, --batch-size, ...)


def positive_metres(text: str) -> float:
    """A finite length > 0 in metres (``--tile-size-m``, ``--stride-m``)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected metres > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected metres > 0 (finite), got {text!r}")
    return value


def heading_deg(text: str) -> float:
    """Degrees clockwise from north, any finite value (taken modulo 360 where used)."""
    return finite(text, "degrees clockwise from north, e.g. 0 for north or 90 for east")


def _numbers(text: str, names: str) -> list[float]:
    parts = text.split(",")
    if len(parts) != len(names.split(",")):
        raise argparse.ArgumentTypeError(
            f"expected {names} ({len(names.split(','))} comma-separated numbers), got {text!r}"
        )
    return [finite(v, f"{names} as numbers") for v in parts]


def _check_lat_lon(lat: float, lon: float, text: str) -> None:
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise argparse.ArgumentTypeError(
            f"latitude must be in -90..90 and longitude in -180..180 degrees, got {text!r} "
            "(latitude first)"
        )


def lat_lon(text: str) -> tuple[float, float]:
    """``LAT,LON`` in degrees (``--truth``)."""
    lat, lon = _numbers(text, "LAT,LON")
    _check_lat_lon(lat, lon, text)
    return lat, lon


def prior(text: str) -> tuple[float, float, float]:
    """``LAT,LON,RADIUS_M`` with a radius > 0 (``--prior``)."""
    lat, lon, radius = _numbers(text, "LAT,LON,RADIUS_M")
    _check_lat_lon(lat, lon, text)
    if radius <= 0:
        raise argparse.ArgumentTypeError(f"RADIUS_M must be > 0 metres, got {text!r}")
    return lat, lon, radius


class SizeError(D4GEdgeError, ValueError, argparse.ArgumentTypeError):
    """A malformed HEIGHTxWIDTH size (argparse shows its message as is; a config's own
    validation catches it as the ValueError it was)."""


def parse_size(text: str) -> tuple[int, int]:
    """'64x256' -> (64, 256); a single number means a square."""
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise SizeError(f"expected HEIGHTxWIDTH like 64x256, got {text!r}")
    return parts[0], parts[1]


# ---- validators that call the API's own check -----------------------------------------------


def checked(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """A validator from an API check: ``check(text)``'s SDK error (a
    :class:`~d4g_edge.errors.D4GEdgeError`) becomes the flag's message as it is."""

    def parse(text: str):
        try:
            return check(text)
        except D4GEdgeError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = getattr(check, "__name__", "value")  # argparse names it in some messages
    return parse


def flight(key: str, parse_number: Callable[[str], float] = finite) -> Callable[[str], float]:
    """``--altitude`` / ``--pitch`` (``key`` ``altitude_m`` / ``pitch_deg``): a number
    (``parse_number``'s message when it is not one) in the ranges a
    :class:`d4g_edge.drone.Flight` checks, one definition of what is physically meaningful."""

    def check(text: str) -> float:
        from d4g_edge.drone import Flight

        value = parse_number(text)
        Flight(**{key: value})
        return value

    check.__name__ = key
    return checked(check)


def zoom_level(text: str) -> int:
    """An XYZ zoom level 0..28 (``--zoom``; :mod:`d4g_edge.build.tiles.xyz` packs x and y
    into 28 bits)."""
    from d4g_edge.build.tiles.xyz import MAX_ZOOM

    return whole(0, MAX_ZOOM, f"a zoom level 0..{MAX_ZOOM}")(text)


def cell_degrees(text: str) -> float:
    """A cell size in degrees (``--cell-deg``): :func:`d4g_edge.build.builder.check_cell_deg`."""
    from d4g_edge.build.builder import check_cell_deg

    try:
        return check_cell_deg(float(text))
    except (TypeError, ValueError, D4GEdgeError) as err:
        raise argparse.ArgumentTypeError(f"expected degrees, got {text!r}: {err}") from None


def shard_spec(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n (``--shard``), see :func:`d4g_edge.build.shards.parse_shard`."""
    from d4g_edge.build.shards import parse_shard

    return checked(parse_shard)(text)
