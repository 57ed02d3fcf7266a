"""Synthetic cross-view datasets from the procedural world, in the official file layouts.

:func:`synthesize` renders panoramas and satellite tiles of :mod:`train.world` towns and
writes them exactly as CVUSA, CVACT, VIGOR or University-1652 (drone, satellite and street
views of buildings) are distributed, so the same loaders read the real and the synthetic
data. Output is deterministic given the settings and the seed, whatever the number of
workers. Test pairs come from towns never used for training.

Usage::

    from train.synth import SynthConfig, synthesize
    synthesize(SynthConfig(layout="vigor", out=Path("data/vigor"), train=400, test=100))

or ``python -m train.synth --layout vigor --out data/vigor --train 400 --test 100``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from d4g_edge.cli.args import parse_size
from d4g_edge.log import logger

from ._config import LAYOUTS, VIGOR_LAYOUTS, SynthConfig
from ._output import OutputDirError, prepare_output, read_info, write_info
from ._render import run_jobs
from .cvact import OWNED as _CVACT_OWNED
from .cvact import write_cvact
from .cvusa import OWNED as _CVUSA_OWNED
from .cvusa import write_cvusa
from .preview import write_preview
from .university1652 import OWNED as _U1652_OWNED
from .university1652 import run_u1652_jobs, write_university1652
from .vigor import OWNED as _VIGOR_OWNED
from .vigor import write_vigor

__all__ = [
    "LAYOUTS",
    "VIGOR_LAYOUTS",
    "OutputDirError",
    "SynthConfig",
    "parse_size",
    "read_info",
    "synthesize",
    "write_preview",
]

_WRITERS = {
    "cvusa": write_cvusa,
    "cvact": write_cvact,
    "vigor": write_vigor,
    "university1652": write_university1652,
}
_RUNNERS = {"university1652": run_u1652_jobs}  # its own job kinds (drone, street photos)
# --overwrite clears what any layout may have left, so a CVUSA dir can become a VIGOR one.
_OWNED = tuple(dict.fromkeys((*_CVUSA_OWNED, *_CVACT_OWNED, *_VIGOR_OWNED, *_U1652_OWNED)))


def synthesize(cfg: SynthConfig) -> Path:
    """Write the dataset described by ``cfg`` into ``cfg.out``; returns ``cfg.out``."""
    start = time.perf_counter()
    prepare_output(cfg, _OWNED)
    write_info(cfg, "writing")
    runner = _RUNNERS.get(cfg.layout, run_jobs)
    run = functools.partial(runner, workers=cfg.workers, desc=f"{cfg.layout} images")
    towns = _WRITERS[cfg.layout](cfg, run)
    write_info(cfg, "complete", towns=towns)
    logger.info(
        "wrote %s (%d train / %d test pairs) to %s in %.1f s",
        cfg.layout,
        cfg.train,
        cfg.test,
        cfg.out,
        time.perf_counter() - start,
    )
    if cfg.preview is not None:
        logger.info("preview: %s", write_preview(cfg.layout, cfg.out, cfg.preview))
    return cfg.out
