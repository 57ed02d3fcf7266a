"""University-1652 loader on hand-built University-Release trees, including malformed ones."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from d4g_edge.log import logger
from tests.datasets.conftest import solid
from train.datasets import CrossViewSplit, DatasetFormatError, load, read_image

HEADER = "split,id,lat,lon,town,east_m,north_m\n"


def make_release(root: Path, drones_per_id: int = 3) -> Path:
    """train: locations 0002, 0007, 0010; test: queries 0001, 0005, galleries those plus the
    distractor 0009. ``drones_per_id`` frames per drone location, one tile per satellite
    location; pixel colour = (view code, id, 20 * frame or 250 for a tile)."""

    def drone(folder: str, loc: str, view: int) -> None:
        for k in range(drones_per_id):
            ext = ("jpeg", "JPG", "png")[k % 3]  # the release uses .jpeg; accept any case
            solid(root / folder / loc / f"image-{k + 1:02d}.{ext}", (view, int(loc), k * 20))

    def sat(folder: str, loc: str, view: int) -> None:
        solid(root / folder / loc / f"{loc}.jpg", (view, int(loc), 250), (8, 8))

    for loc in ("0010", "0002", "0007"):  # written out of order: the loader sorts
        drone("train/drone", loc, 10)
        sat("train/satellite", loc, 20)
        solid(root / "train/street" / loc / "x.jpg", (0, 0, 0))  # other views: ignored
    for loc in ("0005", "0001"):
        drone("test/query_drone", loc, 30)
        sat("test/query_satellite", loc, 40)
    for loc in ("0009", "0005", "0001"):  # 0009: distractor, no query shows it
        drone("test/gallery_drone", loc, 50)
        sat("test/gallery_satellite", loc, 60)
    return root


def test_train_drone_to_satellite(tmp_path):
    root = make_release(tmp_path / "University-Release")
    split = load("university1652", root, "train")  # mode "drone" is the default
    assert isinstance(split, CrossViewSplit) and split.query_view == "drone"
    assert split.dataset == "university1652" and split.split == "train"
    assert len(split) == 9 and split.num_references == 3
    assert split.reference_ids.tolist() == [2, 7, 10]
    assert split.reference_names == (
        "train/satellite/0002/0002.jpg",
        "train/satellite/0007/0007.jpg",
        "train/satellite/0010/0010.jpg",
    )
    assert split.query_ids.tolist() == [2, 2, 2, 7, 7, 7, 10, 10, 10]
    assert split.positive_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # ids first, then file names
    assert split.query_names[:3] == (
        "train/drone/0002/image-01.jpeg",
        "train/drone/0002/image-02.JPG",
        "train/drone/0002/image-03.png",
    )
    assert split.query_paths[0] == root / "train/drone/0002/image-01.jpeg"
    assert split.all_matched and split.has_reference.all()
    assert split.query_latlon is None and split.reference_latlon is None
    assert split.tile_stride is None and split.semi_positive_ids is None
    # the lossless PNG frame and the tile read back as the colours written for them
    assert read_image(split.query_paths[8])[0, 0].tolist() == [10, 10, 40]
    assert abs(int(read_image(split.reference_paths[1])[0, 0, 1]) - 7) <= 3  # JPEG


def test_test_drone_includes_distractor_tiles(tmp_path):
    root = make_release(tmp_path)
    split = load("university1652", root, "test", mode="drone")
    assert split.reference_ids.tolist() == [1, 5, 9]  # gallery_satellite with distractor 9
    assert split.reference_names[2] == "test/gallery_satellite/0009/0009.jpg"
    assert split.query_ids.tolist() == [1] * 3 + [5] * 3
    assert split.positive_index.tolist() == [0] * 3 + [1] * 3
    assert all(n.startswith("test/query_drone/") for n in split.query_names)
    assert split.all_matched


def test_test_satellite_mode_keeps_drone_distractors(tmp_path):
    root = make_release(tmp_path)
    split = load("university1652", root, "test", mode="satellite")
    assert split.query_view == "drone"  # same orientation: drone side is the query side
    assert split.reference_ids.tolist() == [1, 5]  # query_satellite: no distractor tile
    assert split.reference_names[0] == "test/query_satellite/0001/0001.jpg"
    assert split.query_ids.tolist() == [1] * 3 + [5] * 3 + [9] * 3
    assert all(n.startswith("test/gallery_drone/") for n in split.query_names)
    # distractor 0009's frames have no tile in the split
    assert split.positive_index.tolist() == [0] * 3 + [1] * 3 + [-1] * 3
    assert split.has_reference.tolist() == [True] * 6 + [False] * 3
    assert not split.all_matched


def test_satellite_mode_is_test_only_and_arguments_are_checked(tmp_path):
    root = make_release(tmp_path)
    with pytest.raises(ValueError, match="test split only"):
        load("university1652", root, "train", mode="satellite")
    with pytest.raises(ValueError, match="did you mean 'drone'"):
        load("university1652", root, "test", mode="drones")
    with pytest.raises(ValueError, match="valid: same, cross"):
        load("vigor", root, "test", mode="drone")  # University-1652's modes are not VIGOR's
    with pytest.raises(ValueError, match="cities select VIGOR"):
        load("university1652", root, "test", cities=("Chicago",))
    with pytest.raises(ValueError, match="CVACT only"):
        load("university1652", root, "test", on_missing="skip")
    with pytest.raises(ValueError, match="valid: train, test"):
        load("university1652", root, "val")


def test_world_locations_give_positions(tmp_path):
    root = make_release(tmp_path)
    rows = [("train", loc, 40 + loc / 100, -80 - loc / 100) for loc in (2, 7, 10)]
    rows += [("test", loc, 10 + loc / 100, 20.0) for loc in (1, 5, 9)]
    (root / "world_locations.csv").write_text(
        HEADER + "".join(f"{s},{i:04d},{a},{b},Town A,1.5,-2.0\n" for s, i, a, b in rows)
    )
    train = load("university1652", root, "train")
    np.testing.assert_allclose(
        train.reference_latlon, [[40.02, -80.02], [40.07, -80.07], [40.1, -80.1]]
    )
    np.testing.assert_allclose(train.query_latlon[3], [40.07, -80.07])  # first frame of 0007
    test = load("university1652", root, "test", mode="satellite")
    np.testing.assert_allclose(test.query_latlon[-1], [10.09, 20.0])  # distractor 0009
    np.testing.assert_allclose(test.reference_latlon[:, 0], [10.01, 10.05])
    assert test.neighbour_positions().shape == (2, 2)


@pytest.mark.parametrize(
    ("text", "match", "line"),
    [
        ("split,id,lat,lon\n", "expected the header", 1),
        ("", "expected the header", 1),
        (HEADER + "train,0002,40.0,-80.0,T,1,2\ntrain,0002,40.0,-80.0,T,1,2\n", "twice", 3),
        (HEADER + "train,0002,40.0,-80.0,T,1\n", "expected 7 fields, got 6", 2),
        (HEADER + "train,x2,40.0,-80.0,T,1,2\n", "id all digits", 2),
        (HEADER + "val,0002,40.0,-80.0,T,1,2\n", "train or test", 2),
        (HEADER + "train,0002,north,-80.0,T,1,2\n", "could not convert", 2),
        (HEADER + "train,0002,95.0,-80.0,T,1,2\n", "latitude/longitude", 2),
        (HEADER + "train,0002,40.0,-80.0,T,nan,2\n", "finite", 2),
        (HEADER + "train,0002,40.0,-80.0,T,1,2\n", "no train row for 2 satellite", None),
    ],
)
def test_malformed_world_locations(tmp_path, text, match, line):
    root = make_release(tmp_path)
    (root / "world_locations.csv").write_text(text)
    with pytest.raises(DatasetFormatError, match=match) as err:
        load("university1652", root, "train")
    assert err.value.path == root / "world_locations.csv" and err.value.line == line


def test_missing_split_folder(tmp_path):
    root = make_release(tmp_path)
    (root / "test/gallery_satellite").rename(root / "test/gallery_sat")
    with pytest.raises(DatasetFormatError, match=r"folder test/gallery_satellite/ not found"):
        load("university1652", root, "test")
    load("university1652", root, "test", mode="satellite")  # does not need that folder
    with pytest.raises(DatasetFormatError, match="University-Release") as err:
        load("university1652", tmp_path / "nowhere", "train")
    assert err.value.path == tmp_path / "nowhere/train/drone"


def test_location_folder_without_images(tmp_path):
    root = make_release(tmp_path)
    for f in (root / "train/drone/0007").iterdir():
        f.rename(f.with_suffix(".txt"))
    with pytest.raises(DatasetFormatError, match="holds no images") as err:
        load("university1652", root, "train")
    assert err.value.path == root / "train/drone/0007"


@pytest.mark.parametrize("count", [0, 2])
def test_satellite_folder_needs_exactly_one_image(tmp_path, count):
    root = make_release(tmp_path)
    folder = root / "test/gallery_satellite/0009"
    if count == 0:
        (folder / "0009.jpg").unlink()
        match = "holds no images"
    else:
        solid(folder / "0009b.png", (1, 2, 3))
        match = "exactly 1 image, found 2"
    with pytest.raises(DatasetFormatError, match=match) as err:
        load("university1652", root, "test")
    assert err.value.path == folder


def test_drone_location_without_tile(tmp_path):
    root = make_release(tmp_path)
    solid(root / "train/drone/0042/image-01.jpeg", (0, 0, 0))
    with pytest.raises(
        DatasetFormatError, match=r"1 drone locations have no folder here, e.g. \[42\]"
    ) as err:
        load("university1652", root, "train")
    assert err.value.path == root / "train/satellite"


def test_query_missing_from_gallery(tmp_path):
    root = make_release(tmp_path)
    solid(root / "test/query_drone/0003/image-01.jpeg", (0, 0, 0))
    with pytest.raises(DatasetFormatError, match=r"e\.g\. \[3\]") as err:
        load("university1652", root, "test", mode="drone")
    assert err.value.path == root / "test/gallery_satellite"
    solid(root / "test/query_satellite/0004/0004.jpg", (0, 0, 0))
    with pytest.raises(DatasetFormatError, match=r"satellite query locations .* \[4\]") as err:
        load("university1652", root, "test", mode="satellite")
    assert err.value.path == root / "test/gallery_drone"


@pytest.mark.parametrize("bad", ["07a", "0x10", "²"])
def test_location_names_must_be_digits(tmp_path, bad):
    root = make_release(tmp_path)
    solid(root / "train/satellite" / bad / "a.jpg", (0, 0, 0))
    with pytest.raises(DatasetFormatError, match="named by digits") as err:
        load("university1652", root, "train")
    assert err.value.path == root / "train/satellite" / bad


def test_stray_file_and_colliding_ids(tmp_path):
    root = make_release(tmp_path)
    (root / "train/drone/readme.txt").write_text("x")
    with pytest.raises(DatasetFormatError, match=r"found file 'readme\.txt'"):
        load("university1652", root, "train")
    (root / "train/drone/readme.txt").unlink()
    (root / "train/drone/.DS_Store").write_bytes(b"")  # hidden entries are ignored
    solid(root / "train/drone/10/image-01.jpeg", (0, 0, 0))
    with pytest.raises(DatasetFormatError, match="'0010' and '10' both name location 10"):
        load("university1652", root, "train")


def test_non_images_inside_a_location_are_ignored_with_a_warning(tmp_path, caplog):
    root = make_release(tmp_path)
    (root / "train/drone/0002/notes.txt").write_text("x")
    (root / "train/drone/0002/.hidden.jpg").write_bytes(b"")
    logger.addHandler(caplog.handler)  # robust to CLIs that disabled propagation
    try:
        with caplog.at_level(logging.WARNING, logger="d4g_edge"):
            split = load("university1652", root, "train")
    finally:
        logger.removeHandler(caplog.handler)
    assert len(split) == 9
    assert "ignoring 1 non-image entries" in caplog.text and "notes.txt" in caplog.text


def test_check_files_rejects_empty_and_non_file_images(tmp_path):
    root = make_release(tmp_path)
    empty = root / "train/drone/0007/image-02.JPG"
    empty.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=r"empty \(0 bytes\)") as err:
        load("university1652", root, "train")
    assert err.value.path == empty
    assert len(load("university1652", root, "train", check_files=False)) == 9  # listing only
    empty.unlink()
    empty.mkdir()  # a folder named like an image
    with pytest.raises(FileNotFoundError) as err:
        load("university1652", root, "train")
    assert err.value.filename == str(empty)
    empty.rmdir()
    empty.symlink_to(root / "gone.jpg")  # a dangling link
    with pytest.raises(FileNotFoundError):
        load("university1652", root, "train")


def test_split_accepts_unmatched_queries_only_with_foreign_ids(tmp_path):
    common = dict(
        dataset="x",
        split="test",
        root=tmp_path,
        query_paths=(tmp_path,) * 2,
        reference_paths=(tmp_path,) * 2,
        reference_ids=np.array([7, 8]),
        query_view="drone",
    )
    split = CrossViewSplit(**common, query_ids=np.array([8, 9]), positive_index=np.array([1, -1]))
    assert split.has_reference.tolist() == [True, False]
    with pytest.raises(ValueError, match="positive_index -1 has an id that is among"):
        CrossViewSplit(**common, query_ids=np.array([8, 7]), positive_index=np.array([1, -1]))
    with pytest.raises(ValueError, match=r"integers in \[-1, 2\)"):
        CrossViewSplit(**common, query_ids=np.array([8, 9]), positive_index=np.array([1, -2]))
    with pytest.raises(ValueError, match=r"integers in \[-1, 2\)"):
        CrossViewSplit(**common, query_ids=np.array([8, 9]), positive_index=np.array([1, 2]))
    with pytest.raises(ValueError, match="query_view must be one of"):
        CrossViewSplit(
            **{**common, "query_view": "street"},
            query_ids=np.array([8, 7]),
            positive_index=np.array([1, 0]),
        )
