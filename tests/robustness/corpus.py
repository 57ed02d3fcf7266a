"""Broken variants of tiny world datasets in the three layouts (CVUSA, CVACT, VIGOR).

Each :class:`Variant` copies a base dataset and applies one mutation of the kind a user
meets in practice: a file missing or replaced (``files``), an image corrupt or in an odd
format (``images``), a split line malformed (``lines``), a coordinate impossible
(``coords``). ``expect`` says what the tooling must do with it, decided by what the
mutation means, not by what the code happens to do:

* ``error``: a typed error (ValueError / FileNotFoundError family) naming what is wrong;
* ``same``: the mutation changes no data (a BOM, CRLF, PNG bytes of the same pixels), so
  loading and evaluation give exactly the base dataset's result;
* ``ok``: valid but different data (e.g. a grayscale image), so a normal result.

Usage::

    for v in variants("cvusa", base_root):
        root = v.materialise(base_root, tmp_path / v.name)
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

KINDS = ("files", "images", "lines", "coords")


@dataclass(frozen=True)
class Variant:
    layout: str
    kind: str
    name: str
    mutate: Callable[[Path], None]
    expect: str  # "error" | "same" | "ok"

    @property
    def id(self) -> str:
        return f"{self.layout}/{self.kind}/{self.name}"

    def materialise(self, base: Path, dest: Path) -> Path:
        shutil.copytree(base, dest, symlinks=True)
        self.mutate(dest)
        return dest


# ---- file-level helpers ---------------------------------------------------------------------


def _delete(rel: str) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        p = root / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    return f


def _replace_with_dir(rel: str) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).mkdir()

    return f


def _dangling_symlink(rel: str) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).symlink_to(root / "does-not-exist.jpg")

    return f


def _write_bytes(rel: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        p = root / rel
        p.write_bytes(data(p.read_bytes()) if callable(data) else data)

    return f


def _add_stray_file(root: Path) -> None:
    (root / "README.txt").write_text("notes a user left next to the data\n")
    (root / ".DS_Store").write_bytes(b"\0\1\2")


# ---- image mutations: (name, bytes from the original image file, expect) --------------------


def _decoded(raw: bytes) -> Image.Image:
    with Image.open(io.BytesIO(raw)) as img:
        return img.convert("RGB")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gray16(raw: bytes) -> bytes:
    gray = np.asarray(_decoded(raw).convert("L"), dtype=np.uint16) * 257
    return _encode(Image.fromarray(gray), "PNG")


def _float_tiff(raw: bytes) -> bytes:
    gray = np.asarray(_decoded(raw).convert("L"), dtype=np.float32) / 255.0
    return _encode(Image.fromarray(gray, mode="F"), "TIFF")


def _int32_tiff(raw: bytes) -> bytes:
    gray = np.asarray(_decoded(raw).convert("L"), dtype=np.int32) * 1000
    return _encode(Image.fromarray(gray, mode="I"), "TIFF")


def _rgba(raw: bytes) -> bytes:
    return _encode(_decoded(raw).convert("RGBA"), "PNG")  # alpha 255: same pixels


IMAGE_MUTATIONS: list[tuple[str, Callable[[bytes], bytes] | bytes, str]] = [
    ("zero_bytes", b"", "error"),
    ("truncated_half", lambda b: b[: len(b) // 2], "error"),
    ("truncated_header", lambda b: b[:12], "error"),
    ("text_named_image", b"this is not an image, it is a note\n", "error"),
    ("html_error_page", b"<html><body>403 Forbidden</body></html>\n", "error"),
    (
        "random_bytes",
        bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8)),
        "error",
    ),
    ("gray16_png", _gray16, "ok"),
    ("float_tiff", _float_tiff, "error"),
    ("int32_tiff", _int32_tiff, "error"),
    ("png_bytes_same_pixels", lambda b: _encode(_decoded(b), "PNG"), "same"),
    ("rgba_opaque_png", _rgba, "same"),
    ("grayscale_jpeg", lambda b: _encode(_decoded(b).convert("L"), "JPEG"), "ok"),
    ("palette_png", lambda b: _encode(_decoded(b).convert("P"), "PNG"), "ok"),
    ("cmyk_jpeg", lambda b: _encode(_decoded(b).convert("CMYK"), "JPEG"), "ok"),
    ("one_pixel", lambda b: _encode(_decoded(b).resize((1, 1)), "PNG"), "ok"),
    ("bilevel_png", lambda b: _encode(_decoded(b).convert("1"), "PNG"), "ok"),
]


def _image_variants(layout: str, images: list[str]) -> Iterator[Variant]:
    for rel in images:
        tag = rel.replace("/", "_")
        for name, data, expect in IMAGE_MUTATIONS:
            yield Variant(layout, "images", f"{name}:{tag}", _write_bytes(rel, data), expect)
        yield Variant(layout, "files", f"delete:{tag}", _delete(rel), "error")
        yield Variant(layout, "files", f"dir_instead:{tag}", _replace_with_dir(rel), "error")
        yield Variant(layout, "files", f"dangling_link:{tag}", _dangling_symlink(rel), "error")


# ---- text (split file) helpers ---------------------------------------------------------------


def _edit_lines(rel: str, edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        p = root / rel
        p.write_text("".join(line + "\n" for line in edit(p.read_text().splitlines())))

    return f


def _edit_line(rel: str, i: int, edit: Callable[[str], str]) -> Callable[[Path], None]:
    return _edit_lines(rel, lambda lines: [edit(x) if k == i else x for k, x in enumerate(lines)])


def _text_file_variants(layout: str, rel: str) -> Iterator[Variant]:
    """Whole-file mutations every text split file must survive or refuse."""
    tag = rel.replace("/", "_")
    yield Variant(layout, "files", f"delete:{tag}", _delete(rel), "error")
    yield Variant(layout, "files", f"dir_instead:{tag}", _replace_with_dir(rel), "error")
    yield Variant(
        layout,
        "lines",
        f"crlf:{tag}",
        _write_bytes(rel, lambda b: b.replace(b"\n", b"\r\n")),
        "same",
    )
    yield Variant(
        layout, "lines", f"bom:{tag}", _write_bytes(rel, lambda b: b"\xef\xbb\xbf" + b), "same"
    )
    yield Variant(
        layout,
        "lines",
        f"trailing_blank_lines:{tag}",
        _write_bytes(rel, lambda b: b + b"\n\n  \n"),
        "same",
    )
    yield Variant(
        layout,
        "lines",
        f"no_final_newline:{tag}",
        _write_bytes(rel, lambda b: b.rstrip(b"\n")),
        "same",
    )
    yield Variant(
        layout,
        "lines",
        f"latin1_byte:{tag}",
        _write_bytes(rel, lambda b: b + b"caf\xe9\n"),
        "error",
    )
    yield Variant(
        layout,
        "lines",
        f"utf16:{tag}",
        _write_bytes(rel, lambda b: b.decode().encode("utf-16")),
        "error",
    )
    yield Variant(
        layout,
        "lines",
        f"nul_bytes:{tag}",
        _write_bytes(rel, lambda b: b.replace(b".", b"\0", 1)),
        "error",
    )


# ---- CVUSA ----------------------------------------------------------------------------------

CVUSA_SPLIT = "splits/val-19zl.csv"
CVUSA_LOC = "split_locations/all.csv"


def _cvusa(root: Path) -> Iterator[Variant]:
    rows = [line.split(",") for line in (root / CVUSA_SPLIT).read_text().splitlines()]
    ids = [int(Path(r[0]).stem) for r in rows]
    yield from _image_variants("cvusa", [rows[0][0], rows[-1][1]])
    yield from _text_file_variants("cvusa", CVUSA_SPLIT)
    L = "cvusa"
    yield Variant(L, "files", "delete:splits", _delete("splits"), "error")
    yield Variant(L, "files", "delete:bingmap", _delete("bingmap"), "error")
    yield Variant(L, "files", "stray_files", _add_stray_file, "same")
    yield Variant(L, "files", "delete:all.csv", _delete(CVUSA_LOC), "ok")  # no GPS: no metres
    yield Variant(L, "lines", "empty_split", _write_bytes(CVUSA_SPLIT, b""), "error")
    yield Variant(L, "lines", "blank_split", _write_bytes(CVUSA_SPLIT, b"\n \n\n"), "error")
    yield Variant(
        L,
        "lines",
        "header_row",
        _edit_lines(CVUSA_SPLIT, lambda ls: ["sat,ground,seg", *ls]),
        "error",
    )
    yield Variant(
        L, "lines", "tabs", _write_bytes(CVUSA_SPLIT, lambda b: b.replace(b",", b"\t")), "error"
    )
    yield Variant(
        L,
        "lines",
        "semicolons",
        _write_bytes(CVUSA_SPLIT, lambda b: b.replace(b",", b";")),
        "error",
    )
    yield Variant(
        L,
        "lines",
        "quoted_fields",
        _edit_lines(CVUSA_SPLIT, lambda ls: [",".join(f'"{f}"' for f in x.split(",")) for x in ls]),
        "same",
    )
    line_edits: list[tuple[str, Callable[[str], str], str]] = [
        ("two_fields", lambda x: ",".join(x.split(",")[:2]), "error"),
        ("four_fields", lambda x: x + ",extra", "error"),
        ("empty_ground", lambda x: (f := x.split(","))[0] + ",," + f[2], "error"),
        ("non_integer_id", lambda x: x.replace(".jpg", "x.jpg", 1), "error"),
        ("absolute_path", lambda x: "/etc/" + x, "error"),
        ("parent_path", lambda x: "../" + x, "error"),
        (
            "ground_escapes_root",
            lambda x: (f := x.split(","))[0] + ",../../" + f[1] + "," + f[2],
            "error",
        ),
        ("spaces_around_fields", lambda x: " , ".join(x.split(",")), "same"),
        ("unknown_image", lambda x: x.replace("bingmap/19/", "bingmap/18/", 1), "error"),
        ("backslashes", lambda x: x.replace("/", "\\"), "error"),
    ]
    for i in (0, len(rows) - 1):  # first and last line: the edges a parser gets wrong
        for name, edit, expect in line_edits:
            yield Variant(
                L, "lines", f"{name}:line{i + 1}", _edit_line(CVUSA_SPLIT, i, edit), expect
            )
    yield Variant(
        L, "lines", "duplicate_line", _edit_lines(CVUSA_SPLIT, lambda ls: [*ls, ls[0]]), "error"
    )
    # coordinates: row k of all.csv belongs to id k
    coord_edits: list[tuple[str, Callable[[str], str], str]] = [
        ("non_numeric", lambda x: "north," + x.split(",", 1)[1], "error"),
        ("nan", lambda x: "nan," + x.split(",", 1)[1], "error"),
        ("inf", lambda x: x.split(",")[0] + ",inf," + ",".join(x.split(",")[2:]), "error"),
        ("lat_91", lambda x: "91.0," + x.split(",", 1)[1], "error"),
        ("lon_200", lambda x: (f := x.split(","))[0] + ",200.0," + ",".join(f[2:]), "error"),
        (
            "ground_lat_minus_95",
            lambda x: ",".join([*x.split(",")[:2], "-95", *x.split(",")[3:]]),
            "error",
        ),
        ("three_columns", lambda x: ",".join(x.split(",")[:3]), "error"),
        ("extra_column", lambda x: x + ",7", "same"),
    ]
    for k in ids[:2]:
        for name, edit, expect in coord_edits:
            yield Variant(L, "coords", f"{name}:id{k}", _edit_line(CVUSA_LOC, k - 1, edit), expect)
    yield Variant(
        L, "coords", "too_few_rows", _edit_lines(CVUSA_LOC, lambda ls: ls[: min(ids) - 1]), "error"
    )
    yield Variant(L, "coords", "empty_locations", _write_bytes(CVUSA_LOC, b""), "error")
    yield Variant(
        L, "coords", "latin1_locations", _write_bytes(CVUSA_LOC, lambda b: b"\xff" + b), "error"
    )


# ---- CVACT ----------------------------------------------------------------------------------

CVACT_MAT = "ACT_data.mat"


def _read_act(root: Path) -> dict:
    mat = scipy.io.loadmat(root / CVACT_MAT)

    def idx(struct: str, field: str) -> np.ndarray:
        return np.asarray(mat[struct][field][0, 0], dtype=np.float64).reshape(-1, 1)

    return {
        "panoIds": [str(s).rstrip() for s in np.asarray(mat["panoIds"]).ravel()],
        "utm": np.asarray(mat["utm"], dtype=np.float64),
        "train": idx("trainSet", "trainInd"),
        "val": idx("valSet", "valInd"),
        "all": idx("valSetAll", "valInd"),
    }


def _write_act(root: Path, act: dict, drop: tuple[str, ...] = ()) -> None:
    data = {
        "panoIds": np.array(act["panoIds"]) if isinstance(act["panoIds"], list) else act["panoIds"],
        "utm": act["utm"],
        "trainSet": {"trainNum": float(len(act["train"])), "trainInd": act["train"]},
        "valSet": {"valNum": float(len(act["val"])), "valInd": act["val"]},
        "valSetAll": {"valNum": float(len(act["all"])), "valInd": act["all"]},
    }
    scipy.io.savemat(root / CVACT_MAT, {k: v for k, v in data.items() if k not in drop})


def _act_edit(edit: Callable[[dict], None], drop: tuple[str, ...] = ()) -> Callable[[Path], None]:
    def f(root: Path) -> None:
        act = _read_act(root)
        edit(act)
        _write_act(root, act, drop)

    return f


def _set(key: str, value) -> Callable[[dict], None]:
    def f(act: dict) -> None:
        act[key] = value(act) if callable(value) else value

    return f


def _set_utm(row_of_test: int, col: int, value: float) -> Callable[[dict], None]:
    def f(act: dict) -> None:
        r = int(act["all"][row_of_test, 0]) - 1
        act["utm"][r, col] = value

    return f


def _cvact(root: Path) -> Iterator[Variant]:
    act = _read_act(root)
    test_ids = [act["panoIds"][int(i) - 1] for i in act["all"].ravel()]
    images = [
        f"ANU_data_test/streetview/{test_ids[0]}_grdView.jpg",
        f"ANU_data_test/satview_polish/{test_ids[-1]}_satView_polish.jpg",
    ]
    yield from _image_variants("cvact", images)
    L = "cvact"
    yield Variant(L, "files", "delete:ACT_data.mat", _delete(CVACT_MAT), "error")
    yield Variant(L, "files", "dir_instead:ACT_data.mat", _replace_with_dir(CVACT_MAT), "error")
    yield Variant(L, "files", "delete:ANU_data_test", _delete("ANU_data_test"), "error")
    yield Variant(L, "files", "delete:ANU_data_small", _delete("ANU_data_small"), "same")
    yield Variant(L, "files", "stray_files", _add_stray_file, "same")
    yield Variant(
        L, "files", "mat_is_text", _write_bytes(CVACT_MAT, b"panoIds,utm\n1,2\n"), "error"
    )
    yield Variant(
        L, "files", "mat_truncated", _write_bytes(CVACT_MAT, lambda b: b[: len(b) // 2]), "error"
    )
    yield Variant(L, "files", "mat_empty", _write_bytes(CVACT_MAT, b""), "error")
    yield Variant(L, "files", "mat_resaved", _act_edit(lambda a: None), "same")
    for var in ("panoIds", "utm", "valSetAll"):
        yield Variant(L, "lines", f"no_{var}", _act_edit(lambda a: None, drop=(var,)), "error")
    n = len(act["panoIds"])
    index_edits = [
        ("valInd_empty", np.zeros((0, 1)), "error"),
        ("valInd_zero", lambda a: np.vstack([a["all"], [[0]]]), "error"),
        ("valInd_past_end", lambda a: np.vstack([a["all"], [[n + 1]]]), "error"),
        ("valInd_negative", lambda a: np.vstack([a["all"], [[-2]]]), "error"),
        ("valInd_fraction", lambda a: a["all"] + 0.5, "error"),
        ("valInd_nan", lambda a: np.vstack([a["all"], [[np.nan]]]), "error"),
        ("valInd_repeat", lambda a: np.vstack([a["all"], a["all"][:1]]), "error"),
        ("valInd_strings", np.array(["1", "2"]), "error"),
        ("valInd_reordered", lambda a: a["all"][::-1].copy(), "ok"),
        ("valInd_row_vector", lambda a: a["all"].reshape(1, -1), "same"),
        ("valInd_int32", lambda a: a["all"].astype(np.int32), "same"),
    ]
    for name, value, expect in index_edits:
        yield Variant(L, "lines", name, _act_edit(_set("all", value)), expect)
    yield Variant(
        L,
        "lines",
        "valInd_train_rows",
        _act_edit(_set("all", lambda a: a["train"].copy())),
        "error",
    )
    yield Variant(
        L,
        "lines",
        "panoIds_numbers",
        _act_edit(_set("panoIds", np.arange(n, dtype=float))),
        "error",
    )
    yield Variant(
        L,
        "lines",
        "panoIds_short",
        _act_edit(_set("panoIds", lambda a: a["panoIds"][:-1])),
        "error",
    )
    for k in range(len(test_ids)):
        yield Variant(
            L,
            "lines",
            f"panoId_unknown:test{k}",
            _act_edit(
                lambda a, k=k: a["panoIds"].__setitem__(
                    int(a["all"][k, 0]) - 1, "Z" * len(a["panoIds"][0])
                )
            ),
            "error",
        )
    # coordinates
    yield Variant(
        L,
        "coords",
        "utm_strings",
        _act_edit(_set("utm", lambda a: np.array([[f"{e:.1f}", f"{x:.1f}"] for e, x in a["utm"]]))),
        "error",
    )
    yield Variant(
        L,
        "coords",
        "utm_one_column",
        _act_edit(_set("utm", lambda a: a["utm"][:, :1].copy())),
        "error",
    )
    yield Variant(
        L, "coords", "utm_transposed", _act_edit(_set("utm", lambda a: a["utm"].T.copy())), "error"
    )
    yield Variant(
        L, "coords", "utm_short", _act_edit(_set("utm", lambda a: a["utm"][:-1].copy())), "error"
    )
    for k in range(2):
        for name, col, value in (
            ("nan", 0, np.nan),
            ("inf", 1, np.inf),
            ("far_away", 0, 1e12),
            ("north_of_pole", 1, 1e9),
        ):
            yield Variant(
                L, "coords", f"utm_{name}:test{k}", _act_edit(_set_utm(k, col, value)), "error"
            )
    yield Variant(
        L, "coords", "utm_shifted_100m", _act_edit(_set("utm", lambda a: a["utm"] + 100.0)), "ok"
    )


# ---- VIGOR ----------------------------------------------------------------------------------


def _vigor(root: Path) -> Iterator[Variant]:
    L = "vigor"
    test_cities = ("Chicago", "SanFrancisco")
    labels = {c: f"splits/{c}/pano_label_balanced.txt" for c in test_cities}
    sat_lists = {c: f"splits/{c}/satellite_list.txt" for c in test_cities}
    first = (root / labels["Chicago"]).read_text().split()
    images = [
        f"Chicago/panorama/{first[0]}",
        f"Chicago/satellite/{first[4]}",
    ]
    yield from _image_variants(L, images)
    for c in test_cities:
        yield from _text_file_variants(L, labels[c])
        yield from _text_file_variants(L, sat_lists[c])
        yield Variant(L, "files", f"delete:{c}", _delete(c), "error")
        yield Variant(L, "lines", f"empty_labels:{c}", _write_bytes(labels[c], b""), "ok")
        yield Variant(
            L, "lines", f"empty_satellite_list:{c}", _write_bytes(sat_lists[c], b""), "error"
        )
    yield Variant(L, "files", "delete:NewYork", _delete("NewYork"), "same")  # a train city
    yield Variant(L, "files", "stray_files", _add_stray_file, "same")
    yield Variant(L, "files", "delete:splits", _delete("splits"), "error")
    yield Variant(
        L,
        "lines",
        "empty_labels:both",
        lambda r: [(r / labels[c]).write_text("") for c in test_cities] and None,
        "error",
    )
    label_edits: list[tuple[str, Callable[[str], str], str]] = [
        ("drop_token", lambda x: " ".join(x.split()[:-1]), "error"),
        ("extra_token", lambda x: x + " 0.0", "error"),
        ("offset_text", lambda x: " ".join([*x.split()[:2], "north", *x.split()[3:]]), "error"),
        ("offset_nan", lambda x: " ".join([*x.split()[:2], "nan", *x.split()[3:]]), "error"),
        (
            "unknown_tile",
            lambda x: " ".join([x.split()[0], "satellite_1.0_2.0.png", *x.split()[2:]]),
            "error",
        ),
        ("pano_bad_name", lambda x: " ".join(["panorama.jpg", *x.split()[1:]]), "error"),
        (
            "pano_with_folder",
            lambda x: " ".join(["../../NewYork/panorama/" + x.split()[0], *x.split()[1:]]),
            "error",
        ),
        (
            "pano_lat_95",
            lambda x: " ".join(
                [",".join([(p := x.split()[0].split(","))[0], "95.0", *p[2:]]), *x.split()[1:]]
            ),
            "error",
        ),
        (
            "pano_lon_text",
            lambda x: " ".join(
                [
                    ",".join([(p := x.split()[0].split(","))[0], p[1], "east", *p[3:]]),
                    *x.split()[1:],
                ]
            ),
            "error",
        ),
        ("tabs_between_tokens", lambda x: "\t".join(x.split()), "same"),
        ("comma_separated", lambda x: ",".join(x.split()), "error"),
        (
            "unknown_pano",
            lambda x: " ".join([x.split()[0].replace(x.split()[0][:4], "ZZZZ", 1), *x.split()[1:]]),
            "error",
        ),
    ]
    for c in test_cities:
        n_lines = len((root / labels[c]).read_text().splitlines())
        for name, edit, expect in label_edits:  # the last line of each test city
            yield Variant(
                L, "lines", f"{name}:{c}:last", _edit_line(labels[c], n_lines - 1, edit), expect
            )
    sat_edits: list[tuple[str, Callable[[str], str], str]] = [
        ("bad_name", lambda x: "tile.png", "error"),
        ("with_folder", lambda x: "../" + x, "error"),
        ("lat_nan", lambda x: "satellite_nan_" + x.split("_")[2], "error"),
        ("lat_100", lambda x: "satellite_100.0_" + x.split("_")[2], "error"),
        ("lon_text", lambda x: x.split("_")[0] + "_" + x.split("_")[1] + "_west.png", "error"),
        ("missing_tile_file", lambda x: x.replace(".png", "1.png"), "error"),
    ]
    for i in range(2):
        for name, edit, expect in sat_edits:
            yield Variant(
                L,
                "coords",
                f"tile_{name}:Chicago:line{i + 1}",
                _edit_line(sat_lists["Chicago"], i, edit),
                expect,
            )
    yield Variant(
        L,
        "lines",
        "tile_listed_twice",
        _edit_lines(sat_lists["Chicago"], lambda ls: [*ls, ls[0]]),
        "error",
    )


GENERATORS = {"cvusa": _cvusa, "cvact": _cvact, "vigor": _vigor}


def variants(layout: str, base: Path) -> list[Variant]:
    """Every broken variant of ``layout`` derived from the (read-only) base dataset ``base``."""
    out = list(GENERATORS[layout](Path(base)))
    ids = [v.id for v in out]
    assert len(set(ids)) == len(ids), "variant names must be unique"
    return out
