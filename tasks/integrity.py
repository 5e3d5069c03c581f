"""Is a committed round intact on disk: its model, and the labels it trained on?"""

from __future__ import annotations

from pathlib import Path

from data_registry.store import Registry
from tasks.imageio import sha256_path


def round_problems(workdir: Path, round_no: int) -> list[str]:
    """One line per problem; empty when the round is complete and its files match the registry."""
    reg = Registry(workdir)
    row = reg.round_row(round_no)
    if not row:
        return [f"round {round_no} is not in the registry"]
    if not reg.is_complete(round_no):
        return [f"round {round_no} is {row['status']}, not completed"]
    problems = []
    model = row.get("model_dir")
    if row.get("kind") in ("teacher", "student"):
        if not model or not (Path(model) / "fold_all" / "checkpoint_final.pth").exists():
            problems.append(f"round {round_no}'s model {model} is missing")
    cases = reg.read("cases", round_no)
    for case in cases.to_dict("records"):
        path, sha = case.get("hybrid_label_path"), case.get("hybrid_label_sha256")
        if path and sha and (not Path(path).exists() or sha256_path(Path(path)) != sha):
            problems.append(f"case {case['case_id']}: hybrid label {path} is missing or changed")
    return problems
