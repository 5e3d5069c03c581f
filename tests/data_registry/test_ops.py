import pandas as pd
import pytest

from hybridlabel.data_registry.ops import apply_updates


def _frame():
    return pd.DataFrame(
        {
            "case_id": ["a", "b", "a"],
            "trained": [False, False, False],
            "quarantine_reason": [None, None, "duplicate case id 'a'"],
        }
    )


def test_updates_land_on_the_usable_row_not_on_a_quarantined_duplicate():
    out = apply_updates(_frame(), {"a": {"trained": True}})
    assert out["trained"].tolist() == [True, False, False]


def test_unknown_or_ambiguous_ids_are_errors():
    with pytest.raises(KeyError, match="not usable cases"):
        apply_updates(_frame(), {"c": {"trained": True}})
    twice = _frame().assign(quarantine_reason=None)
    with pytest.raises(KeyError, match="more than one usable row"):
        apply_updates(twice, {"b": {"trained": True}})
