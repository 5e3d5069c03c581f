"""Context-aware tumour CutMix on tiny volumes: what is cut, where it is pasted, how the
target marks the paste, and that a pool survives its file form."""

import numpy as np
import pytest
import torch

from hybridlabel.models.cutmix import (
    PASTED,
    cut_objects,
    paste,
    paste_centre,
    paste_random,
    pool_arrays,
    pool_from_arrays,
)
from hybridlabel.models.nnunet.losses import PartialLabelLoss, pasted_target

TUMOUR, LIVER, KIDNEY = 14, 1, 2


class Fixed:
    """An rng that always draws the first option (and 0.0): placements are predictable."""

    def choice(self, n):
        return 0

    def random(self):
        return 0.0


def donor():
    """A 20 x 30 x 30 case: liver block with a 2 x 3 x 3 tumour inside, a kidney block apart."""
    seg = np.zeros((20, 30, 30), dtype=np.int8)
    seg[5:15, 5:20, 5:20] = LIVER
    seg[9:11, 10:13, 10:13] = TUMOUR
    seg[2:4, 25:28, 25:28] = TUMOUR  # 18 voxels, next to no organ
    seg[0, 0, :] = -1  # nnU-Net's outside-the-crop marker
    image = np.arange(20 * 30 * 30, dtype=np.float32).reshape(1, 20, 30, 30)
    return image, seg


def test_each_tumour_is_cut_with_its_margin_and_host_organ():
    image, seg = donor()
    objects = cut_objects(
        "d1", image, seg, TUMOUR, [LIVER, KIDNEY], (1.0, 1.0, 1.0), ((2, 2), (3, 3)), 10, None, 5.0, Fixed()
    )
    assert len(objects) == 2
    liver_tumour = next(o for o in objects if o.record["host_organ"] == LIVER)
    # component z 9-10, y/x 10-12; margins 2 along z, 3 in-plane
    assert liver_tumour.record["box"] == [[7, 13], [7, 16], [7, 16]]
    assert liver_tumour.label.shape == (6, 9, 9) and liver_tumour.image.shape == (1, 6, 9, 9)
    np.testing.assert_array_equal(liver_tumour.image, image[:, 7:13, 7:16, 7:16])
    assert (liver_tumour.label == TUMOUR).sum() == 18 and liver_tumour.record["voxels"] == 18
    assert liver_tumour.record["tumor_slices"] == [2, 3]
    other = next(o for o in objects if o is not liver_tumour)
    assert other.record["host_organ"] == "extra_organ" and other.label.min() >= 0  # -1 became background


def test_the_pool_filters_by_size_and_host_organ():
    image, seg = donor()
    args = ("d1", image, seg, TUMOUR, [LIVER, KIDNEY], (1.0, 1.0, 1.0), ((0, 0), (0, 0)))
    assert len(cut_objects(*args, 19, None, 5.0, Fixed())) == 0  # both tumours have 18 voxels
    kept = cut_objects(*args, 10, [LIVER], 5.0, Fixed())
    assert [o.record["host_organ"] for o in kept] == [LIVER]


def test_a_known_object_lands_centred_on_a_known_voxel_and_marks_its_box():
    image, seg = donor()
    obj = cut_objects("d1", image, seg, TUMOUR, [LIVER], (1.0, 1.0, 1.0), ((1, 1), (1, 1)), 10, [LIVER], 5.0, Fixed())[
        0
    ]
    patch_image = np.full((1, 12, 16, 16), -5.0, dtype=np.float32)
    patch_seg = np.zeros((1, 12, 16, 16), dtype=np.int16)
    patch_seg[0, 2:10, 2:14, 2:14] = KIDNEY  # the host organ is not in the patch: any organ will do
    centre = paste_centre(patch_seg[0], obj.record["host_organ"], [LIVER, KIDNEY], Fixed(), "any_organ")
    assert centre == (2, 2, 2)  # the first kidney voxel
    assert paste_centre(patch_seg[0], LIVER, [LIVER, KIDNEY], Fixed(), "host_organ") is None  # no liver, no paste
    patch_seg[0, 9, 12, 13] = LIVER
    assert paste_centre(patch_seg[0], LIVER, [LIVER, KIDNEY], Fixed(), "host_organ") == (9, 12, 13)
    assert paste_centre(patch_seg[0], "extra_organ", [LIVER, KIDNEY], Fixed(), "host_organ") == (2, 2, 2)
    patch_seg[0, 9, 12, 13] = KIDNEY
    box = paste(patch_image, patch_seg[0], obj, (6, 8, 8), Fixed())
    # object 4 x 5 x 5 centred on (6, 8, 8): z 4-8, y/x 6-11
    assert box == (slice(4, 8), slice(6, 11), slice(6, 11))
    np.testing.assert_array_equal(patch_image[0, 4:8, 6:11, 6:11], obj.image[0])
    np.testing.assert_array_equal(patch_seg[0, 4:8, 6:11, 6:11], obj.label + PASTED)
    outside = np.ones_like(patch_seg[0], dtype=bool)
    outside[box] = False
    assert (patch_image[0][outside] == -5).all() and (patch_seg[0][outside] < PASTED).all()


def test_a_paste_at_the_border_is_clipped_and_2d_patches_get_a_tumour_slice():
    image, seg = donor()
    obj = cut_objects("d1", image, seg, TUMOUR, [LIVER], (1.0, 1.0, 1.0), ((1, 1), (1, 1)), 10, [LIVER], 5.0, Fixed())[
        0
    ]
    patch_image = np.zeros((1, 8, 8), dtype=np.float32)
    patch_seg = np.full((8, 8), LIVER, dtype=np.int16)
    box = paste(patch_image, patch_seg, obj, (0, 7), Fixed())
    assert box == (slice(0, 3), slice(5, 8))  # 5 x 5 slice centred on a corner: the part inside
    z = obj.record["tumor_slices"][0]
    np.testing.assert_array_equal(patch_seg[0:3, 5:8], obj.label[z, 2:5, 0:3] + PASTED)
    assert (obj.label[z] == TUMOUR).any()


def test_no_organ_in_the_patch_means_no_paste():
    image, seg = donor()
    pool = cut_objects("d1", image, seg, TUMOUR, [LIVER], (1.0, 1.0, 1.0), ((1, 1), (1, 1)), 10, None, 5.0, Fixed())
    patch_seg = np.zeros((6, 6, 6), dtype=np.int16)
    assert paste_random(np.zeros((1, 6, 6, 6), np.float32), patch_seg, pool, [LIVER], Fixed(), "any_organ") is None
    assert (patch_seg == 0).all()


def test_a_pool_round_trips_through_plain_arrays(tmp_path):
    image, seg = donor()
    pool = cut_objects(
        "d1", image, seg, TUMOUR, [LIVER], (1.0, 1.0, 1.0), ((1, 2), (1, 3)), 10, None, 5.0, np.random.default_rng(0)
    )
    np.savez(tmp_path / "pool.npz", **pool_arrays(pool, TUMOUR))
    with np.load(tmp_path / "pool.npz", allow_pickle=False) as arrays:
        back, tumour = pool_from_arrays(arrays)
    assert tumour == TUMOUR and [o.record for o in back] == [o.record for o in pool]
    for a, b in zip(back, pool):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)


def test_the_loss_annotates_the_tumour_inside_the_pasted_box_only():
    """A recipient that does not annotate the tumour: outside the box a tumour prediction is
    unknown (pooled with background, no loss); inside, it is ground truth."""
    n_classes, tumour = 3, 2
    target = torch.zeros((1, 1, 4, 1, 1), dtype=torch.int16)
    target[0, 0, 2:, 0, 0] = torch.tensor([tumour, 0], dtype=torch.int16) + PASTED  # box: voxels 2 and 3
    annotated = torch.tensor([[True, True, False]])
    decoded, mask = pasted_target(target, annotated, tumour)
    assert decoded[0, 0, :, 0, 0].tolist() == [0, 0, tumour, 0]
    assert mask.shape == (1, n_classes, 4, 1, 1)
    assert mask[0, tumour, :, 0, 0].tolist() == [False, False, True, True]
    loss = PartialLabelLoss("target_adaptive")
    logits = torch.zeros((1, n_classes, 4, 1, 1))
    logits[0, tumour, 0] = 8.0  # a confident tumour outside the box: unknown there, pooled with background
    base = loss(torch.zeros_like(logits), decoded, mask)
    assert loss(logits, decoded, mask) <= base
    # had the whole sample been marked tumour-annotated, the same prediction would be punished
    whole = torch.tensor([[True, True, True]])
    assert loss(logits, decoded, whole) > loss(torch.zeros_like(logits), decoded, whole) + 0.1
    inside = torch.zeros_like(logits)
    inside[0, tumour, 2] = 8.0  # the pasted tumour predicted: better than predicting nothing there
    assert loss(inside, decoded, mask) < base - 0.1
    wrong = torch.zeros_like(logits)
    wrong[0, tumour, 3] = 8.0  # tumour where the box says background: punished
    assert loss(wrong, decoded, mask) > base + 0.1


def test_a_target_without_a_paste_is_left_as_it_is():
    target = torch.ones((2, 1, 3, 3), dtype=torch.int16)
    annotated = torch.ones((2, 4), dtype=torch.bool)
    out, mask = pasted_target(target, annotated, 3)
    assert out is target and mask is annotated


@pytest.mark.parametrize("batch_dice", [False, True])
def test_a_voxel_mask_equal_everywhere_gives_the_sample_mask_loss(batch_dice):
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 1, 5, 6))
    annotated = torch.tensor([[True, True, False, True], [True, False, True, True]])
    loss = PartialLabelLoss("target_adaptive", batch_dice=batch_dice)
    voxel = annotated[:, :, None, None].expand(2, 4, 5, 6)
    assert torch.isclose(loss(logits, target, annotated), loss(logits, target, voxel))
