"""Issue 9, "for every python -m train.* command": baseline and flops user errors exit 2."""

from __future__ import annotations

import pytest

from train.baseline import main as baseline_main
from train.flops import main as flops_main


def _exit(main, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code, capsys.readouterr().err


def test_baseline_json_directory_fails_before_the_work(base_datasets, tmp_path, capsys):
    target = tmp_path / "out"
    target.mkdir()
    argv = ["--dataset", "cvusa", "--data", str(base_datasets["cvusa"]), "--json", str(target)]
    code, err = _exit(baseline_main, argv, capsys)
    assert code == 2 and f"--json {target} is a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_flops_unknown_teacher_is_a_user_error(capsys):
    code, err = _exit(flops_main, ["--preset", "edge-s", "--edge-teacher", "resnet10x"], capsys)
    assert code == 2 and "error: unknown teacher model 'resnet10x'" in err
