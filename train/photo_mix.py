"""Weight-space interpolation of a student and its fine-tune (WiSE-FT, Wortsman et al. 2022).

``theta = (1 - alpha) * theta_old + alpha * theta_new``, every floating-point tensor of the
state dict (BatchNorm statistics included). Between the released panorama student
(``alpha = 0``: the space the bundles' indexes were built for) and its photo fine-tune
(:mod:`train.photo_student`, ``alpha = 1``), an intermediate point keeps the panorama
retrieval of the one and most of the photo gains of the other; measure it with
:mod:`train.photo_eval`. The result is a checkpoint like its inputs (weights + sidecar, the
new student's config and training facts, plus ``interpolated``), ready for ``tools.release``.

Usage::

    python -m train.photo_mix --old weights/edge-s-vigor/student_ground.pt \\
        --new runs/photo_student/student_ground.pt --alpha 0.7 \\
        --out runs/photo_student/mix0.7/student_ground.pt
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.log import logger, setup_logging
from train.loop.arg_checks import user_message
from train.loop.checkpoint import CheckpointError, save_checkpoint
from train.loop.rebuild import load_encoder


@dataclass(frozen=True)
class MixConfig:
    old: Path = field(metadata={"help": "the student fine-tuning started from (alpha = 0)"})
    new: Path = field(metadata={"help": "its fine-tune (alpha = 1)"})
    alpha: float = field(metadata={"help": "weight of --new, in [0, 1]"})
    out: Path = field(metadata={"help": "checkpoint to write (with its .json sidecar)"})


def interpolate(old: Path, new: Path, alpha: float, out: Path) -> Path:
    """Write ``(1 - alpha) * old + alpha * new`` to ``out``; both must be the same encoder."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha {alpha}: expected a weight in [0, 1]")
    m_old, c_old, s_old = load_encoder(old)
    model, cfg, sidecar = load_encoder(new)
    same = ("model_id", "model_kwargs", "inputs", "embed_dim", "mean", "std")
    if differ := [k for k in same if getattr(c_old, k) != getattr(cfg, k)]:
        raise CheckpointError(f"{old} and {new} are different encoders ({', '.join(differ)})")
    a, b = m_old.state_dict(), model.state_dict()
    # integer buffers (BatchNorm's batch counters) are counts, not weights: the new one's
    mixed = {
        k: (1 - alpha) * a[k] + alpha * v if v.is_floating_point() else v for k, v in b.items()
    }
    model.load_state_dict(mixed)
    extra = {k: v for k, v in sidecar.items() if k not in ("format", "sha256", "encoder")}
    extra["interpolated"] = {
        "alpha": alpha,
        "old": {"file": str(old), "sha256": s_old.get("sha256")},
        "new": {"file": str(new), "sha256": sidecar.get("sha256")},
    }
    save_checkpoint(out, model, cfg, extra=extra)
    logger.info("wrote %s = %.2f x %s + %.2f x %s", out, 1 - alpha, old, alpha, new)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = dataclass_parser(MixConfig, __doc__)
    cfg = config_from_args(MixConfig, parser.parse_args(argv))
    try:
        print(interpolate(cfg.old, cfg.new, cfg.alpha, cfg.out))
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {user_message(err)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
