"""The partial-label losses against values computed by hand (numpy, not the code under test)."""

import numpy as np
import pytest
import torch

from hybridlabel.models.nnunet.losses import PartialLabelLoss, partial_log_probs

# two voxels, three classes (0 background, 1 annotated, 2 unannotated)
LOGITS = np.array([[1.0, 2.0, 0.5], [0.2, 0.1, 3.0]])
TARGET = np.array([0, 1])
SMOOTH = 1e-5


def as_tensors():
    logits = torch.tensor(LOGITS.T, dtype=torch.float32).reshape(1, 3, 2, 1, 1)
    target = torch.tensor(TARGET).reshape(1, 1, 2, 1, 1)
    annotated = torch.tensor([[True, True, False]])
    return logits, target, annotated


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def expected_loss(q):
    """CE over both voxels + soft Dice of class 1 (the only annotated foreground class)."""
    ce = -np.mean([np.log(q[i, TARGET[i]]) for i in range(2)])
    onehot = (TARGET == 1).astype(float)
    dice = (2 * (q[:, 1] * onehot).sum() + SMOOTH) / (q[:, 1].sum() + onehot.sum() + SMOOTH)
    return ce - dice


def test_target_adaptive_sums_unannotated_probabilities_into_background():
    p = np.array([softmax(v) for v in LOGITS])
    q = np.stack([p[:, 0] + p[:, 2], p[:, 1], np.zeros(2)], axis=1)
    logits, target, annotated = as_tensors()
    got = partial_log_probs(logits, annotated, "target_adaptive").exp()[0, :, :, 0, 0].T.numpy()
    np.testing.assert_allclose(got, q, rtol=1e-5)
    loss = PartialLabelLoss("target_adaptive")(logits, target, annotated)
    assert loss.item() == pytest.approx(expected_loss(q), rel=1e-5)


def test_merge_max_uses_the_largest_background_like_logit():
    q = np.array([softmax(np.array([max(v[0], v[2]), v[1]])) for v in LOGITS])
    q = np.concatenate([q, np.zeros((2, 1))], axis=1)
    logits, target, annotated = as_tensors()
    got = partial_log_probs(logits, annotated, "merge_max").exp()[0, :, :, 0, 0].T.numpy()
    np.testing.assert_allclose(got, q, rtol=1e-5)
    loss = PartialLabelLoss("merge_max")(logits, target, annotated)
    assert loss.item() == pytest.approx(expected_loss(q), rel=1e-5)


def test_fully_annotated_reduces_to_softmax_ce_plus_dice():
    logits, target, _ = as_tensors()
    everything = torch.ones(1, 3, dtype=torch.bool)
    p = np.array([softmax(v) for v in LOGITS])
    ce = -np.mean([np.log(p[i, TARGET[i]]) for i in range(2)])
    onehot = np.eye(3)[TARGET]
    dice = [
        (2 * (p[:, c] * onehot[:, c]).sum() + SMOOTH) / (p[:, c].sum() + onehot[:, c].sum() + SMOOTH) for c in (1, 2)
    ]
    for mode in ("target_adaptive", "merge_max"):
        loss = PartialLabelLoss(mode)(logits, target, everything)
        assert loss.item() == pytest.approx(ce - np.mean(dice), rel=1e-5)


def test_ignore_label_voxels_do_not_count():
    logits, target, annotated = as_tensors()
    ignored = target.clone()
    ignored[0, 0, 1] = 3  # the second voxel is `ignore`
    loss = PartialLabelLoss("target_adaptive", ignore_label=3)(logits, ignored, annotated)
    p0 = softmax(LOGITS[0])
    ce = -np.log(p0[0] + p0[2])
    dice = SMOOTH / (p0[1] + SMOOTH)  # class 1 absent from the kept voxel
    assert loss.item() == pytest.approx(ce - dice, rel=1e-4)


def test_gradients_flow_and_unannotated_target_counts_as_background():
    logits, target, annotated = as_tensors()
    logits.requires_grad_(True)
    stray = target.clone()
    stray[0, 0, 0] = 2  # a class this sample does not annotate: unknown, taken as background
    loss = PartialLabelLoss("merge_max")(logits, stray, annotated)
    ref = PartialLabelLoss("merge_max")(logits, target, annotated)
    assert loss.item() == pytest.approx(ref.item())
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_batch_dice_pools_the_samples_that_annotate_a_class():
    """Two samples: class 1 present in the first only, annotated in both; class 2
    annotated in the second only. Batch Dice pools class 1 over both samples and class 2
    over the second; per-sample Dice averages three separate terms."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 1, 1)
    target = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0]]).reshape(2, 1, 4, 1, 1)
    annotated = torch.tensor([[True, True, False], [True, True, True]])
    q = partial_log_probs(logits, annotated, "target_adaptive").exp()[:, :, :, 0, 0].numpy()
    t = target[:, 0, :, 0, 0].numpy()
    t = np.where(annotated.numpy()[np.arange(2)[:, None], t], t, 0)
    ce = -np.mean([np.log(q[b, t[b, i], i]) for b in range(2) for i in range(4)])

    def dice(c, samples):
        inter = sum((q[b, c] * (t[b] == c)).sum() for b in samples)
        denom = sum(q[b, c].sum() + (t[b] == c).sum() for b in samples)
        return (2 * inter + SMOOTH) / (denom + SMOOTH)

    pooled = PartialLabelLoss("target_adaptive", batch_dice=True)(logits, target, annotated)
    assert pooled.item() == pytest.approx(ce - np.mean([dice(1, [0, 1]), dice(2, [1])]), rel=1e-5)
    per_sample = PartialLabelLoss("target_adaptive")(logits, target, annotated)
    assert per_sample.item() == pytest.approx(ce - np.mean([dice(1, [0]), dice(1, [1]), dice(2, [1])]), rel=1e-5)


def test_a_tumour_not_annotated_counts_as_its_host_organ_and_is_punished_elsewhere():
    """Class 2 as the tumour, class 1 a host organ: where the case does not annotate the
    tumour, the organ-labelled voxel scores q_organ + q_tumor, the background voxel punishes
    the tumour (it is not pooled into background), and the tumour has no Dice term."""
    p = np.array([softmax(v) for v in LOGITS])
    logits, target, annotated = as_tensors()
    hosted = np.stack([p[:, 0], p[:, 1] + np.array([0.0, p[1, 2]]), p[:, 2]], axis=1)
    loss = PartialLabelLoss("target_adaptive", hidden_tumor=(2, (1,)))(logits, target, annotated)
    assert loss.item() == pytest.approx(expected_loss(hosted), rel=1e-5)
    not_a_host = PartialLabelLoss("target_adaptive", hidden_tumor=(2, ()))(logits, target, annotated)
    assert not_a_host.item() == pytest.approx(expected_loss(p), rel=1e-5)
    everything = torch.ones(1, 3, dtype=torch.bool)  # annotated: the tumour is the tumour
    assert PartialLabelLoss("target_adaptive", hidden_tumor=(2, (1,)))(logits, target, everything).item() == (
        pytest.approx(PartialLabelLoss("target_adaptive")(logits, target, everything).item(), rel=1e-6)
    )


def test_a_tumour_label_the_case_does_not_annotate_is_ignored():
    logits, target, annotated = as_tensors()
    with_tumor = target.clone()
    with_tumor[0, 0, 0] = 2  # voxel 0 carries an unvouched tumour label
    loss = PartialLabelLoss("target_adaptive", hidden_tumor=(2, (1,)))
    p = np.array([softmax(v) for v in LOGITS])
    # only voxel 1 counts: CE of organ-or-tumour there, Dice of class 1 over voxel 1
    q1 = p[1, 1] + p[1, 2]
    dice = (2 * q1 + SMOOTH) / (q1 + 1 + SMOOTH)
    assert loss(logits, with_tumor, annotated).item() == pytest.approx(-np.log(q1) - dice, rel=1e-5)


def test_merge_max_keeps_organ_plus_tumour_a_probability():
    from hybridlabel.models.nnunet.losses import tumor_counts_as_organ

    logits, target, annotated = as_tensors()
    t = target[:, 0].long()
    log_q = partial_log_probs(logits, annotated, "merge_max")
    raised = tumor_counts_as_organ(log_q, logits, t, t == 1, 2).exp()[0, 1, 1, 0, 0].item()
    z = np.array([max(LOGITS[1, 0], LOGITS[1, 2]), LOGITS[1, 1]])
    expected = (np.exp(LOGITS[1, 1]) + np.exp(LOGITS[1, 2])) / np.exp(z).sum()
    assert raised == pytest.approx(expected, rel=1e-5) and raised <= 1.0 + 1e-6
