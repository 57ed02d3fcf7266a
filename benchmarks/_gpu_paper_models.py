"""The model benchmark of :mod:`benchmarks.gpu_paper` (its ``--models-json`` mode, run as a
subprocess of its own so that the GPU is free again when it exits): the `paper` preset's
teacher and students timed with random inputs, training steps as ``train.loop.engine`` runs
them (autocast, backward, clipping, AdamW) and inference images/s per batch size in bf16
autocast and in fp32."""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

PAPER_SAT = 384  # the preset's satellite side and CVUSA panorama (train.presets "paper")
PAPER_GROUND = (140, 768)
EMBED_DIM = 1024  # ConvNeXt-B's pooled width: the students' output


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def _median_s(fn, iters: int, warmup: int, cuda: bool) -> float:
    """Median seconds of one ``fn()`` after ``warmup`` calls (algorithm choice, allocator)."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _timer(args: argparse.Namespace, cuda: bool):
    """``timed(row, fn, images)``: ``row`` with ms, images/s (or ``oom``) and the peak GPU
    memory of ``fn``, printed as a JSON line."""
    import torch

    def timed(row: dict, fn, images: int) -> dict:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            s = _median_s(fn, args.bench_iters, args.bench_warmup, cuda)
            row |= {"ms": round(s * 1e3, 2), "images_per_s": round(images / s, 2)}
        except torch.OutOfMemoryError:
            row["oom"] = True
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
        print(json.dumps(row), flush=True)
        return row

    return timed


def _autocast(dev, on: bool):
    import torch

    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on)


def _bench_teacher_step(args, dev, timed, teacher, bf16: bool) -> list[dict]:
    """The teacher's training step (batch = pairs, two images each); the half batch only as
    the fallback when the full one runs out of memory."""
    import torch

    from train.method.losses import InfoNCE
    from train.models.dual_view import DualView

    loss_fn = InfoNCE(label_smoothing=0.1)
    rows = []
    for b in dict.fromkeys([args.bench_train_batch, args.bench_train_batch // 2]):
        net = DualView(teacher).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        xg = torch.randn(b, 3, *PAPER_GROUND, device=dev)
        xs = torch.randn(b, 3, PAPER_SAT, PAPER_SAT, device=dev)

        def teacher_step(net=net, opt=opt, xg=xg, xs=xs) -> None:
            with _autocast(dev, bf16):
                g, s, scale = net(xg, xs)
                loss = loss_fn(g.float(), s.float(), scale.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()

        row = timed(
            {"model": "teacher convnext_base (both views)", "batch_pairs": b}, teacher_step, 2 * b
        )
        rows.append(row)
        del opt, xg, xs
        if not row.get("oom"):
            break
    return rows


def _bench_student_step(args, dev, timed, g_student, s_student, bf16: bool) -> dict:
    """Both students' distillation step on one batch of pairs."""
    import torch

    from train.method.losses import cosine_distillation_loss

    students = torch.nn.ModuleDict({"ground": g_student, "satellite": s_student}).train()
    opt = torch.optim.AdamW(students.parameters(), lr=1e-5)
    b = args.bench_train_batch
    xg = torch.randn(b, 3, *PAPER_GROUND, device=dev)
    xs = torch.randn(b, 3, PAPER_SAT, PAPER_SAT, device=dev)
    tg, ts = (
        torch.nn.functional.normalize(torch.randn(b, EMBED_DIM, device=dev), dim=-1)
        for _ in range(2)
    )

    def student_step(opt=opt, xg=xg, xs=xs) -> None:
        with _autocast(dev, bf16):
            loss = cosine_distillation_loss(g_student(xg).float(), tg) + cosine_distillation_loss(
                s_student(xs).float(), ts
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(students.parameters(), 5.0)
        opt.step()

    return timed(
        {"model": "students fastervit_0 x2 (both views)", "batch_pairs": b}, student_step, 2 * b
    )


def _bench_inference(args, dev, timed, encoders, out: dict, path: Path) -> None:
    """Images/s of each encoder per precision and batch; the JSON rewritten per encoder."""
    import torch

    for name, model, size in encoders:
        model.eval()
        for prec in args.bench_precisions:
            for b in args.bench_batches:
                x = torch.randn(b, 3, *size, device=dev)

                def infer(model=model, x=x, on=prec == "bf16") -> None:
                    with torch.no_grad(), _autocast(dev, on):
                        model(x)

                row = {
                    "model": name,
                    "input": f"{size[0]}x{size[1]}",
                    "precision": prec,
                    "batch": b,
                }
                out["inference"].append(timed(row, infer, b))
                del x
        write_json(path, out)


def bench_models(args: argparse.Namespace) -> None:
    import torch

    from train.models import create_model

    dev = torch.device(args.device if args.device != "auto" else "cuda")
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    out: dict = {
        "device": str(dev),
        "iters": args.bench_iters,
        "warmup": args.bench_warmup,
        "train": [],
        "inference": [],
    }
    path = Path(args.models_json)
    timed = _timer(args, cuda)
    bf16 = cuda  # the loop's --amp auto: bf16 on CUDA, fp32 on CPU
    teacher = create_model("teacher", "convnext_base").to(dev)
    g_student = create_model(
        "student", "fastervit_0", embed_dim=EMBED_DIM, input_size=PAPER_GROUND
    ).to(dev)
    s_student = create_model(
        "student", "fastervit_0", embed_dim=EMBED_DIM, input_size=(PAPER_SAT, PAPER_SAT)
    ).to(dev)
    out["train"] += _bench_teacher_step(args, dev, timed, teacher, bf16)
    out["train"].append(_bench_student_step(args, dev, timed, g_student, s_student, bf16))
    write_json(path, out)
    # Inference: the teacher as trained, the students deployed (position tables frozen, as
    # exported). fp32 means torch's defaults: TF32 convolutions, full-fp32 matmuls.
    encoders = [
        ("teacher convnext_base", teacher, (PAPER_SAT, PAPER_SAT)),
        ("teacher convnext_base", teacher, PAPER_GROUND),
        ("student_satellite fastervit_0", copy.deepcopy(s_student).deploy(), (PAPER_SAT,) * 2),
        ("student_ground fastervit_0", copy.deepcopy(g_student).deploy(), PAPER_GROUND),
    ]
    _bench_inference(args, dev, timed, encoders, out, path)
