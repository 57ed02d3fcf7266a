"""What a distillation step reads: student inputs of one geometric variant and the teacher's
targets for the same variant (from the cache, or the teacher's own inputs when online).

Usage::

    data = DistillPairs(student_pairs, ("ground",), 8, None, cache, None)
    item = data[17]   # {"ground": tensor, "target_ground": tensor}
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from train.datasets import PairDataset
from train.datasets.perturb import MarginalPerturbation
from train.method.teacher_cache import TeacherCache

__all__ = ["DistillPairs"]


class DistillPairs(Dataset):
    """Student inputs (one geometric variant + optional marginal perturbation) and targets."""

    def __init__(
        self,
        student: PairDataset,
        views,
        variants: int,
        perturb: MarginalPerturbation | None,
        cache: TeacherCache | None,
        teacher_pairs: PairDataset | None,
    ) -> None:
        self.student, self.views, self.variants = student, views, variants
        self.perturb, self.cache, self.teacher_pairs = perturb, cache, teacher_pairs

    def __len__(self) -> int:
        return len(self.student)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        v = int(rng.integers(0, self.variants))
        g, s = self.student.variant_pair(i, v)
        images = {"ground": g, "satellite": s}
        out = {}
        for view in self.views:
            img = images[view]
            if self.perturb is not None:
                img = getattr(self.perturb, view)(np.ascontiguousarray(img), rng)
            out[view] = self.student.tensor(view, img)
            if self.cache is not None:
                out[f"target_{view}"] = torch.from_numpy(self.cache.lookup(view, v, i))
        if self.teacher_pairs is not None:  # online teacher: its inputs of the same variant
            tg, ts = self.teacher_pairs.variant_pair(i, v)
            for view, img in (("ground", tg), ("satellite", ts)):
                if view in self.views:
                    out[f"teacher_{view}"] = self.teacher_pairs.tensor(view, img)
        return out
