"""Is a committed round intact on disk: its model, and the labels it trained on?"""

from __future__ import annotations

import os
from pathlib import Path

from hybridlabel.data_registry.store import Registry
from hybridlabel.models.nnunet.identity import checkpoint_path
from hybridlabel.tasks.files.imageio import sha256_path


def round_problems(workdir: Path, round_no: int, hashes: bool = True) -> list[str]:
    """One line per problem; empty when the round is complete and its files match the
    registry. `hashes=False` checks only that the files exist (fast enough for `status`
    on thousands of cases); `run` and `resume` compare every sha256."""
    reg = Registry(workdir)
    row = reg.round_row(round_no)
    if not row:
        return [f"round {round_no} is not in the registry"]
    if not reg.is_complete(round_no):
        if row["status"] == "completed":  # its rows are committed, its cases partition is gone
            return [
                f"round {round_no} is marked completed but its cases partition is missing from {reg.root}; "
                f"redo it with `hybridlabel resume --round {round_no}`"
            ]
        return [f"round {round_no} is {row['status']}, not completed"]
    problems = []
    model = row.get("model_dir")
    if row.get("kind") in ("teacher", "student"):
        if not model or not checkpoint_path(model).exists():
            problems.append(f"round {round_no}'s model {model} is missing")
    cases = reg.read("cases", round_no, columns=["case_id", "hybrid_label_path", "hybrid_label_sha256"])
    for case_id, path, sha in zip(cases["case_id"], cases["hybrid_label_path"], cases["hybrid_label_sha256"]):
        if not (path and sha):
            continue
        if not os.path.exists(path):
            problems.append(f"case {case_id}: hybrid label {path} is missing")
        elif hashes and sha256_path(Path(path)) != sha:
            problems.append(f"case {case_id}: hybrid label {path} has changed since the round")
    return problems


def completed_rounds_problems(workdir: Path, before: int, hashes: bool = True) -> list[str]:
    """Problems of the completed rounds below `before`, each line naming its round and the fix."""
    reg = Registry(workdir)
    out = []
    for r in range(before):
        if reg.is_complete(r):
            problems = round_problems(workdir, r, hashes)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                out.append(
                    f"round {r} is no longer intact: {problems[0]}{more}; "
                    f"redo it with `hybridlabel resume --round {r} --workdir {workdir}`"
                )
    return out
