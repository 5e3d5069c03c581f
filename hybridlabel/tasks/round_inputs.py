"""What a round needs before it starts: its parent round complete, with its model on disk.
One check for the pipeline's start, each student round and the export."""

from __future__ import annotations

from pathlib import Path

from hybridlabel.data_registry.store import Registry
from hybridlabel.models.nnunet.identity import checkpoint_path


class RoundError(RuntimeError):
    """A round cannot start: its parent is missing or incomplete, or its input is gone."""


def parent_model(workdir: Path, round_no: int) -> str:
    """The model folder of round `round_no`, which must be complete with its checkpoint."""
    reg = Registry(Path(workdir))
    row = reg.round_row(round_no)
    if not reg.is_complete(round_no) or not row or not row.get("model_dir"):
        raise RoundError(
            f"round {round_no} is not complete with a model in {workdir}; resume from it or an "
            f"earlier round (`hybridlabel status --workdir {workdir}`, then "
            f"`hybridlabel resume --round {round_no} --workdir {workdir}`)"
        )
    checkpoint = checkpoint_path(row["model_dir"])
    if not checkpoint.exists():
        raise RoundError(
            f"round {round_no}'s model {checkpoint} is missing; redo it with "
            f"`hybridlabel resume --round {round_no} --workdir {workdir}`"
        )
    return row["model_dir"]
