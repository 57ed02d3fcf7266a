"""Student registry, FasterViT any-res geometry, carrier-token fix and the deploy switch."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from torch import nn

from train.models import UnknownModelError, create_model, list_models
from train.models import _fastervit as fv
from train.models.students import InputShapeError, InvalidStudentConfigError

NC = "NVIDIA Source Code License-NC (non-commercial)"
# Licences as read from fastervit's LICENSE and timm's pretrained cfgs (`license` field).
LICENSES = {
    "fastervit_0": NC,
    "fastervit_edge": NC,
    "mobilenetv4_conv_small": "Apache-2.0",
    "efficientvit_b0": "Apache-2.0",
    "resnet18": "Apache-2.0",
}
# 64x128 is small, yet non-square at FasterViT's attention stages (windows 1x2 / 1x3).
TINY = (64, 128)


def test_registry_lists_the_students() -> None:
    assert set(list_models("student")) == set(LICENSES)
    with pytest.raises(UnknownModelError, match="fastervit_edge"):
        create_model("student", "fastervit_egde", embed_dim=8, input_size=TINY)


@pytest.mark.parametrize("name", sorted(LICENSES))
def test_student_projects_pooled_features_to_unit_teacher_vectors(name: str) -> None:
    torch.manual_seed(0)
    student = create_model("student", name, embed_dim=24, input_size=TINY).eval()
    x = torch.randn(2, 3, *TINY)
    with torch.no_grad():
        z = student(x)
        pooled = student.backbone(x)
    assert z.shape == (2, 24)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    # The head reads the pooled features directly: one Linear(pooled width -> 24).
    assert pooled.ndim == 2
    assert (student.proj.in_features, student.proj.out_features) == (pooled.shape[1], 24)
    assert student.embed_dim == 24 and student.input_size == TINY
    assert student.license == LICENSES[name]
    # model_kwargs rebuild the same architecture and survive JSON (checkpoint sidecars).
    kwargs = json.loads(json.dumps(student.model_kwargs))
    again = create_model("student", name, **kwargs)
    shapes = {k: v.shape for k, v in student.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}


def test_fastervit_rejects_other_shapes_and_timm_accepts_them() -> None:
    student = create_model("student", "fastervit_edge", embed_dim=8, input_size=TINY)
    with pytest.raises(InputShapeError, match=r"built for 64x128.*got 64x256"):
        student(torch.zeros(1, 3, 64, 256))
    with pytest.raises(InputShapeError, match=r"\(B, 3, H, W\)"):
        student(torch.zeros(3, *TINY))
    cnn = create_model("student", "resnet18", embed_dim=8, input_size=TINY).eval()
    assert cnn(torch.zeros(1, 3, 96, 96)).shape == (1, 8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"embed_dim": 0, "input_size": TINY},
        {"embed_dim": 8, "input_size": (16, 64)},
        {"embed_dim": 8, "input_size": "64x256"},
        {"embed_dim": 8, "input_size": (64.5, 128)},
    ],
)
def test_bad_factory_arguments_are_explained(kwargs: dict) -> None:
    with pytest.raises(InvalidStudentConfigError, match="fastervit_edge: "):
        create_model("student", "fastervit_edge", **kwargs)


def test_deploy_keeps_outputs_and_removes_position_mlps() -> None:
    torch.manual_seed(0)
    student = create_model("student", "fastervit_edge", embed_dim=16, input_size=TINY).eval()
    x = torch.randn(2, 3, *TINY)
    mlp_params = sum(p.numel() for n, p in student.named_parameters() if ".cpb_mlp." in f".{n}")
    assert mlp_params > 0
    before_params = sum(p.numel() for p in student.parameters())
    with torch.no_grad():
        before = student(x)
        student.deploy()
        after = student(x)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert student.deployed and not student.training
    assert not [n for n, _ in student.named_modules() if n.endswith("cpb_mlp")]
    assert sum(p.numel() for p in student.parameters()) == before_params - mlp_params
    # The exported graph reads the cached tables: no MLP weight or op is left in it.
    program = torch.export.export(student, (x,))
    assert not [k for k in program.state_dict if "cpb_mlp" in k]
    assert not [n for n in program.graph.nodes if "cpb_mlp" in str(n.meta.get("nn_module_stack"))]
    torch.testing.assert_close(program.module()(x), before, rtol=0, atol=1e-5)


def test_trained_student_still_learns_position_mlps_and_deep_copies() -> None:
    student = create_model("student", "fastervit_edge", embed_dim=8, input_size=TINY).train()
    student(torch.randn(2, 3, *TINY)).sum().backward()
    mlps = [p for n, p in student.named_parameters() if ".cpb_mlp." in n]
    assert mlps and all(p.grad is not None for p in mlps)
    twin = copy.deepcopy(student)  # upstream's cached graph made this raise (EMA copies)
    torch.testing.assert_close(twin.eval()(torch.ones(1, 3, *TINY)),
                               student.eval()(torch.ones(1, 3, *TINY)))  # fmt: skip


def test_geometry_of_a_cvusa_panorama_by_hand() -> None:
    # 140x768: stride 16 -> ceil(8.75)=9 x 48, padded to windows of 7 -> 14x49;
    # stride 32 -> ceil(4.375)=5 x 24 -> 7x28.
    s3, s4 = fv.attention_geometry(fv.FASTERVIT_0, (140, 768))
    assert (s3.size, s3.padded, s3.grid) == ((9, 48), (14, 49), (2, 7))
    assert (s4.size, s4.padded) == ((5, 24), (7, 28))
    assert s3.overhead == pytest.approx(14 * 49 / (9 * 48) - 1)
    assert s4.overhead == pytest.approx(7 * 28 / (5 * 24) - 1)


def test_geometry_matches_the_feature_maps_the_model_sees() -> None:
    size = (72, 136)  # odd stage sizes: ceil(4.5)=5, ceil(8.5)=9, ceil(2.25)=3, ceil(4.25)=5
    backbone = fv.build_fastervit(fv.FASTERVIT_EDGE, size).eval()
    seen = []
    for level in backbone.levels[2:]:
        level.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        backbone(torch.zeros(1, 3, *size))
    assert seen == [(5, 9), (3, 5)]
    assert [g.size for g in fv.attention_geometry(fv.FASTERVIT_EDGE, size)] == seen


def test_build_runs_where_upstream_resolution_argument_does_not() -> None:
    # 72 px: the real stage-3 map is ceil(72/16) = 5 rows (padded to 8 for windows of 4),
    # upstream sizes it int(72/16) = 4 (padded to 4), so its carrier tokens do not fit.
    arch, size = fv.FASTERVIT_EDGE, (72, 128)
    upstream = fv._upstream.FasterViT(
        dim=arch.dim, in_dim=arch.in_dim, depths=list(arch.depths),
        num_heads=list(arch.num_heads), window_size=list(arch.window_size),
        ct_size=arch.ct_size, mlp_ratio=arch.mlp_ratio, resolution=list(size),
        hat=list(arch.hat), num_classes=0,
    )  # fmt: skip
    with pytest.raises(RuntimeError):
        upstream(torch.zeros(1, 3, *size))
    ours = fv.build_fastervit(arch, size).eval()
    assert ours(torch.zeros(1, 3, *size)).shape == (1, arch.num_features)


def test_nan_prone_geometry_is_refused() -> None:
    one_carrier = dataclasses.replace(fv.FASTERVIT_EDGE, ct_size=1)
    # 64x128 -> stage 3 is 4x8 in 1x2 windows of 4 -> 2 carrier tokens -> a 1x1 table.
    with pytest.raises(fv.UnsupportedInputSizeError, match="2 carrier tokens"):
        fv.build_fastervit(one_carrier, TINY)


def test_paper_arch_is_upstream_fastervit_0() -> None:
    ours = fv.build_fastervit(fv.FASTERVIT_0, (224, 224), num_classes=1000)
    theirs = fv._upstream.faster_vit_0_any_res(pretrained=False, resolution=[224, 224])
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


def _raster_windows(rows: int, cols: int, ct: int) -> list[set[int]]:
    """Raster indices of the ct x ct carrier tokens belonging to each window, row-major."""
    return [
        {(ct * i + a) * cols + ct * j + b for a in range(ct) for b in range(ct)}
        for i in range(rows // ct)
        for j in range(cols // ct)
    ]


@pytest.mark.parametrize("rows, cols", [(4, 4), (2, 8), (4, 14)])
def test_fixed_ct_window_gives_each_window_its_own_carriers(rows: int, cols: int) -> None:
    tokens = torch.arange(rows * cols, dtype=torch.float32).view(1, rows * cols, 1)
    windows = fv._ct_window_rows_first(tokens, rows, cols, 2).reshape(-1, 4)
    assert [set(w.tolist()) for w in windows] == _raster_windows(rows, cols, 2)


def test_upstream_ct_window_scrambles_non_square_grids() -> None:
    # The finding the fix is for; if this starts failing, upstream fixed it.
    rows, cols = 2, 8
    tokens = torch.arange(rows * cols, dtype=torch.float32).view(1, rows * cols, 1)
    windows = fv._upstream.ct_window(tokens, rows, cols, 2).reshape(-1, 4)
    assert [set(w.tolist()) for w in windows] != _raster_windows(rows, cols, 2)


@pytest.mark.parametrize("size, same", [((128, 128), True), ((64, 256), False)])
def test_carrier_fix_changes_only_non_square_grids(size: tuple[int, int], same: bool) -> None:
    torch.manual_seed(0)
    fixed = fv.build_fastervit(fv.FASTERVIT_EDGE, size).eval()
    plain = fv.build_fastervit(fv.FASTERVIT_EDGE, size, carrier_fix=False).eval()
    plain.load_state_dict(fixed.state_dict())
    hats = [m for m in fixed.modules() if isinstance(m, fv._upstream.HAT)]
    assert hats and all(type(m) is fv.RowMajorCarrierHAT for m in hats)
    assert not any(type(m) is fv.RowMajorCarrierHAT for m in plain.modules())
    # One HAT block fed distinct carrier tokens (at init, pooled carriers are near-equal, so
    # whole-model outputs hardly show which window got which carrier).
    stage = fv.attention_geometry(fv.FASTERVIT_EDGE, size)[0]  # 8x8 -> 2x2, 4x16 -> 1x4
    windows, ct = stage.grid[0] * stage.grid[1], fv.FASTERVIT_EDGE.ct_size
    dim = fv.FASTERVIT_EDGE.dim * 4
    x = torch.randn(2 * windows, stage.window**2, dim)
    carriers = torch.randn(2, ct * ct * windows, dim)
    with torch.no_grad():
        out_fixed, _ = fixed.levels[2].blocks[0](x, carriers)
        out_plain, _ = plain.levels[2].blocks[0](x, carriers)
    assert torch.allclose(out_fixed, out_plain, atol=1e-6) is same


def test_paper_head_adds_the_imagenet_bottleneck() -> None:
    d = 32
    plain = create_model("student", "fastervit_edge", embed_dim=d, input_size=TINY)
    paper = create_model("student", "fastervit_edge", embed_dim=d, input_size=TINY, paper_head=True)
    pooled = fv.FASTERVIT_EDGE.num_features  # 256
    extra = (pooled * 1000 + 1000) + (1000 * d + d) - (pooled * d + d)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(paper) - count(plain) == extra
    assert isinstance(paper.backbone.head, nn.Linear) and paper.proj.in_features == 1000


@pytest.mark.slow
@pytest.mark.parametrize("size", [(140, 768), (384, 384)])
def test_paper_student_at_paper_shapes(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    student = create_model("student", "fastervit_0", embed_dim=1024, input_size=size).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        z = student(x)
        assert z.shape == (2, 1024) and torch.isfinite(z).all()
        torch.testing.assert_close(student.deploy()(x), z, rtol=0, atol=1e-6)
