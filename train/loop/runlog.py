"""A run folder's per-epoch log: ``metrics.jsonl`` (one JSON object a line) + ``curves.png``.

``curves.png`` is redrawn after every epoch from the log, so a killed or resumed run always
has a picture that matches its log.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from d4g_edge.fileio import atomic_write

LOG_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


class RunLog:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOG_FILE
        self.curves = Path(run_dir) / CURVES_FILE

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def _write(self, records: list[dict]) -> None:
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in records))

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs a resumed run is about to repeat."""
        self._write([r for r in self.records() if r.get("epoch", 0) <= epoch])

    def append(self, record: dict) -> None:
        self._write([*self.records(), record])
        self.plot()

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")  # headless; never opens a window
        import matplotlib.pyplot as plt

        recs = self.records()
        if not recs:
            return
        fig, (ax_loss, ax_r) = plt.subplots(1, 2, figsize=(10, 4))
        ep = [r["epoch"] for r in recs]
        ax_loss.plot(ep, [r["loss"] for r in recs], marker="o")
        ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
        for key in ("recall@1", "recall@5", "recall@10", "recall@1%", "hit_rate"):
            pts = [(r["epoch"], r[key]) for r in recs if key in r]
            if pts:
                ax_r.plot(*zip(*pts, strict=True), marker="o", label=key)
        ax_r.set(xlabel="epoch", ylabel="%", title="validation recall")
        if ax_r.lines:
            ax_r.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        atomic_write(self.curves, buffer.getvalue())
