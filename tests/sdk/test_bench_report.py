"""d4g_edge.cli.bench: the report names the search each index kind does and measures recall only
where something is approximated (an exact search printed "HNSW recall 1.0", issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.bundle import model_entry, write_bundle
from d4g_edge.cli.bench import bench, format_report
from d4g_edge.index import IndexParams
from d4g_edge.localizer import Localizer
from d4g_edge.runtime import open_encoder
from d4g_edge.tiletable import TileTable
from tests.sdk._models import EMBED_DIM


@pytest.mark.parametrize(
    ("params", "search", "against"),
    [
        (IndexParams(storage="float16"), "exact (float16 rows)", None),
        (IndexParams(storage="pca-int8", pca_dims=8, lists=1), "every code scanned", None),
        (IndexParams(M=8, exact_threshold=0), "hnsw(M=8", "exact search"),
        (
            IndexParams(storage="pca-int8", pca_dims=8, lists=4, probe=2),
            "pca-int8 (8 PCA components as int8, 4 lists, probe 2)",
            "a scan of every code",
        ),
        (
            IndexParams(storage="pca-int8", pca_dims=8, refine=16),
            "best 16 re-ranked exactly",
            "exact cosines of the float16 rows",
        ),
    ],
)
def test_report_names_the_search_and_what_recall_is_against(
    tmp_path, tiny_models, params, search, against
):
    n = 400
    v = np.random.default_rng(0).normal(size=(n, EMBED_DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    lat = 40.0 + np.arange(n) * 1e-4
    table = TileTable.from_rows(np.arange(n), lat, np.full(n, -88.0), np.full(n, 50.0))
    sat = open_encoder(tiny_models["satellite"])
    entry = model_entry(sat.path, sat.config, sat.sha256)
    ground = open_encoder(tiny_models["ground"])
    write_bundle(tmp_path / "b", v, table, entry, query=ground, params=params)
    report = bench(Localizer(tmp_path / "b", threads=1), queries=5)
    text = format_report(report)
    assert search in report["search"] and search in text
    if against is None:
        assert report["search_recall_at_1"] is None and "HNSW" not in text
        assert "n/a: " in text and report["recall_against"] in text
    else:
        assert report["recall_against"] == against and f"vs {against}" in text
        assert 0.0 <= report["search_recall_at_1"] <= 1.0
    # the old key names an HNSW recall: only where an HNSW graph was searched
    hnsw = search.startswith("hnsw")
    assert report["hnsw_recall_at_1"] == (report["search_recall_at_1"] if hnsw else None)
    assert report["rss_mb"] is None or report["rss_mb"] > 0
