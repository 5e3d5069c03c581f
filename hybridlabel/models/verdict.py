"""The report's opening words (pure): did the rounds beat their teacher, by how much, on
which classes, and how good were the pseudo labels. Judged on the val organ DSC over the
classes present (FLARE's rule would score an absent class 1)."""

from __future__ import annotations

import pandas as pd

from hybridlabel.models.metric_summary import ORGAN_MEAN_PRESENT, SUMMARY_ROWS, TUMOR

NOTICEABLE = 0.01  # per-class changes smaller than this are not named


def learned_little(dsc: float | None, parent: float | None, floor: float) -> str | None:
    """Why a round's model learned too little to trust, or None: its val organ DSC over the
    classes present below `floor`, or below its parent's by more than NOTICEABLE."""
    if dsc is None:
        return None
    if dsc < floor:
        return f"val organ DSC {dsc:.3f} is below the floor {floor:.2f}"
    if parent is not None and dsc < parent - NOTICEABLE:
        return f"val organ DSC {dsc:.3f} is below its parent's {parent:.3f}"
    return None


def verdict(
    val_dsc: pd.DataFrame,
    round_names: dict[int, str],
    export_round: int | None,
    pseudo_dice: dict[int, dict[str, float]],
    n_val_cases: int,
    floor: float | None = None,
    tumors: str = "",
) -> list[str]:
    """Sentences about a workdir's rounds. `val_dsc`: rounds x classes (rounds_by_class of
    val_gt, DSC); `pseudo_dice`: per round, class -> Dice of its pseudo labels; `floor`: the
    DSC below which a round learned little (`evaluation.learned_floor`); `tumors`: the last
    round's tumours found and false alarms, in words (`metric_summary.detection_text`)."""
    if val_dsc.empty or ORGAN_MEAN_PRESENT not in val_dsc.columns or 0 not in val_dsc.index:
        return ["No val metrics yet: the verdict needs the teacher (round 0) evaluated on val cases."]
    rounds = [r for r in val_dsc.index if r != export_round]
    teacher, last = float(val_dsc.loc[0, ORGAN_MEAN_PRESENT]), rounds[-1]
    if last == 0:
        return [
            f"Only the teacher so far: val organ DSC {teacher:.3f} over the classes present ({n_val_cases} val cases)."
        ]
    final = float(val_dsc.loc[last, ORGAN_MEAN_PRESENT])
    delta = final - teacher
    outcome = "matched" if abs(delta) < NOTICEABLE else "beat" if delta > 0 else "did not beat"
    out = [
        f"The rounds {outcome} the teacher: val organ DSC over the classes present {teacher:.3f} (round 0, "
        f"{round_names.get(0, 'teacher')}) -> {final:.3f} (round {last}, {round_names.get(last, '')}), "
        f"{delta:+.3f}, on {n_val_cases} val cases."
    ]
    if export_round is not None and export_round in val_dsc.index:
        out.append(f"The exported model scores {float(val_dsc.loc[export_round, ORGAN_MEAN_PRESENT]):.3f}.")
    change = (val_dsc.loc[last] - val_dsc.loc[0]).drop([c for c in SUMMARY_ROWS if c in val_dsc.columns]).dropna()
    gains = change[change >= NOTICEABLE].sort_values(ascending=False).head(3)
    losses = change[change <= -NOTICEABLE].sort_values().head(3)
    if len(gains):
        out.append("Largest gains: " + ", ".join(f"{c} {d:+.2f}" for c, d in gains.items()) + ".")
    if len(losses):
        out.append("Largest losses: " + ", ".join(f"{c} {d:+.2f}" for c, d in losses.items()) + ".")
    if TUMOR in val_dsc.columns and pd.notna(val_dsc.loc[last, TUMOR]):
        out.append(
            f"Tumour DSC in round {last}: {float(val_dsc.loc[last, TUMOR]):.3f}" + (f" ({tumors})." if tumors else ".")
        )
    if floor is not None:
        ordered = [r for r in val_dsc.index if r != export_round]
        flagged = 0
        for prev, r in zip([None, *ordered], ordered):
            parent = None if prev is None else float(val_dsc.loc[prev, ORGAN_MEAN_PRESENT])
            if why := learned_little(float(val_dsc.loc[r, ORGAN_MEAN_PRESENT]), parent, floor):
                out.append(f"Round {r} ({round_names.get(r, '')}) learned little: {why}.")
                flagged += 1
        if flagged:  # the advice once, however many rounds it concerns
            whose = "Its model's" if flagged == 1 else "Their models'"
            out.append(
                f"{whose} labels were handed on all the same. More "
                "iterations (training.epochs x iterations_per_epoch) help a model that underfits; where "
                "`teacher_long` (`hybridlabel ablate`) scores no better, the val cases differ from the labelled "
                "ones: label a few like them."
            )
    if pseudo_dice:
        r = max(pseudo_dice)
        dice = pseudo_dice[r]
        low = sorted((c for c, d in dice.items() if d < 0.5), key=str)
        out.append(
            f"Pseudo labels of round {r} (the parent's prediction against the predicted cases' annotations): "
            f"Dice {min(dice.values()):.2f}-{max(dice.values()):.2f} per class"
            + (f"; below 0.5 for {', '.join(map(str, low))}." if low else ".")
        )
    out.append(
        "Beating the teacher is not the payoff: the control at equal compute is the teacher trained for as many "
        "iterations as every round together (`teacher_long`), which this run did not train, and one run on few "
        "val cases is not a result; `hybridlabel ablate CONFIG --arms teacher_long,rounds,oracle --seeds 1,2` "
        "measures both over seeds, with the ceiling complete labels would give (`oracle`)."
    )
    return out


def equal_compute_verdict(table: pd.DataFrame) -> str | None:
    """The ablation's answer to "is the loop worth its compute": the last round against the
    teacher trained for as many iterations (`teacher_long`), and against the teacher, on val
    organ DSC over the classes present (mean ± SD over seeds), and against the best arm that
    trains on every labelled case as long (naive or a partial-label loss) where one ran. None
    without the last round and `teacher_long`."""
    rounds = [a for a in table["arm"] if str(a).startswith("round ")] if len(table) else []
    arms = table.set_index("arm") if len(table) else table
    if not rounds or "teacher_long" not in arms.index:
        return None
    last = max(rounds, key=lambda a: int(str(a).split()[1]))

    def score(arm: str) -> tuple[float, float]:
        return float(arms.loc[arm, "organ_dsc_present_mean"]), float(arms.loc[arm, "organ_dsc_present_sd"])

    def against(other: str) -> tuple[float, str]:
        """The difference to another arm and whether it is beyond the larger spread."""
        (ours, sd), (them, their_sd) = score(last), score(other)
        delta, spread = ours - them, max(sd, their_sd)
        return (
            delta,
            "beats" if delta > spread else "loses to" if delta < -spread else "is level with (within the spread)",
        )

    (ours, sd), (control, control_sd) = score(last), score("teacher_long")
    (delta, outcome), spread = against("teacher_long"), max(sd, control_sd)
    text = (
        f"Equal compute: {last} ({int(arms.loc[last, 'trained_iterations'])} iterations) {outcome} the teacher "
        f"trained as long ({int(arms.loc['teacher_long', 'trained_iterations'])}): val organ DSC {ours:.3f} ± "
        f"{sd:.3f} against {control:.3f} ± {control_sd:.3f} ({delta:+.3f}, {int(arms.loc[last, 'seeds'])} seed(s))"
    )
    if "teacher" in arms.index:
        teacher = score("teacher")[0]
        text += f"; against the teacher alone {ours - teacher:+.3f}"
    # every labelled case in one model, as long: the other control the papers compare with
    if partial := [a for a in ("naive", "target_adaptive", "merge_max") if a in arms.index]:
        best = max(partial, key=lambda a: score(a)[0])
        gap, word = against(best)
        text += f". It {word} the best arm on every labelled case, as long ({best} {score(best)[0]:.3f}, {gap:+.3f})"
    if "oracle" in arms.index:  # what perfect pseudo labels would give at the same compute
        ceiling, ceiling_sd = score("oracle")
        room = ceiling - control
        text += (
            f". The ceiling (every training case with its complete labels, as long): {ceiling:.3f} ± {ceiling_sd:.3f}"
        )
        text += (
            (
                f", {room:+.3f} over the teacher trained as long: the loop took {delta / room:.0%} of that room"
                if delta > 0
                else f", {room:+.3f} over the teacher trained as long: the loop took none of that room"
            )
            if room > max(spread, ceiling_sd)
            else f", {room:+.3f} over the teacher trained as long: within the spread, so no loop can beat it here"
        )
    return text + "."
