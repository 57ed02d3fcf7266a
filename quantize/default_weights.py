"""The trained ``edge-s`` students committed in the repository (the exporters' defaults).

``weights/edge-s/student_{view}.pt`` (fp16 weights + ``.json`` sidecar) are trained by the
README recipe on the procedural world; the drone student and the satellite student distilled
from the same drone teacher live in ``weights/edge-s-drone/``. ``python -m export.<format>
--view ground`` and ``python -m quantize.qat`` use them when no ``--checkpoint`` /
``--student`` is given, so a fresh clone exports without training.

Lives in ``quantize/``, not ``tools/``: ``quantize.qat`` and the exporters (``export/``) both
import it, and the layers go train -> quantize -> export -> tools (tests/test_layers.py), so
the lowest layer both may import is ``quantize``.

Usage::

    from quantize.default_weights import default_student
    path = default_student("ground")     # Path, or MissingDefaultWeightsError saying why
"""

from __future__ import annotations

from pathlib import Path

from d4g_edge.config import VIEWS as STUDENT_VIEWS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "weights" / "edge-s"
DRONE_WEIGHTS_DIR = REPO_ROOT / "weights" / "edge-s-drone"


class MissingDefaultWeightsError(FileNotFoundError):
    """The committed default student is not in this checkout."""


def default_student(view: str, directory: Path | None = None) -> Path:
    """Path of the committed ``edge-s`` student of ``view`` (the drone one from its own
    folder: ``default_student("satellite", DRONE_WEIGHTS_DIR)`` is its satellite partner)."""
    if view not in STUDENT_VIEWS:
        raise ValueError(f"no default student for view {view!r}; views: {STUDENT_VIEWS}")
    if directory is None:
        directory = DRONE_WEIGHTS_DIR if view == "drone" else DEFAULT_WEIGHTS_DIR
    path = Path(directory) / f"student_{view}.pt"
    if not path.is_file() or not path.with_name(path.name + ".json").is_file():
        raise MissingDefaultWeightsError(
            f"the default {view} student {path} (and its .json sidecar) is missing from this "
            "checkout; pass --checkpoint/--student PATH, or restore weights/ from git"
        )
    return path
