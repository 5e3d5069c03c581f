"""A student's first weights from its parent's (torch tensors in, tensors out; no files).

nnU-Net's `-pretrained_weights` drops the segmentation heads (`.seg_layers.`) always, so
a student with the very classes of its teacher had to learn its output mapping again
within its budget (on the demo's 90-second students: the organ+tumour student lost the
pancreas, 0.82 -> 0.12). Here every tensor whose name and shape match is carried over,
and a head whose class count differs keeps the rows of the classes both share (class ids
are the same label values in every round; the tumour is appended after the organs), so
only a new class starts from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

HEAD = ".seg_layers."


def warm_start_state(
    student: Mapping[str, torch.Tensor], parent: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The student's state with the parent's weights carried in, and the names of the
    heads only partly carried. Raises ValueError when the bodies differ (another network)."""
    out, partial = {}, []
    for name, mine in student.items():
        theirs = parent.get(name)
        if theirs is not None and theirs.shape == mine.shape:
            out[name] = theirs.detach().clone().to(mine.dtype)
        elif HEAD in name and theirs is not None and theirs.shape[1:] == mine.shape[1:]:
            rows = min(theirs.shape[0], mine.shape[0])
            carried = mine.detach().clone()
            carried[:rows] = theirs[:rows].to(mine.dtype)
            out[name], partial = carried, partial + [name]
        elif HEAD in name:
            out[name] = mine
        else:
            found = "missing" if theirs is None else f"{tuple(theirs.shape)} in the parent"
            raise ValueError(
                f"the parent model's network differs from the student's at {name} "
                f"({tuple(mine.shape)} here, {found}); a student starts from a parent of the "
                f"same network and configuration, or set init_from_parent: false"
            )
    return out, partial
