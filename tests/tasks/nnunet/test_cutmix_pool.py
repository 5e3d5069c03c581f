"""The CutMix pool file of a real round (the shared pipeline run): what it holds, and that
it is cut again only when its inputs change."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from hybridlabel.data_registry.store import Registry
from hybridlabel.models.config import CutMixConfig, LabelMapConfig
from hybridlabel.models.cutmix import pool_from_arrays
from hybridlabel.tasks.nnunet.cutmix_pool import write_cutmix_pool

pytestmark = pytest.mark.slow  # reads the shared pipeline run (`finished`): `pytest -m "not slow"` skips it


def _round_two(finished):
    reg = Registry(finished["work"])
    cases = reg.read("cases", 2)
    donors = cases[cases["tumor_objects"].notna()]
    preprocessed = next((Path(finished["work"]) / "nnunet" / "preprocessed").glob("Dataset*_r2"))
    return (
        preprocessed,
        [{"case_id": r["case_id"], "image_sha256": r["image_sha256"]} for r in donors.to_dict("records")],
        donors,
    )


def test_the_pool_holds_the_registrys_objects_and_is_reused_until_its_inputs_change(finished, tmp_path):
    preprocessed, donors, rows = _round_two(finished)
    pool = preprocessed / "cutmix_pool_2d.npz"
    with np.load(pool, allow_pickle=False) as arrays:
        objects, tumour = pool_from_arrays(arrays)
    recorded = [o for text in rows["tumor_objects"] for o in json.loads(text)]
    assert tumour == 14 and len(objects) == len(recorded) > 0
    assert sorted(o.record["voxels"] for o in objects) == sorted(o["voxels"] for o in recorded)
    for o in objects:
        assert (o.label == 14).sum() >= o.record["voxels"]  # the whole component is inside its crop
        assert o.image.shape[1:] == o.label.shape and o.record["tumor_slices"]

    # the round's own settings (tests/conftest.py) again: the file is reused as it is
    config = CutMixConfig(probability=1.0, margins=((0, 10), (4, 12)), placement="any_organ", min_voxels=1)
    before = os.stat(pool).st_mtime_ns
    again, per_case = write_cutmix_pool(preprocessed, "2d", donors, config, LabelMapConfig(), 5.0, 3)
    assert again == pool and os.stat(pool).st_mtime_ns == before
    assert {c: json.loads(t) for c, t in zip(rows["case_id"], rows["tumor_objects"])} == per_case

    # one donor fewer: cut again, without its objects
    fewer = donors[1:]
    _, per_case = write_cutmix_pool(preprocessed, "2d", fewer, config, LabelMapConfig(), 5.0, 3)
    assert os.stat(pool).st_mtime_ns != before and set(per_case) == {d["case_id"] for d in fewer}
    with np.load(pool, allow_pickle=False) as arrays:
        assert {o.record["case_id"] for o in pool_from_arrays(arrays)[0]} <= set(per_case)
    # and back: the registry's objects again (the margins are drawn from the seed and the case id)
    _, per_case = write_cutmix_pool(preprocessed, "2d", donors, config, LabelMapConfig(), 5.0, 3)
    assert {c: json.loads(t) for c, t in zip(rows["case_id"], rows["tumor_objects"])} == per_case
