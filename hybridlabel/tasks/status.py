"""A workdir's rounds as the registry records them and the disk finds them now (what
`hybridlabel status` shows and the API's `status` returns)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hybridlabel.data_registry.frames import records


def status_dict(workdir: Path) -> dict:
    """Rounds as recorded, with what the disk says now: a `running` round whose pipeline
    is gone is `interrupted`; a completed round whose model or labels are gone is `damaged`
    (`problems` says what; files are checked for existence, `resume` compares hashes)."""
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.tasks.integrity import round_problems
    from hybridlabel.tasks.workdir import WorkdirLock

    def _rows(frame: pd.DataFrame) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "config_json"} for r in records(frame)]

    reg = Registry(workdir)
    rounds = _rows(reg.rounds())
    alive = WorkdirLock(workdir).held_by_live_process()
    for row in rounds:
        if row["status"] == "running" and not alive:
            row["status"] = "interrupted"
        elif row["status"] == "completed" and (problems := round_problems(workdir, row["round"], hashes=False)):
            row.update(status="damaged", problems=problems)
    superseded = _rows(reg.superseded_rounds())
    for gap in reg.round_gaps():  # a round whose rows vanished (e.g. a kill mid-write in older versions)
        rounds.append(
            {
                "round": gap,
                "name": None,
                "kind": None,
                "status": "damaged",
                "problems": [
                    f"round {gap} has no rounds row in {reg.root}; redo it with `hybridlabel resume --round {gap}`"
                ],
            }
        )
    rounds.sort(key=lambda r: r["round"])
    export = next(
        (r.get("model_dir") for r in reversed(rounds) if r.get("kind") == "export" and r.get("status") == "completed"),
        None,
    )
    reviews = {
        r: len(frame) for r in range(1, len(rounds) + 1) if (frame := reg.read_if_present("reviews", r)) is not None
    }
    return {"workdir": str(workdir), "rounds": rounds, "superseded": superseded, "export": export, "reviews": reviews}
