"""Parameters and GMACs of the teacher and the students at the presets' real input shapes.

Convention: MACs (multiply-accumulates) of one image's forward pass, counted by
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; element-wise
ops, norms and softmax are not counted) and halved, since it counts a MAC as 2 FLOPs. The
"GFLOPs" of the CVGL literature (Sample4Geo, Distill4Geo; fvcore/thop counters) are these
GMACs: fvcore counts one "flop" per fused multiply-add. Students are measured in their
deployed form (:meth:`train.models.students.Student.deploy`), which is what a device runs;
``params`` is the trainable count as built, ``deploy_params`` the count after deployment.

The teacher is one weight-sharing backbone: its parameters are counted once, its MACs per view.
Distill4Geo's "13.5x fewer GFLOPs" matches ConvNeXt-B at 384x384 (45.1 GMACs) over
FasterViT-0 at 224x224 (3.36), i.e. a square student input; at the real 140x768 panorama
the ground student saves 3.0x (30.5 vs. 10.2 GMACs), see ``python -m train.flops``.

For FasterViT students the table also gives the zero-padding of the attention stages
(padded / real positions - 1): an any-res FasterViT pads each attention stage up to a
multiple of its window, and that compute is spent on padding.

Usage::

    python -m train.flops --preset all --json flops.json
    python -m train.flops --preset edge-s --edge-ground-size 64x256 --edge-teacher resnet18

    from train.flops import ModelRow, measure_rows
    row = ModelRow("edge-s", "student", "fastervit_edge", "ground", (64, 256),
                   {"embed_dim": 512, "input_size": (64, 256)})
    (cost,) = measure_rows([row])  # cost.params, cost.gmacs, cost.padding
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger, setup_logging
from train.loop.arg_checks import check_output_file
from train.models import create_model
from train.presets import PRESETS, get_preset

__all__ = [
    "CONVENTION",
    "Cost",
    "FlopsConfig",
    "ModelRow",
    "count_macs",
    "count_params",
    "format_table",
    "measure_rows",
    "preset_rows",
    "run",
]

CONVENTION = (
    "GMACs = FlopCounterMode FLOPs / 2 / 1e9 for one image (conv + matmul only); equal to the "
    "'GFLOPs' of fvcore/thop as reported in CVGL papers. Students measured deployed."
)
# Ground shapes the paper student is also measured at, beyond the presets' own.
PAPER_GROUND_SWEEP: tuple[tuple[int, int], ...] = ((224, 896), (112, 448), (224, 224), (128, 512))
# Permissively licensed students measured next to FasterViT at each preset's shapes.
ALTERNATIVE_STUDENTS = ("mobilenetv4_conv_small", "efficientvit_b0", "resnet18")


@dataclass(frozen=True)
class ModelRow:
    """One model at one input shape: what to build (registry kind/name/kwargs) and label."""

    preset: str
    kind: str  # "teacher" | "student"
    name: str
    view: str  # "satellite" | "ground" | "ground (VIGOR)" | ...
    input_size: tuple[int, int]
    # Factory kwargs (students need embed_dim and input_size); compared but not hashed.
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    note: str = ""


@dataclass(frozen=True)
class Cost:
    """A measured :class:`ModelRow`."""

    row: ModelRow
    params: int
    deploy_params: int
    macs: int
    padding: tuple[dict[str, Any], ...] = ()  # per attention stage, FasterViT only

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self.row)
        row["input_size"] = list(self.row.input_size)
        row["kwargs"] = dict(self.row.kwargs)
        return {
            **row,
            "params": self.params,
            "deploy_params": self.deploy_params,
            "macs": self.macs,
            "gmacs": round(self.gmacs, 4),
            "attention_padding": list(self.padding),
        }


def count_params(model: nn.Module) -> int:
    """Number of parameter elements; a tensor shared by several modules counts once."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example: Tensor) -> int:
    """Multiply-accumulates of ``model(example)`` in eval mode (FLOPs / 2, see module doc)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    # Every op FlopCounterMode counts (mm, addmm, bmm, conv, sdpa) is 2 FLOPs per MAC.
    return counter.get_total_flops() // 2


def _padding(model: nn.Module) -> tuple[dict[str, Any], ...]:
    stages = getattr(model, "attention_padding", lambda: [])()
    return tuple(
        {
            "stage": g.stage + 1,  # FasterViT paper numbers stages 1..4
            "size": list(g.size),
            "padded": list(g.padded),
            "window": g.window,
            "padded_over_real": round(g.padded[0] * g.padded[1] / (g.size[0] * g.size[1]), 4),
            "overhead": round(g.overhead, 4),
        }
        for g in stages
    )


def measure_rows(rows: Sequence[ModelRow], *, progress: bool = False) -> list[Cost]:
    """Build and measure every row; rows with the same model and kwargs share one build."""
    built: dict[tuple[str, str, str], tuple[nn.Module, int]] = {}
    costs = []
    for row in tqdm(rows, desc="measuring", unit="model", disable=not progress):
        key = (row.kind, row.name, json.dumps(dict(row.kwargs), sort_keys=True))
        if key not in built:
            model = create_model(row.kind, row.name, **row.kwargs)
            params = count_params(model)  # as trained, before deploy() drops the MLPs
            if hasattr(model, "deploy"):
                model.deploy()
            built[key] = model, params
        model, params = built[key]
        macs = count_macs(model, torch.zeros(1, 3, *row.input_size))
        costs.append(Cost(row, params, count_params(model), macs, _padding(model)))
        logger.debug("%s %s %s: %d params, %d MACs", row.kind, row.name, row.view, params, macs)
    return costs


def _student_rows(
    preset: str, names: Sequence[str], dim: int, shapes: Sequence[tuple[str, tuple[int, int]]]
) -> list[ModelRow]:
    return [
        ModelRow(preset, "student", n, view, size, {"embed_dim": dim, "input_size": size})
        for n in names
        for view, size in shapes
    ]


def preset_rows(
    preset: str,
    *,
    teacher_dim: int,
    sat_size: tuple[int, int] | None = None,
    ground_size: tuple[int, int] | None = None,
    teacher: str | None = None,
    student: str | None = None,
) -> list[ModelRow]:
    """Rows for one preset: teacher and students at its satellite and ground shapes.

    ``teacher_dim`` is the teacher's embedding size (the students' projection width); the
    other arguments override the preset's values. ``paper`` also sweeps the ground student
    over :data:`PAPER_GROUND_SWEEP` and the VIGOR panorama shape.
    """
    p = get_preset(preset)
    sat = sat_size or (p.sat_size, p.sat_size)
    ground = ground_size or p.ground_size
    teacher, student = teacher or p.teacher, student or p.student
    views = [("satellite", sat), ("ground", ground)]
    rows = [
        ModelRow(preset, "teacher", teacher, v, s, note="one shared backbone") for v, s in views
    ]
    if preset == "paper":
        rows.append(ModelRow(preset, "teacher", teacher, "ground (VIGOR)", p.vigor_ground_size))
    rows += _student_rows(preset, [student], teacher_dim, views)
    if preset == "paper":
        sweep = [("ground (VIGOR)", p.vigor_ground_size)]
        sweep += [("ground sweep", s) for s in PAPER_GROUND_SWEEP if s != ground]
        rows += _student_rows(preset, [student], teacher_dim, sweep)
        kwargs = {"embed_dim": teacher_dim, "input_size": ground, "paper_head": True}
        rows.append(ModelRow(preset, "student", student, "ground", ground, kwargs, "paper_head"))
    else:  # the paper student at the same small shapes, as the reference for the reduction
        rows += _student_rows(preset, [PRESETS["paper"].student], teacher_dim, views)
    rows += _student_rows(preset, ALTERNATIVE_STUDENTS, teacher_dim, views)
    return list(dict.fromkeys(rows))  # an overridden student may repeat a reference row


def _fmt_padding(padding: Sequence[Mapping[str, Any]]) -> str:
    return " ".join(f"s{p['stage']}:+{100 * p['overhead']:.0f}%" for p in padding) or "-"


def format_table(costs: Sequence[Cost]) -> str:
    """A fixed-width text table of measured rows."""
    head = ("preset", "kind", "model", "view", "input", "params M", "deploy M", "GMACs", "pad")
    lines = []
    for c in costs:
        r = c.row
        name = r.name + (f" [{r.note}]" if r.note and r.kind == "student" else "")
        lines.append(
            (
                r.preset,
                r.kind,
                name,
                r.view,
                f"{r.input_size[0]}x{r.input_size[1]}",
                f"{c.params / 1e6:.2f}",
                f"{c.deploy_params / 1e6:.2f}",
                f"{c.gmacs:.3f}",
                _fmt_padding(c.padding),
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = ("-" * w for w in widths)
    return "\n".join(fmt.format(*line).rstrip() for line in [head, rule, *lines])


def summarize(costs: Sequence[Cost]) -> list[dict[str, Any]]:
    """Per preset: its teacher vs. its (first-listed) student, both views and ground only."""
    out = []
    for preset in dict.fromkeys(c.row.preset for c in costs):
        mine = [c for c in costs if c.row.preset == preset and not c.row.kwargs.get("paper_head")]
        first = {
            k: next((c.row.name for c in mine if c.row.kind == k), None)
            for k in ("teacher", "student")
        }
        by_view = {
            (c.row.kind, c.row.view): c for c in reversed(mine) if c.row.name == first[c.row.kind]
        }
        try:
            t_sat, t_gnd = by_view["teacher", "satellite"], by_view["teacher", "ground"]
            s_sat, s_gnd = by_view["student", "satellite"], by_view["student", "ground"]
        except KeyError:
            continue  # a hand-made row list without both views
        out.append(
            {
                "preset": preset,
                "teacher": first["teacher"],
                "student": first["student"],
                # One shared teacher backbone vs. two separate students (or the ground one).
                "params_teacher_over_both_students": round(
                    t_sat.params / (s_sat.params + s_gnd.params), 2
                ),
                "params_teacher_over_ground_student": round(t_sat.params / s_gnd.params, 2),
                "gmacs_teacher_over_student_both_views": round(
                    (t_sat.macs + t_gnd.macs) / (s_sat.macs + s_gnd.macs), 2
                ),
                "gmacs_teacher_over_student_ground": round(t_gnd.macs / s_gnd.macs, 2),
            }
        )
    return out


@dataclass(frozen=True)
class FlopsConfig:
    """What ``python -m train.flops`` measures (edge-s shapes/models default to the preset)."""

    preset: str = field(
        default="all",
        metadata={"help": "preset to measure", "choices": ["all", *sorted(PRESETS)]},
    )
    json: Path | None = field(default=None, metadata={"help": "also write rows + summary here"})
    edge_sat_size: tuple[int, int] | None = field(
        default=None, metadata={"help": "edge-s satellite HxW; unset = the preset's 128x128"}
    )
    edge_ground_size: tuple[int, int] | None = field(
        default=None, metadata={"help": "edge-s panorama HxW; unset = the preset's 64x256"}
    )
    edge_teacher: str | None = field(
        default=None, metadata={"help": "edge-s teacher registry name; unset = the preset's"}
    )
    edge_student: str | None = field(
        default=None, metadata={"help": "edge-s student registry name; unset = the preset's"}
    )


def run(cfg: FlopsConfig) -> tuple[list[Cost], list[dict[str, Any]]]:
    """Measure the presets ``cfg`` selects; write ``cfg.json`` atomically if given."""
    presets = sorted(PRESETS) if cfg.preset == "all" else [get_preset(cfg.preset).name]
    rows: list[ModelRow] = []
    for name in presets:
        edge = name == "edge-s"
        teacher = (cfg.edge_teacher if edge else None) or get_preset(name).teacher
        # The students project onto the teacher's embedding, so its size sets theirs.
        teacher_dim = create_model("teacher", teacher).embed_dim
        overrides = {
            "sat_size": cfg.edge_sat_size,
            "ground_size": cfg.edge_ground_size,
            "teacher": teacher,
            "student": cfg.edge_student,
        }
        rows += preset_rows(name, teacher_dim=teacher_dim, **(overrides if edge else {}))
    costs = measure_rows(rows, progress=True)
    summary = summarize(costs)
    if cfg.json is not None:
        doc = {
            "convention": CONVENTION,
            "torch": torch.__version__,
            "rows": [c.to_dict() for c in costs],
            "summary": summary,
        }
        _write_json(cfg.json, doc)
        logger.info("wrote %s", cfg.json)
    return costs, summary


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(obj, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = dataclass_parser(FlopsConfig, description=__doc__)
    cfg = config_from_args(FlopsConfig, parser.parse_args(argv))
    logger.info("train.flops %s", cfg)
    try:
        check_output_file(cfg.json, "--json")
        costs, summary = run(cfg)
    except (ValueError, FileNotFoundError) as e:  # e.g. an unknown --edge-teacher
        parser.exit(2, f"error: {e}\n")
    # The table is this command's output, so it goes to stdout (logs go to stderr).
    sys.stdout.write(format_table(costs) + "\n\n" + CONVENTION + "\n")
    for s in summary:
        sys.stdout.write(json.dumps(s) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
