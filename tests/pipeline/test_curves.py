"""train.curves: runs continued from one another share one epoch axis."""

from __future__ import annotations

import json

import pytest

from train.curves import chain_records, main


def _run(path, records):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_chained_runs_continue_the_epoch_count_and_plot(tmp_path):
    a = _run(tmp_path / "a", [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.0, "recall@1": 10}])
    b = _run(tmp_path / "b", [{"epoch": 1, "loss": 1.5}, {"epoch": 3, "loss": 1.0, "recall@1": 30}])
    recs = chain_records([a, b])
    assert [r["epoch"] for r in recs] == [1, 2, 3, 5]  # b's epochs follow a's last (2)
    assert [r["loss"] for r in recs] == [3.0, 2.0, 1.5, 1.0]
    assert [r["run"] for r in recs] == [str(a), str(a), str(b), str(b)]
    s = _run(tmp_path / "s", [{"epoch": 4, "loss": 0.3, "recall@1": 25, "hit_rate": 27}])
    out = tmp_path / "docs" / "c.png"
    assert main(["--chain", f"teacher={a},{b}", "--chain", f"students={s}", "--out", str(out),
                 "--target", "60", "--point", "other index=5,33"]) == 0  # fmt: skip
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_without_a_log_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["--chain", f"t={tmp_path / 'empty'}", "--out", str(tmp_path / "x.png")])
    assert "has no metrics.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--chain", "no-equals-sign", "--out", str(tmp_path / "x.png")])
    assert "NAME=RUN" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--chain", f"t={tmp_path}", "--point", "x=1", "--out", str(tmp_path / "x.png")])
    assert "LABEL=EPOCH,R1" in capsys.readouterr().err
