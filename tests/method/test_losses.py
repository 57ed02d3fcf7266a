"""InfoNCE and cosine distillation losses against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from train.method.losses import InfoNCE, cosine_distillation_loss, dual_cosine_loss


def _ce(logits: list[float], target: int, smoothing: float = 0.0) -> float:
    """Cross-entropy of one row with label smoothing, written out from the definition."""
    log_z = math.log(sum(math.exp(v) for v in logits))
    k = len(logits)
    total = 0.0
    for j, v in enumerate(logits):
        weight = (1 - smoothing) * (j == target) + smoothing / k
        total -= weight * (v - log_z)
    return total


def test_infonce_identity_2x2_by_hand() -> None:
    eye = torch.eye(2)
    loss = InfoNCE(label_smoothing=0.0)(eye, eye, torch.tensor(math.log(2.0)))
    # logits = 2 * I: each row is [2, 0] with the target first -> log(1 + e^-2), both ways.
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_infonce_asymmetric_2x2_by_hand() -> None:
    g = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = InfoNCE(label_smoothing=0.0)(g, s, torch.tensor(0.0))  # scale e^0 = 1
    g2s = (_ce([1.0, 0.0], 0) + _ce([0.6, 0.8], 1)) / 2
    s2g = (_ce([1.0, 0.6], 0) + _ce([0.0, 0.8], 1)) / 2  # columns of g @ s.T
    assert loss.item() == pytest.approx((g2s + s2g) / 2, rel=1e-6)


def test_label_smoothing_matches_smoothed_targets() -> None:
    eye = torch.eye(2)
    loss = InfoNCE(label_smoothing=0.1)(eye, eye, torch.tensor(math.log(2.0)))
    # target distribution (0.95, 0.05) against softmax([2, 0])
    p = math.exp(2) / (math.exp(2) + 1)
    expected = -0.95 * math.log(p) - 0.05 * math.log(1 - p)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = InfoNCE(label_smoothing=0.0)(eye, eye, torch.tensor(math.log(2.0)))
    assert loss.item() > plain.item()  # smoothing penalises confident correct logits


def test_infonce_symmetric_and_scale_invariant_inputs() -> None:
    gen = torch.Generator().manual_seed(0)
    g, s = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    fn = InfoNCE()
    scale = torch.tensor(2.5)
    assert fn(g, s, scale).item() == pytest.approx(fn(s, g, scale).item(), rel=1e-6)
    # inputs are L2-normalised inside, so their norm does not matter
    assert fn(3 * g, 0.5 * s, scale).item() == pytest.approx(fn(g, s, scale).item(), rel=1e-6)


def test_infonce_clamps_scale_and_trains_logit_scale() -> None:
    eye = torch.eye(3)
    fn = InfoNCE(label_smoothing=0.0, max_scale=100.0)
    high = fn(eye, eye, torch.tensor(math.log(1000.0)))
    at_cap = fn(eye, eye, torch.tensor(math.log(100.0)))
    assert high.item() == pytest.approx(at_cap.item(), rel=1e-6)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    fn(eye, eye, log_scale).backward()
    assert log_scale.grad is not None and log_scale.grad.item() < 0  # sharper helps matched pairs


def test_infonce_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        InfoNCE()(torch.zeros(4, 8), torch.zeros(3, 8), torch.tensor(0.0))


@pytest.mark.parametrize(
    ("student", "teacher", "expected"),
    [
        ([[1.0, 0.0]], [[0.0, 3.0]], 1.0),  # orthogonal
        ([[2.0, 2.0]], [[1.0, 1.0]], 0.0),  # same direction, different norm
        ([[1.0, 0.0]], [[-4.0, 0.0]], 2.0),  # opposite
        ([[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], 0.5),  # mean of 1 and 0
    ],
)
def test_cosine_distillation_loss_by_hand(student, teacher, expected) -> None:
    loss = cosine_distillation_loss(torch.tensor(student), torch.tensor(teacher))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_cosine_loss_detaches_teacher_and_dual_sums_views() -> None:
    student = torch.tensor([[1.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 1.0]], requires_grad=True)
    cosine_distillation_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None
    orth, same = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert dual_cosine_loss(orth, same, same, same).item() == pytest.approx(1.0, abs=1e-6)
    assert dual_cosine_loss(orth, -orth, orth, same).item() == pytest.approx(3.0, abs=1e-6)


def _gather_worker(rank: int, world: int, out_dir: str) -> None:
    import torch.distributed as dist

    # file rendezvous: no TCP port that another process on the machine could take meanwhile
    dist.init_process_group(
        "gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank, world_size=world
    )
    gen = torch.Generator().manual_seed(1)
    g_all, s_all = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen)
    g = g_all[rank * 2 : rank * 2 + 2].clone().requires_grad_(True)
    s = s_all[rank * 2 : rank * 2 + 2].clone().requires_grad_(True)
    loss = InfoNCE(gather=True)(g, s, torch.tensor(2.0))
    loss.backward()
    torch.save({"loss": loss.detach(), "g_grad": g.grad}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_gather_sees_global_batch(tmp_path) -> None:
    torch.multiprocessing.spawn(_gather_worker, args=(2, str(tmp_path)), nprocs=2)
    gen = torch.Generator().manual_seed(1)
    g_all = torch.randn(4, 6, generator=gen).requires_grad_(True)
    s_all = torch.randn(4, 6, generator=gen)
    full = InfoNCE()(g_all, s_all, torch.tensor(2.0))
    full.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["loss"].item() == pytest.approx(full.item(), rel=1e-5)
        # each rank's rows get world_size x the global gradient; DDP's averaging divides it out
        expected = 2 * g_all.grad[rank * 2 : rank * 2 + 2]
        torch.testing.assert_close(got["g_grad"], expected, rtol=1e-4, atol=1e-6)
