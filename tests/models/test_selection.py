import pandas as pd
import pytest

from hybridlabel.models.selection import keep_count, select_confident_cases


def scores(n=10):
    return pd.DataFrame(
        {
            "case_id": [f"c{i:02d}" for i in range(n)],
            "organ_entropy": [0.1 * (n - i) for i in range(n)],  # c09 most confident
            "tumor_entropy": [0.05 * i for i in range(n)],  # c00 most confident
        }
    )


def test_keep_count_and_fraction():
    assert keep_count(1000, 1800) == 1000 and keep_count(0.5, 7) == 4 and keep_count(5, 3) == 3
    assert keep_count(0.0, 10) == 0 and keep_count(1.0, 10) == 10


def test_organ_then_tumour_keep():
    d = select_confident_cases(scores(), organ_keep=4, tumor_keep=0.5).set_index("case_id")
    assert set(d.index[d["decision"] != "sits_out"]) == {"c06", "c07", "c08", "c09"}
    assert set(d.index[d["decision"] == "tumor_kept"]) == {"c06", "c07"}
    assert "cut-off" in d.loc["c05", "reason"] and "ranks 5/10" in d.loc["c05", "reason"]
    assert "falls back" in d.loc["c09", "reason"]


def test_ties_break_by_case_id_whatever_the_input_order():
    s = pd.DataFrame({"case_id": ["b", "a", "d", "c"], "organ_entropy": [0.1] * 4, "tumor_entropy": [0.2] * 4})
    first = select_confident_cases(s, 2, 1)
    second = select_confident_cases(s.iloc[::-1], 2, 1)
    pd.testing.assert_frame_equal(first, second)
    kept = dict(zip(first["case_id"], first["decision"]))
    assert kept == {"a": "tumor_kept", "b": "organ_kept", "c": "sits_out", "d": "sits_out"}


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="lack column"):
        select_confident_cases(scores().drop(columns="tumor_entropy"), 1, 1)
    dup = pd.concat([scores(2), scores(2)])
    with pytest.raises(ValueError, match="duplicate"):
        select_confident_cases(dup, 1, 1)


def test_nothing_kept_is_fine():
    d = select_confident_cases(scores(3), 0, 0)
    assert set(d["decision"]) == {"sits_out"}
