"""The run-folder guard (train.loop.run_dir) and the flag checks (train.loop.arg_checks)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from train.loop.arg_checks import FlagError, check_hparams, check_output_file, user_message
from train.loop.run_dir import RunDirError, check_run_dir, claim_run_dir
from train.presets import get_preset


@dataclass(frozen=True)
class Cfg:
    model: str | None = None
    preset: str = "edge-s"


def test_empty_missing_cache_only_and_temp_only_folders_are_fresh(tmp_path):
    check_run_dir(tmp_path / "missing", Cfg(), resume=False, overwrite=False)
    (tmp_path / "teacher_cache").mkdir()  # keyed and self-checking: reusable by a new run
    (tmp_path / ".last.pt.abc.tmp").write_bytes(b"x")
    check_run_dir(tmp_path, Cfg(), resume=False, overwrite=False)


def test_a_folder_with_files_needs_resume_or_overwrite(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match=r"metrics\.jsonl"):
        check_run_dir(tmp_path, Cfg(), resume=False, overwrite=False)
    check_run_dir(tmp_path, Cfg(), resume=False, overwrite=True)
    check_run_dir(tmp_path, Cfg(), resume=True, overwrite=False)


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(RunDirError, match="not a folder"):
        check_run_dir(tmp_path / "run", Cfg(), resume=False, overwrite=False)


def test_claim_with_overwrite_removes_only_run_files(tmp_path):
    owned = [
        "config.json",
        "metrics.jsonl",
        "curves.png",
        "last.pt",
        "teacher.pt",
        "teacher.pt.json",
        "student_ground.pt",
        "student_ground.pt.json",
    ]
    for name in [*owned, "notes.txt", ".curves.tmp.png", ".teacher.pt.q1.tmp"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "teacher_cache").mkdir()
    claim_run_dir(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "teacher_cache"]


def test_claim_without_overwrite_removes_only_stale_temp_files(tmp_path):
    for name in ["last.pt", ".last.pt.q1.tmp", ".metrics.jsonl.tmp"]:
        (tmp_path / name).write_text("x")
    claim_run_dir(tmp_path, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_hparams_ranges():
    hp = get_preset("edge-s").teacher_hp
    check_hparams(hp)
    for field, value in [("epochs", 0), ("eval_every", 0), ("workers", -1), ("grad_clip", 0.0)]:
        with pytest.raises(FlagError, match=f"--{field.replace('_', '-')} {value}"):
            check_hparams(dataclasses.replace(hp, **{field: value}))
    with pytest.raises(FlagError, match=r"\[0, 1\)"):
        check_hparams(dataclasses.replace(hp, label_smoothing=1.0))
    check_hparams(get_preset("edge-s").distill_hp)  # no label_smoothing: teacher-only


def test_output_file_checks(tmp_path):
    check_output_file(tmp_path / "new" / "m.json", "--json")
    with pytest.raises(FlagError, match="is a directory"):
        check_output_file(tmp_path, "--json")
    (tmp_path / "f").write_text("")
    with pytest.raises(FlagError, match="is a file, not a folder"):
        check_output_file(tmp_path / "f" / "m.json", "--json")


def test_user_message_strips_a_dataloader_worker_traceback():
    text = (
        "Caught FileNotFoundError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x.py", line 1, in f\nFileNotFoundError: [Errno 2] gone: '
        "'/d/a.jpg'\n"
    )
    assert user_message(RuntimeError(text)) == "[Errno 2] gone: '/d/a.jpg'"
    assert user_message(ValueError("plain")) == "plain"
