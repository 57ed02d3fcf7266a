"""d4g_edge.fileio: the project's one atomic writer (SDK and tooling both write through it)."""

from __future__ import annotations

import os
import stat

import pytest

from d4g_edge import fileio


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_takes_text_or_bytes_and_creates_the_folder(tmp_path):
    path = tmp_path / "new" / "deeper" / "log.jsonl"
    fileio.atomic_write(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    fileio.atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and _leftovers(path.parent) == []


def test_atomic_write_gives_the_permissions_a_plain_open_would(tmp_path):
    old = os.umask(0o022)
    try:
        path = fileio.atomic_write(tmp_path / "a.json", "{}")
        (tmp_path / "b.json").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    fileio.atomic_write_json(path, {"a": 1})
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        fileio.atomic_write_json(path, {"a": 2})
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("folder", [False, True])
def test_atomic_output_replaces_only_on_success(tmp_path, folder):
    path = tmp_path / ("model.mlpackage" if folder else "model.pte")

    def write(target, text):
        if folder:
            target.mkdir()
            (target / "weights.bin").write_text(text)
        else:
            target.write_text(text)

    def read():
        return (path / "weights.bin").read_text() if folder else path.read_text()

    with fileio.atomic_output(path) as tmp:
        assert tmp.suffix == path.suffix and tmp.parent == path.parent
        write(tmp, "old")
    with pytest.raises(RuntimeError), fileio.atomic_output(path) as tmp:
        write(tmp, "half")
        raise RuntimeError("the exporter failed")
    assert read() == "old" and _leftovers(tmp_path) == []
    with fileio.atomic_output(path) as tmp:
        write(tmp, "new")
    assert read() == "new" and _leftovers(tmp_path) == []
    with pytest.raises(OSError, match="wrote nothing"), fileio.atomic_output(path):
        pass
    assert read() == "new"
