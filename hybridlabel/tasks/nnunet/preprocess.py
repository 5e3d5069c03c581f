"""Plan once, preprocess images once, re-preprocess only labels each round.

nnU-Net re-runs fingerprinting, planning and image preprocessing whenever a dataset
changes; between our rounds only the labels change. So:
- `plan_dataset`: nnU-Net's fingerprint + plans for the teacher's dataset (a subprocess);
- `preprocess_round`: for each case, the image is preprocessed once by nnU-Net's own
  DefaultPreprocessor into a cache (normalised, resampled data + properties + the
  cropped nonzero mask); the round's folder links that data and gets a freshly
  preprocessed label: transpose, crop, nonzero mask, seg resampling and foreground
  sampling exactly as nnU-Net's `run_case_npy` does them (the test checks equality).

Valid while the normalisation ignores the nonzero mask (CT normalisation does); with
`use_mask_for_norm` each case is preprocessed whole by nnU-Net instead, every round.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hybridlabel.models.intake import check_intensities, fingerprint_problem
from hybridlabel.models.nnunet.commands import nnunet_env, plan_command
from hybridlabel.models.nnunet.identity import NnunetDataset
from hybridlabel.models.nnunet.plans import BASE_PLANS, DEFAULT_CONFIGURATION, configuration_problem
from hybridlabel.tasks.files.atomic import atomic_write_bytes, atomic_write_text
from hybridlabel.tasks.files.content_store import dedupe
from hybridlabel.tasks.files.imageio import ImageReadError, read_image
from hybridlabel.tasks.nnunet.dataset import FILE_ENDING, TrainingCase, _link


class NnunetError(RuntimeError):
    """An nnU-Net subprocess failed; the message holds the tail of its output."""


def run_logged(cmd: list[str], env: dict[str, str], log: Callable[[str], None], cwd: Path | None = None) -> None:
    """Run a subprocess, stream its output line by line to `log`, raise on failure."""
    tail: list[str] = []
    with subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                log(line)
                tail = (tail + [line])[-15:]
    if proc.returncode != 0:
        raise NnunetError(f"{' '.join(cmd[:1] + cmd[-6:])} exited with {proc.returncode}: " + " | ".join(tail[-5:]))


def plan_dataset(
    root: Path, dataset_id: int, log: Callable[[str], None] = print, n_proc: int = 2, gpu_memory_gb: float | None = None
) -> Path:
    """Fingerprint and plans of a raw dataset (no preprocessing), made once for the planner's
    GPU memory target (None: nnU-Net's), which is recorded beside them; returns the plans file."""
    name = next((Path(root) / "raw").glob(f"Dataset{dataset_id:03d}_*")).name
    plans_file = Path(root) / "preprocessed" / name / f"{BASE_PLANS}.json"
    planner = plans_file.with_name(f"{BASE_PLANS}.planner.json")
    if plans_file.exists():
        # plans made without the record were made with nnU-Net's default target
        made = json.loads(planner.read_text())["gpu_memory_gb"] if planner.exists() else None
        if made != gpu_memory_gb:
            # the cached images, patches and trained models all follow the plans: never re-plan under them
            said = ["null" if gb is None else gb for gb in (made, gpu_memory_gb)]
            raise NnunetError(
                f"{plans_file} was planned for planner_gpu_memory_gb {said[0]}, the config asks "
                f"{said[1]}; set it back, or run in a new workdir"
            )
        check_fingerprint(Path(root), name)
        return plans_file
    run_logged(plan_command(dataset_id, n_proc, gpu_memory_gb), nnunet_env(root, dict(os.environ), n_proc=n_proc), log)
    check_fingerprint(Path(root), name)
    atomic_write_text(planner, json.dumps({"gpu_memory_gb": gpu_memory_gb}))
    return plans_file


def adopt_plans(source: NnunetDataset, target: NnunetDataset) -> Path:
    """Give `target` the plans (fingerprint, planner record) `source` was planned with, so that
    `plan_dataset` keeps them: a model trained on more cases then trains with the same batch,
    patch and normalisation as one planned on the source's (a student's plans are its
    teacher's the same way). Returns the plans file; NnunetError when the source has none."""
    plans_file, adopted = source.preprocessed / f"{BASE_PLANS}.json", target.preprocessed / f"{BASE_PLANS}.json"
    if not plans_file.is_file():
        raise NnunetError(f"{source.folder_name} has no plans in {source.preprocessed}; run its round first")
    plans = dict(json.loads(plans_file.read_text()), dataset_name=target.folder_name)
    if adopted.is_file():  # its cached data follow the plans it has: never swap them underneath
        if json.loads(adopted.read_text()) != plans:
            raise NnunetError(
                f"{target.folder_name} was planned otherwise than {source.folder_name}; use a new workdir"
            )
        return adopted
    target.preprocessed.mkdir(parents=True, exist_ok=True)
    for extra in ("dataset_fingerprint.json", f"{BASE_PLANS}.planner.json"):
        if (source.preprocessed / extra).is_file():
            atomic_write_text(target.preprocessed / extra, (source.preprocessed / extra).read_text())
    return atomic_write_text(adopted, json.dumps(plans, indent=1))


def check_fingerprint(root: Path, name: str) -> None:
    """Refuse a fingerprint whose intensities cannot normalise CT (it would turn every image
    of the data set into zeros), naming the training images responsible; the plans made from
    it are removed so that the next run plans again once they are fixed."""
    folder = root / "preprocessed" / name
    if not (folder / "dataset_fingerprint.json").is_file():  # plans made elsewhere: nnU-Net read no intensities
        return
    fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text())
    problem = fingerprint_problem(fingerprint.get("foreground_intensity_properties_per_channel") or {})
    if problem is None:
        return
    culprits = []
    for image in sorted((root / "raw" / name / "imagesTr").glob(f"*{FILE_ENDING}")):
        try:
            if check_intensities(sitk.GetArrayViewFromImage(read_image(image))):
                culprits.append(image.name[: -len(f"_0000{FILE_ENDING}")])
        except ImageReadError:
            culprits.append(image.name)
    for made in (folder / f"{BASE_PLANS}.json", folder / "dataset_fingerprint.json"):
        made.unlink(missing_ok=True)
    named = f"; cases: {', '.join(culprits[:10])}" if culprits else ""
    raise NnunetError(
        f"dataset {name}: {problem}{named}; fix or remove those images (the audit quarantines "
        "values outside the CT range) and run again"
    )


def _managers(plans: dict, dataset: dict, configuration: str):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(plans)
    return pm, pm.get_configuration(configuration), pm.get_label_manager(dataset)


def _cache_image(cache: Path, case: TrainingCase, image: Path, plans: dict, dataset: dict, configuration: str) -> None:
    """nnU-Net's image preprocessing of one case, done once: data, properties, mask."""
    from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice
    from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

    # the cache holds the image it was made from: a case whose dataset image changed (now a
    # reoriented copy, tasks/files/orient.py) is preprocessed again, never paired with new labels
    source = cache / f"{case.case_id}.source"
    made_from = str(Path(image).resolve())
    if (cache / f"{case.case_id}.pkl").exists() and source.is_file() and source.read_text() == made_from:
        return
    pm, cm, _ = _managers(plans, dataset, configuration)
    data, props = pm.image_reader_writer_class().read_images([str(image)])
    transposed = data.transpose([0, *[i + 1 for i in pm.transpose_forward]])
    pre = DefaultPreprocessor(verbose=False)
    out, _, props = pre.run_case_npy(data, None, props, pm, cm, dataset)
    mask = create_nonzero_mask(transposed)[bounding_box_to_slice(props["bbox_used_for_cropping"])]
    blocks, chunks = comp_blosc2_params(out.shape, tuple(cm.patch_size), 4)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".tmp-{case.case_id}"
    seg = np.zeros((1,) + out.shape[1:], np.int16)  # placeholder; labels are written per round
    nnUNetDatasetBlosc2.save_case(
        out.astype(np.float32, copy=False), seg, props, str(tmp), chunks=chunks, blocks=blocks
    )
    os.replace(f"{tmp}.b2nd", cache / f"{case.case_id}.b2nd")
    os.remove(f"{tmp}_seg.b2nd")
    buf = np.packbits(mask.ravel())
    np.save(cache / f"{case.case_id}_mask.npy", buf)
    atomic_write_bytes(cache / f"{case.case_id}_mask.json", json.dumps(list(mask.shape)).encode())
    atomic_write_bytes(source, made_from.encode())
    os.replace(f"{tmp}.pkl", cache / f"{case.case_id}.pkl")  # last: marks the case cached


def _load_mask(cache: Path, case_id: str) -> np.ndarray:
    shape = json.loads((cache / f"{case_id}_mask.json").read_text())
    bits = np.load(cache / f"{case_id}_mask.npy")
    return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)


def preprocess_label(label: Path, props: dict, mask: np.ndarray, plans: dict, dataset: dict, configuration: str):
    """nnU-Net's label path of `run_case_npy`, without touching the image data."""
    from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    pm, cm, lm = _managers(plans, dataset, configuration)
    seg, _ = pm.image_reader_writer_class().read_seg(str(label))
    seg = seg.transpose([0, *[i + 1 for i in pm.transpose_forward]])
    seg = np.copy(seg[(slice(None),) + bounding_box_to_slice(props["bbox_used_for_cropping"])])
    seg[(seg == 0) & ~mask[None]] = -1
    original_spacing = [props["spacing"][i] for i in pm.transpose_forward]
    target_spacing = list(cm.spacing)
    if len(target_spacing) < len(seg.shape[1:]):
        target_spacing = [original_spacing[0]] + target_spacing
    new_shape = compute_new_shape(seg.shape[1:], original_spacing, target_spacing)
    seg = cm.resampling_fn_seg(seg, new_shape, original_spacing, target_spacing)
    collect = list(lm.foreground_regions if lm.has_regions else lm.foreground_labels)
    if lm.has_ignore_label:
        collect.append([-1] + lm.all_labels)
    props = dict(props, class_locations=DefaultPreprocessor._sample_foreground_locations(seg, collect, verbose=False))
    seg = seg.astype(np.int16 if np.max(seg) > 127 else np.int8)
    return seg, props


def _write_seg(seg: np.ndarray, path_truncated: Path, patch_size) -> None:
    """The `_seg.b2nd` exactly as nnU-Net's `run_case_save` writes it (int16, its chunking)."""
    import blosc2
    from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

    seg = seg.astype(np.int16, copy=False)
    blocks, chunks = comp_blosc2_params(seg.shape, tuple(patch_size), seg.itemsize)
    codec, clevel = blosc2.Codec.LZ4HC, 5
    filters = [nnUNetDatasetBlosc2._select_filter(seg, blocks, chunks, codec, clevel)]
    tmp = path_truncated.with_name(f".tmp-{path_truncated.name}_seg.b2nd")
    blosc2.set_nthreads(1)
    blosc2.asarray(
        np.ascontiguousarray(seg),
        urlpath=str(tmp),
        chunks=chunks,
        blocks=blocks,
        cparams={"codec": codec, "filters": filters, "nthreads": 4, "clevel": clevel},
    )
    os.replace(tmp, path_truncated.with_name(f"{path_truncated.name}_seg.b2nd"))


def _preprocess_whole(
    data_dir: Path, case: TrainingCase, image: Path, label: Path, plans: dict, dataset: dict, configuration: str
) -> None:
    """nnU-Net's own preprocessing of image and label together (no reuse possible)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    pm, cm, _ = _managers(plans, dataset, configuration)
    for target in (
        data_dir / f"{case.case_id}.b2nd",
        data_dir / f"{case.case_id}_seg.b2nd",
        data_dir / f"{case.case_id}.pkl",
    ):
        # nnU-Net writes into existing files: drop a link into the image cache or the
        # content store first, so that the write cannot change what the link points to
        target.unlink(missing_ok=True)
    DefaultPreprocessor(verbose=False).run_case_save(
        str(data_dir / case.case_id), [str(image)], str(label), pm, cm, dataset
    )


def preprocess_round(
    root: Path,
    plans_file: Path,
    dataset_id: int,
    name: str,
    cases: list[TrainingCase],
    on_case: Callable[[str], None] | None = None,
    configuration: str = DEFAULT_CONFIGURATION,
    store: Path | None = None,
) -> Path:
    """Preprocessed folder of a round's dataset in `configuration`, reusing every cached
    image (the cache is per configuration: each has its own spacing). With a content
    `store`, a case's label files are kept once across rounds when they did not change."""
    plans = json.loads(Path(plans_file).read_text())
    if problem := configuration_problem(plans, configuration):
        raise NnunetError(problem)
    ds_name = NnunetDataset(Path(root), dataset_id, name).folder_name
    raw = Path(root) / "raw" / ds_name
    dataset = json.loads((raw / "dataset.json").read_text())
    config = plans["configurations"][configuration]
    # a normalisation that uses the nonzero mask ties the image data to the crop/seg path:
    # then each case is preprocessed whole by nnU-Net (no image cache), as nnU-Net would
    whole = any(config.get("use_mask_for_norm", []))
    target = Path(root) / "preprocessed" / ds_name
    data_dir = target / config["data_identifier"]
    cache = Path(root) / "image_cache" / f"{plans['dataset_name']}_{config['data_identifier']}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if Path(plans_file).parent != target:
        atomic_write_text(target / f"{BASE_PLANS}.json", json.dumps(dict(plans, dataset_name=ds_name), indent=1))
        fingerprint = Path(plans_file).parent / "dataset_fingerprint.json"
        if fingerprint.exists():
            shutil.copyfile(fingerprint, target / "dataset_fingerprint.json")
    atomic_write_text(target / "dataset.json", json.dumps(dataset, indent=1))
    keep = {c.case_id for c in cases}
    for stale in data_dir.glob("*.pkl"):  # a rerun with fewer cases: drop the others
        if stale.stem not in keep:
            for suffix in (".pkl", ".b2nd", "_seg.b2nd"):
                (data_dir / f"{stale.stem}{suffix}").unlink(missing_ok=True)
    for case in cases:
        image = raw / "imagesTr" / f"{case.case_id}_0000{FILE_ENDING}"
        if whole:
            _preprocess_whole(
                data_dir, case, image, raw / "labelsTr" / f"{case.case_id}{FILE_ENDING}", plans, dataset, configuration
            )
            if on_case:
                on_case(case.case_id)
            continue
        _cache_image(cache, case, image, plans, dataset, configuration)
        with open(cache / f"{case.case_id}.pkl", "rb") as fh:
            props = pickle.load(fh)
        seg, props = preprocess_label(
            raw / "labelsTr" / f"{case.case_id}{FILE_ENDING}",
            props,
            _load_mask(cache, case.case_id),
            plans,
            dataset,
            configuration,
        )
        _write_seg(seg, data_dir / case.case_id, config["patch_size"])
        _link(cache / f"{case.case_id}.b2nd", data_dir / f"{case.case_id}.b2nd")
        atomic_write_bytes(data_dir / f"{case.case_id}.pkl", pickle.dumps(props))
        for written in (f"{case.case_id}_seg.b2nd", f"{case.case_id}.pkl") if store else ():
            dedupe(data_dir / written, store)
        if on_case:
            on_case(case.case_id)
    return target
