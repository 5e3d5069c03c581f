"""The round's CutMix pool: every ground-truth tumour of the round's donor cases cut out
with its surroundings from the preprocessed training data (models/cutmix.py), written
once per round beside nnU-Net's preprocessed data, reused while its inputs are the same."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from hybridlabel.models.config import CutMixConfig, LabelMapConfig
from hybridlabel.models.cutmix import cut_objects, pool_arrays
from hybridlabel.models.nnunet.plans import BASE_PLANS
from hybridlabel.tasks.files.atomic import atomic_write_bytes, atomic_write_text
from hybridlabel.tasks.nnunet.train import label_array_sha256


def _data_folder(preprocessed: Path, configuration: str) -> tuple[Path, tuple[float, float, float]]:
    """The configuration's preprocessed data and its (z, y, x) spacing in mm (a 2d
    configuration's z spacing is the 3d_fullres one: only distances in mm need it)."""
    plans = json.loads((preprocessed / f"{BASE_PLANS}.json").read_text())["configurations"]
    spacing = list(plans[configuration]["spacing"])
    if len(spacing) == 2:
        spacing = [plans.get("3d_fullres", {}).get("spacing", [1.0])[0]] + spacing
    return preprocessed / plans[configuration]["data_identifier"], tuple(float(s) for s in spacing)


def write_cutmix_pool(
    preprocessed: Path,
    configuration: str,
    donors: list[dict],
    cutmix: CutMixConfig,
    labels: LabelMapConfig,
    attribution_mm: float,
    seed: int,
) -> tuple[Path, dict[str, list[dict]]]:
    """Cut the tumour objects of `donors` ({case_id, image_sha256}); returns the pool file
    and, per donor, the records of its objects (what the registry keeps)."""
    import blosc2

    data, spacing = _data_folder(Path(preprocessed), configuration)
    pool = Path(preprocessed) / f"cutmix_pool_{configuration}.npz"
    stamp = pool.with_suffix(".json")
    ids = sorted(d["case_id"] for d in donors)
    inputs = json.dumps(
        {
            "donors": {
                d["case_id"]: [d.get("image_sha256"), label_array_sha256(data / f"{d['case_id']}_seg.b2nd")]
                for d in donors
            },
            "cutmix": cutmix.model_dump(mode="json"),
            "tumor_id": labels.tumor_id,
            "attribution_mm": attribution_mm,
            "seed": seed,
            "spacing": spacing,
        },
        sort_keys=True,
    )
    if pool.exists() and stamp.exists() and json.loads(stamp.read_text()).get("inputs") == inputs:
        return pool, json.loads(stamp.read_text())["objects"]
    objects = []
    for case_id in ids:
        seg = np.asarray(blosc2.open(str(data / f"{case_id}_seg.b2nd"), mode="r")[:])[0]
        image = blosc2.open(str(data / f"{case_id}.b2nd"), mode="r")  # read only where objects are cut
        rng = np.random.default_rng([seed, int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16)])
        objects += cut_objects(
            case_id,
            image,
            seg,
            labels.tumor_id,
            labels.organ_ids,
            spacing,
            cutmix.margins,
            cutmix.min_voxels,
            cutmix.host_organs,
            attribution_mm,
            rng,
        )
    buffer = io.BytesIO()
    np.savez(buffer, **pool_arrays(objects, labels.tumor_id))
    atomic_write_bytes(pool, buffer.getvalue())
    per_case: dict[str, list[dict]] = {case_id: [] for case_id in ids}
    for o in objects:
        per_case[o.record["case_id"]].append(
            {k: v for k, v in o.record.items() if k not in ("case_id", "tumor_slices")}
        )
    atomic_write_text(stamp, json.dumps({"inputs": inputs, "objects": per_case}))
    return pool, per_case
