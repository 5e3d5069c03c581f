"""The report's verdict on small rounds x classes tables."""

import pandas as pd

from hybridlabel.models.metric_summary import ORGAN_MEAN_PRESENT
from hybridlabel.models.verdict import verdict


def _table(rows):
    return pd.DataFrame(rows, index=range(len(rows)))


def test_rounds_that_beat_the_teacher_name_the_gain_and_the_classes():
    table = _table(
        [
            {"liver": 0.90, "pancreas": 0.50, "spleen": 0.80, ORGAN_MEAN_PRESENT: 0.73},
            {"liver": 0.91, "pancreas": 0.70, "spleen": 0.70, ORGAN_MEAN_PRESENT: 0.77},
            {"liver": 0.91, "pancreas": 0.70, "spleen": 0.70, ORGAN_MEAN_PRESENT: 0.77},
        ]
    )
    text = verdict(
        table,
        {0: "teacher", 1: "student"},
        export_round=2,
        pseudo_dice={1: {"liver": 0.9, "spleen": 0.3}},
        n_val_cases=3,
    )
    assert text[0].startswith("The rounds beat the teacher") and "+0.040" in text[0] and "round 1, student" in text[0]
    assert any(s.startswith("The exported model scores 0.770") for s in text)
    assert "Largest gains: pancreas +0.20, liver +0.01." in text
    assert "Largest losses: spleen -0.10." in text
    assert any("below 0.5 for spleen" in s for s in text)
    # beating the teacher is not the payoff: the verdict names the control at equal compute
    assert text[-1].startswith("Beating the teacher is not the payoff") and "`teacher_long`" in text[-1]


def test_rounds_below_the_teacher_say_so_and_a_lone_teacher_is_named():
    worse = _table([{"liver": 0.9, ORGAN_MEAN_PRESENT: 0.9}, {"liver": 0.8, ORGAN_MEAN_PRESENT: 0.8}])
    assert verdict(worse, {}, None, {}, 3)[0].startswith("The rounds did not beat the teacher")
    same = _table([{"liver": 0.9, ORGAN_MEAN_PRESENT: 0.9}, {"liver": 0.905, ORGAN_MEAN_PRESENT: 0.905}])
    assert verdict(same, {}, None, {}, 3)[0].startswith("The rounds matched the teacher")
    alone = verdict(worse.iloc[:1], {}, None, {}, 3)
    assert alone == ["Only the teacher so far: val organ DSC 0.900 over the classes present (3 val cases)."]
    assert verdict(pd.DataFrame(), {}, None, {}, 0)[0].startswith("No val metrics yet")


def test_a_round_that_learned_little_is_named_with_what_would_help():
    from hybridlabel.models.verdict import learned_little

    assert learned_little(0.31, None, 0.5) == "val organ DSC 0.310 is below the floor 0.50"
    assert learned_little(0.70, 0.80, 0.5) == "val organ DSC 0.700 is below its parent's 0.800"
    assert learned_little(0.795, 0.80, 0.5) is None and learned_little(None, 0.8, 0.5) is None
    table = _table(
        [
            {"liver": 0.3, ORGAN_MEAN_PRESENT: 0.3},
            {"liver": 0.8, ORGAN_MEAN_PRESENT: 0.8},
            {"liver": 0.7, ORGAN_MEAN_PRESENT: 0.7},
        ]
    )
    text = verdict(table, {0: "teacher", 1: "a", 2: "b"}, None, {}, 3, floor=0.5)
    flagged = [s for s in text if "learned little" in s]
    assert [s.split(" learned")[0] for s in flagged] == ["Round 0 (teacher)", "Round 2 (b)"]
    assert "below the floor" in flagged[0] and "below its parent's 0.800" in flagged[1]
    advice = [s for s in text if "iterations_per_epoch" in s]
    assert len(advice) == 1 and "Their models'" in advice[0]  # said once for both rounds
    assert "teacher_long" in advice[0]  # when more iterations do not help: the val cases differ
    assert not any("learned little" in s for s in verdict(table, {}, None, {}, 3))  # no floor given: not judged


def test_tumours_found_and_false_alarms_are_read_off_the_tumour_scores():
    from hybridlabel.models.metric_summary import detection_text, tumor_detection

    rows = pd.DataFrame(
        {
            "class_id": [14] * 6 + [1],
            "dsc": [0.7, 0.0, 0.2, 1.0, 0.0, 1.0, 0.5],
            "gt_present": [True, True, True, False, False, False, True],
        }
    )
    found = tumor_detection(rows, 14)
    assert found == {"with_tumor": 3, "found": 2, "without_tumor": 3, "false_alarms": 1}
    assert detection_text(found) == "tumours found in 2 of 3 cases with one; 1 of 3 tumour-free cases given a tumour"
    assert tumor_detection(rows[rows["class_id"] == 1], 14) == {} and detection_text({}) == ""
    table = _table(
        [{"liver": 0.9, "tumor": 0.1, ORGAN_MEAN_PRESENT: 0.9}, {"liver": 0.9, "tumor": 0.4, ORGAN_MEAN_PRESENT: 0.9}]
    )
    text = verdict(table, {}, None, {}, 3, tumors=detection_text(found))
    assert "Tumour DSC in round 1: 0.400 (tumours found in 2 of 3 cases with one; 1 of 3 tumour-free" in " ".join(text)


def test_the_ablation_states_the_payoff_against_the_teacher_trained_as_long():
    from hybridlabel.models.verdict import equal_compute_verdict

    def arm(name, mean, sd, iters):
        return {
            "arm": name,
            "organ_dsc_present_mean": mean,
            "organ_dsc_present_sd": sd,
            "trained_iterations": iters,
            "seeds": 3,
        }

    table = pd.DataFrame(
        [
            arm("teacher", 0.651, 0.08, 1000),
            arm("teacher_long", 0.877, 0.023, 3000),
            arm("round 1", 0.779, 0.044, 2000),
            arm("round 2", 0.879, 0.027, 3000),
        ]
    )
    text = equal_compute_verdict(table)
    assert text.startswith(
        "Equal compute: round 2 (3000 iterations) is level with (within the spread) the teacher "
        "trained as long (3000): val organ DSC 0.879 ± 0.027 against 0.877 ± 0.023 (+0.002, 3 seed(s))"
    )
    assert text.endswith("against the teacher alone +0.228.")
    better = table.assign(organ_dsc_present_mean=[0.651, 0.80, 0.78, 0.879])
    assert " beats the teacher trained as long" in equal_compute_verdict(better)
    assert equal_compute_verdict(table[table["arm"] != "teacher_long"]) is None
    with_room = pd.concat([table, pd.DataFrame([arm("oracle", 0.957, 0.01, 3000)])])
    assert equal_compute_verdict(with_room).endswith(
        "The ceiling (every training case with its complete labels, as long): 0.957 ± 0.010, +0.080 over the "
        "teacher trained as long: the loop took 3% of that room."
    )
    level = pd.concat([table.assign(organ_dsc_present_mean=[0.651, 0.877, 0.78, 0.871]), with_room.tail(1)])
    assert "+0.080 over the teacher trained as long: the loop took none of that room." in equal_compute_verdict(level)
    partial = pd.concat([table, pd.DataFrame([arm("naive", 0.10, 0.03, 3000), arm("merge_max", 0.85, 0.01, 3000)])])
    assert equal_compute_verdict(partial).endswith(
        "It beats the best arm on every labelled case, as long (merge_max 0.850, +0.029)."
    )
    close = partial.assign(organ_dsc_present_mean=[0.651, 0.877, 0.779, 0.879, 0.10, 0.87])
    assert "It is level with (within the spread) the best arm on every labelled case" in equal_compute_verdict(close)
    no_room = pd.concat([table, pd.DataFrame([arm("oracle", 0.890, 0.01, 3000)])])
    assert "within the spread, so no loop can beat it here" in equal_compute_verdict(no_room)
