"""The fast path's pure parts: body box, slice-wise logit resampling, memory-time area."""

import numpy as np
import torch

from hybridlabel.models.nnunet.fast_predictor import BODY_HU, body_box, logits_to_labels
from hybridlabel.tasks.model.efficiency import MemorySampler, memory_time_area


def test_body_box_finds_the_body_and_keeps_a_margin():
    ct = np.full((20, 64, 64), -1000.0, dtype=np.float32)
    ct[4:16, 20:40, 10:50] = 40.0  # the body
    ct[0, 0, 0] = 500.0  # a bright speck in the air: not the largest component
    box = body_box(ct, (2.0, 1.0, 1.0), margin_mm=4.0)
    inside = np.zeros_like(ct, dtype=bool)
    inside[box] = True
    assert inside[4:16, 20:40, 10:50].all()  # the body is never cut
    assert not inside[0, 0, 0] and inside.sum() < ct.size * 0.6  # the air mostly is


def test_body_box_of_an_all_air_scan_is_the_whole_scan():
    ct = np.full((6, 8, 8), -1000.0, dtype=np.float32)
    assert body_box(ct, (1, 1, 1)) == (slice(0, 6), slice(0, 8), slice(0, 8))
    assert BODY_HU < 0


def test_slicewise_resampling_equals_torch_trilinear():
    torch.manual_seed(0)
    logits = torch.randn(5, 7, 9, 11)
    shape = (17, 20, 23)
    ours = logits_to_labels(logits, shape)[0]
    ref = torch.nn.functional.interpolate(logits[None], size=shape, mode="trilinear", align_corners=False)[0]
    ref = ref.argmax(0).numpy().astype(np.uint8)
    assert ours.shape == shape and ours.dtype == np.uint8
    assert (ours == ref).mean() > 0.999  # identical up to float rounding at exact ties


def test_memory_sampler_records_ram_and_area():
    assert memory_time_area([100.0, 200.0, 300.0], 0.1) == 60.0
    with MemorySampler(gpu=lambda: 50.0, interval_s=0.05) as sampler:
        block = np.ones(20_000_000, dtype=np.uint8)  # 20 MB held for a while
        import time

        time.sleep(0.3)
        del block
    record = sampler.record()
    assert record["samples"] >= 4 and record["peak_ram_mb"] > 20
    assert record["peak_gpu_mb"] == 50.0
    assert abs(record["gpu_memory_time_area_mb_s"] - 50.0 * 0.05 * len(sampler.gpu_mb)) < 1e-6
    assert record["wall_time_s"] >= 0.3
