"""benchmarks.answers compares two trees' answers exactly: a moved float, a changed status,
a missing field or a missing record is a difference; the same answers are none."""

import copy

from benchmarks.answers import compare, differences


def _records():
    answer = {"lat": 37.1, "lon": -122.4, "status": "ok", "candidates": [{"score": 0.81}]}
    return [
        {"image": f"p{i}.jpg", "kind": "heading given", "top_k": 5, "answer": dict(answer)}
        for i in range(3)
    ] + [{"image": "p9.jpg", "kind": "prior", "top_k": 5, "answer": {"error": "no tile"}}]


def test_the_same_answers_are_identical():
    a = _records()
    report = compare(a, copy.deepcopy(a))
    assert report == {
        "records": 4,
        "errors": 1,
        "identical": 4,
        "differ": 0,
        "first_differences": [],
    }


def test_any_change_is_a_difference():
    a, b = _records(), _records()
    b[0]["answer"]["candidates"][0]["score"] = 0.81 + 1e-12  # one ulp-scale move
    b[1]["answer"]["status"] = "uncertain"
    del b[2]["answer"]["lon"]
    report = compare(a, b)
    assert report["identical"] == 1 and report["differ"] == 3
    first = report["first_differences"][0]
    assert first.startswith("p0.jpg heading given top_k=5: .answer.candidates[0].score")
    assert differences(1, 1.0) == [": 1 != 1.0"]  # an int is not a float
    assert compare(a, b[:3])["differ"] is None
