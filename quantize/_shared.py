"""Private stand-ins for the shared export helpers (``export/_common.py``, ``export/_verify.py``).

Written alongside those modules on another branch; the names follow the artifact contract so
the merge can point the callers at the shared versions and delete this file:
:func:`config_json`, :func:`atomic_write`, :func:`file_sha256`, :func:`dataclass_parser` /
:func:`run_cli` (a CLI built from a config dataclass; user errors exit 2 without a
traceback) and :func:`world_images` (held-out, fixed-seed images of the procedural world,
preprocessed exactly as a device would).

Usage::

    text = config_json(cfg)                          # compact, sorted: what artifacts embed
    atomic_write(path, data)                         # temp name + rename
    x = world_images(cfg, n=16, seed=VERIFY_SEED)    # float32 (n, 3, H, W)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from d4g_edge import logger
from d4g_edge.config import EncoderConfig
from d4g_edge.preprocess import preprocess

CONFIG_KEY = "d4g_edge.encoder_config"
# Towns of the procedural world are drawn from seeds far from any training run's (train.synth
# derives town seeds from small master seeds), so these images were never trained on.
VERIFY_SEED = 990_001
CALIBRATION_SEED = 990_101
# train.synth's CVUSA layout: 90 m tiles, panoramas cropped to a 65-degree band at the horizon.
_TILE_M, _PANO_VFOV = 90.0, 65.0


class UserError(ValueError):
    """Bad input from the command line; the CLI prints it and exits 2."""


def config_json(cfg: EncoderConfig) -> str:
    """The compact JSON every artifact embeds under :data:`CONFIG_KEY`."""
    return json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name next to ``path`` (same file system, so rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    umask = os.umask(0)  # mkstemp makes 0600; give the permissions a plain open() would
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` via a temp file and ``os.replace``; never a partial file."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def world_images(cfg: EncoderConfig, n: int, seed: int, view: str | None = None) -> np.ndarray:
    """``n`` images of ``view`` rendered at street points of held-out towns, preprocessed."""
    from train.world import TOWN_STYLES, DomainGap, World  # torch-free, but slow to import

    view = view or cfg.view
    rng = np.random.default_rng(seed)
    images: list[np.ndarray] = []
    town = 0
    while len(images) < n:
        style = TOWN_STYLES[town % len(TOWN_STYLES)]
        world = World.generate(seed + town, style, size_m=400.0)
        for east, north in world.sample_street_points(min(8, n - len(images)), rng):
            gap = DomainGap.sample(rng, 1.0)
            if view == "satellite":
                rgb = world.render_satellite((east, north), 256, _TILE_M / 256, gap=gap, rng=rng)
            else:
                full = world.render_panorama((east, north), 256, 512, gap=gap, rng=rng)
                band = round(full.shape[0] * _PANO_VFOV / 180.0)
                top = (full.shape[0] - band) // 2
                rgb = np.ascontiguousarray(full[top : top + band])
            images.append(preprocess(rgb, cfg, view=view)[0])
        town += 1
    logger.info("rendered %d held-out %s images (seed %d)", n, view, seed)
    return np.stack(images)


# ---- command lines built from config dataclasses (STYLE.md #1) ----------------------------


def _flag_type(tp: Any) -> Callable[[str], Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp if tp in (int, float, str, Path) else str


def dataclass_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """One ``--flag`` per field of ``cls`` (help, choices and default from the field)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        kwargs: dict[str, Any] = {"help": meta.get("help", ""), "dest": f.name}
        if hints[f.name] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["default"] = f.default
        else:
            kwargs["type"] = _flag_type(hints[f.name])
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            if f.default is dataclasses.MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = f.default
                kwargs["help"] += " (default: %(default)s)"
        parser.add_argument(flag, **kwargs)
    return parser


def run_cli(
    cls: type,
    fn: Callable[[Any], Any],
    argv: list[str] | None,
    doc: str | None,
    failures: tuple[type[BaseException], ...] = (),
) -> Any:
    """Parse ``argv`` into ``cls`` and call ``fn``; a :class:`UserError` exits 2 and one of
    ``failures`` (e.g. a failed verification) exits 1, both with a message, no traceback."""
    from d4g_edge._log import setup_logging

    parser = dataclass_parser(cls, description=doc)
    module = fn.__module__
    if module == "__main__":  # run with python -m: the spec knows the dotted name
        module = getattr(sys.modules["__main__"].__spec__, "name", module)
    parser.prog = f"python -m {module}"
    args = parser.parse_args(argv)
    setup_logging()
    logger.info("argv: %s", " ".join(sys.argv if argv is None else argv))
    try:
        cfg = cls(**vars(args))
        logger.info("config: %s", cfg)
        return fn(cfg)
    except (UserError, FileNotFoundError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    except failures as err:
        parser.exit(1, f"{parser.prog}: failed: {err}\n")
