"""Partial-label losses: Dice + cross-entropy where each sample's unannotated classes
are not punished as background (torch; no files, no Prefect).

`target_adaptive`: the probabilities of the unannotated classes are summed into
background before Dice + CE (the target-adaptive loss of partially labeled organ
segmentation). `merge_max`: the largest logit among background and the unannotated
classes stands for background, the unannotated channels are dropped. Both are computed
in log space, so no probability is ever clipped. `annotated` is a (B, C) boolean
tensor per sample, or (B, C, *spatial) per voxel (a pasted tumour is annotated inside its
box only: models/cutmix.py); background is always treated as annotated; None = all
annotated.

`hidden_tumor` (organs+tumour rounds): (tumour id, host organs). A case whose labels do not
annotate the tumour drew each tumour as the organ around it (FLARE22's organ labels, the
phantom's strong cases, `simulate-partial`). On such a case a voxel labelled as a host organ
(one annotated tumours lie in) says "this organ or a tumour in it", so the loss scores
log(q_organ + q_tumor) there; everywhere else the case says "no tumour" (background and
the other organs are drawn as they are) and the tumour's probability is punished, but the
case adds nothing to the tumour's Dice (it cannot say where its tumours are). Without
this, every strong and unlabeled case teaches that tumours are organ tissue, against the
cases that annotate them; pooling the tumour into background instead lets it grow into
every dark structure (measured: docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from hybridlabel.models.cutmix import PASTED

Mode = Literal["target_adaptive", "merge_max"]


def _expand(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    return mask if mask.ndim == ndim else mask.reshape(mask.shape + (1,) * (ndim - 2))


def pasted_target(target: torch.Tensor, annotated: torch.Tensor, tumor_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A training target with CutMix boxes (values label + PASTED) decoded, and the mask
    made voxel-wise with the tumour class annotated inside the boxes; unchanged when
    nothing was pasted."""
    box = target >= PASTED
    if not bool(box.any()):
        return target, annotated
    target = torch.where(box, target - PASTED, target)
    voxel = (
        _expand(annotated.bool(), target.ndim).expand(target.shape[0], annotated.shape[1], *target.shape[2:]).clone()
    )
    voxel[:, tumor_id] |= box[:, 0]
    return target, voxel


def partial_log_probs(logits: torch.Tensor, annotated: torch.Tensor, mode: Mode) -> torch.Tensor:
    """(B, C, ...) log-probabilities over {background, annotated classes}; -inf on the
    unannotated channels."""
    ann = annotated.clone().bool()
    ann[:, 0] = True
    background_like = _expand(~ann, logits.ndim).clone()
    background_like[:, 0] = True  # background and every unannotated class
    neg_inf = torch.finfo(logits.dtype).min
    pooled = logits.masked_fill(~background_like, neg_inf)
    drop = _expand(~ann, logits.ndim).expand_as(logits)
    if mode == "target_adaptive":
        lse_all = torch.logsumexp(logits, dim=1, keepdim=True)
        log_q = logits - lse_all
        log_q = torch.cat([torch.logsumexp(pooled, dim=1, keepdim=True) - lse_all, log_q[:, 1:]], dim=1)
    elif mode == "merge_max":
        z = torch.cat([pooled.amax(dim=1, keepdim=True), logits[:, 1:]], dim=1)
        z = z.masked_fill(drop, neg_inf)
        log_q = torch.log_softmax(z, dim=1)
    else:
        raise ValueError(f"unknown partial-label mode {mode!r}")
    return log_q.masked_fill(drop, float("-inf"))


def hidden_tumor_places(annotated: torch.Tensor, target: torch.Tensor, tumor_id: int) -> torch.Tensor:
    """Where the tumour is hidden in the organs, shaped as `target`: the samples (or, inside a
    CutMix patch, the voxels outside its box) that do not annotate the tumour."""
    hidden = ~annotated[:, tumor_id].bool()
    return hidden.reshape(hidden.shape + (1,) * (target.ndim - hidden.ndim)).expand_as(target)


def tumor_counts_as_organ(
    log_q: torch.Tensor, logits: torch.Tensor, target: torch.Tensor, at: torch.Tensor, tumor_id: int
) -> torch.Tensor:
    """`log_q` with the target organ's log-probability raised to log(q_organ + q_tumor) `at`
    the given voxels. Both modes normalise the organ's logit by one constant Z per voxel, so
    log(q_organ + q_tumor) = logaddexp(logit_organ, logit_tumor) - logit_organ + log q_organ."""
    if not bool(at.any()):
        return log_q
    own = torch.gather(logits, 1, target[:, None])[:, 0]
    current = torch.gather(log_q, 1, target[:, None])[:, 0]
    raised = current + torch.logaddexp(own, logits[:, tumor_id]) - own
    return log_q.scatter(1, target[:, None], torch.where(at, raised, current)[:, None])


class PartialLabelLoss(nn.Module):
    """CE + soft Dice (foreground classes a sample annotates) on partial log-probabilities.

    `batch_dice` (nnU-Net's plans: true for 2d): one Dice per class over the batch's
    samples that annotate it, as nnU-Net pools the batch. Per sample, a small organ that
    a 2D patch misses scores Dice ~0 on that patch whatever the network predicts there,
    and most patches miss it: the loss then mostly teaches the network not to predict it."""

    def __init__(
        self,
        mode: Mode,
        ignore_label: int | None = None,
        smooth: float = 1e-5,
        batch_dice: bool = False,
        hidden_tumor: tuple[int, tuple[int, ...]] | None = None,
    ):
        super().__init__()
        self.mode, self.ignore_label, self.smooth, self.batch_dice = mode, ignore_label, smooth, batch_dice
        self.hidden_tumor = hidden_tumor  # (tumour id, host organs): module doc

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, c = logits.shape[:2]
        if annotated is None:
            annotated = torch.ones((b, c), dtype=torch.bool, device=logits.device)
        ann = annotated.to(logits.device).bool().clone()
        ann[:, 0] = True
        t = target[:, 0].long()
        valid = torch.ones_like(t, dtype=torch.bool) if self.ignore_label is None else t != self.ignore_label
        hidden = None
        if self.hidden_tumor is not None and self.hidden_tumor[0] < c:
            tumor_id, hosts = self.hidden_tumor
            hidden = hidden_tumor_places(ann, t, tumor_id)
            valid &= ~(hidden & (t == tumor_id))  # a tumour label the case does not vouch for says nothing
            ann[:, tumor_id] = True  # a case that does not annotate the tumour still says where it is not
        t = torch.where(valid, t, torch.zeros_like(t))
        # a class the sample does not annotate cannot be a target: it is unknown, count it as background
        if ann.ndim == 2:
            t_ann = torch.gather(ann, 1, t.reshape(b, -1)).reshape(t.shape)
        else:
            t_ann = torch.gather(ann, 1, t[:, None])[:, 0]
        t = torch.where(t_ann, t, torch.zeros_like(t))
        log_q = partial_log_probs(logits.float(), ann, self.mode)
        if hidden is not None:
            in_host = hidden & torch.isin(t, torch.as_tensor(list(hosts), device=t.device))
            log_q = tumor_counts_as_organ(log_q, logits.float(), t, in_host, tumor_id)
        picked = torch.gather(log_q, 1, t[:, None])[:, 0]
        n_valid = valid.sum().clamp_min(1)
        ce = -(picked * valid).sum() / n_valid
        q = log_q.exp() * valid[:, None]
        if hidden is not None:  # the tumour inside a host organ is counted as the organ, not twice
            q = torch.cat([q[:, :tumor_id], (q[:, tumor_id] * ~in_host)[:, None], q[:, tumor_id + 1 :]], dim=1)
        onehot = torch.zeros_like(q).scatter_(1, t[:, None], 1.0) * valid[:, None]
        axes = tuple(range(2, logits.ndim))
        intersect = (q * onehot).sum(axes)
        denom = q.sum(axes) + onehot.sum(axes)
        fg = ann.clone() if ann.ndim == 2 else ann.flatten(2).any(-1)
        fg[:, 0] = False
        if hidden is not None:  # no tumour Dice where the tumours are all hidden (a pasted box shows some)
            fg[:, tumor_id] = ~hidden.flatten(1).all(-1)
        if self.batch_dice:  # pooled over the samples that annotate the class
            intersect, denom = (intersect * fg).sum(0, keepdim=True), (denom * fg).sum(0, keepdim=True)
            fg = fg.any(0, keepdim=True)
        dice = (2 * intersect + self.smooth) / (denom + self.smooth).clamp_min(1e-8)
        dice_loss = -(dice * fg).sum() / fg.sum().clamp_min(1)
        return ce + dice_loss
