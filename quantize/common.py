"""Plumbing quantize/ and export/ share (export imports quantize, never the other way): the
one user-error type, the embedded-config JSON, the config sidecar, the command line generated
from a config dataclass, and (from :mod:`d4g_edge.fileio`, the one home of atomic writes)
``atomic_artifact`` and ``sha256_file``. Public: ``export/`` imports it.

Usage::

    text = config_json(cfg)                          # compact, sorted: what artifacts embed
    with atomic_artifact(path) as tmp:               # renamed onto path only if the block succeeds
        torch.export.save(program, tmp)
    write_config_sidecar(path, cfg)                  # <artifact>.json
    raise SystemExit(run_cli(MyConfig, run, argv, __doc__))
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# the one command-line builder; flag and build_parser are re-exported for export/'s configs
from d4g_edge.cli.args import config_from_args, dataclass_parser, flag  # noqa: F401
from d4g_edge.cli.args import dataclass_parser as build_parser  # noqa: F401
from d4g_edge.config import ConfigError, EncoderConfig

# the SDK's file helpers are the project's one implementation: re-exported for the exporters
from d4g_edge.fileio import atomic_output as atomic_artifact  # noqa: F401
from d4g_edge.fileio import (
    atomic_write,
    sha256_file,  # noqa: F401
)
from d4g_edge.log import logger


class UserError(ValueError):
    """Bad input (option, missing file, unsupported combination); CLIs print it and exit 2."""


def config_json(cfg: EncoderConfig) -> str:
    """The compact, key-sorted JSON each artifact embeds (key: d4g_edge.config.METADATA_KEY)."""
    return json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))


# ---- files ----------------------------------------------------------------------------------


def write_config_sidecar(artifact: str | Path, cfg: EncoderConfig) -> Path:
    """``<artifact>.json`` holding ``cfg`` (for runtimes that read no embedded strings)."""
    sidecar = Path(artifact).with_name(Path(artifact).name + ".json")
    return atomic_write(sidecar, json.dumps(cfg.to_dict(), sort_keys=True, indent=1) + "\n")


# ---- command lines built from config dataclasses (d4g_edge.cli.args, the one builder) --------


def run_cli(
    cls: type,
    fn: Callable[[Any], Any],
    argv: Sequence[str] | None = None,
    description: str | None = None,
    failures: tuple[type[BaseException], ...] = (),
) -> Any:
    """``main()`` of a CLI: flags -> ``cls`` -> ``fn(cfg)``, whose result is returned.

    User errors (:class:`UserError`, a bad config, a missing file) exit 2 and one of
    ``failures`` (e.g. a failed verification) exits 1, both with a message, no traceback.
    """
    from d4g_edge.log import setup_logging

    parser = dataclass_parser(cls, description)
    module = fn.__module__
    if module == "__main__":  # run with python -m: the spec knows the dotted name
        module = getattr(sys.modules["__main__"].__spec__, "name", module)
    parser.prog = f"python -m {module}"
    args = parser.parse_args(argv)
    setup_logging()
    logger.info("argv: %s", " ".join(sys.argv if argv is None else argv))
    try:
        cfg = config_from_args(cls, args)
        logger.info("config: %s", cfg)
        return fn(cfg)
    except (UserError, ConfigError, FileNotFoundError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    except failures as err:
        parser.exit(1, f"{parser.prog}: verification failed: {err}\n")
