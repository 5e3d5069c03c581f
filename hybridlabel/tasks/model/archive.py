"""Read a model archive written by `tasks/model/export.py`, trusting nothing in it until checked.

Order matters: member sizes are checked from the zip directory before anything is
inflated; each member is hashed while it is read (bounded by its declared size); the
manifest and the plans are validated by schema (`models/archive_manifest.py`); the
weights are unpickled with `weights_only=True`, which loads tensors and plain
containers and refuses any other object, so a checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import zipfile
from pathlib import Path

from hybridlabel.models.archive_manifest import (
    MANIFEST,
    MEMBERS,
    SIZE_LIMITS,
    dataset_problem,
    mirror_axes_problem,
    oversized_member,
    parse_manifest,
    plans_problem,
)
from hybridlabel.models.nnunet.checkpoint_types import allow_numpy_values
from hybridlabel.models.nnunet.predictor import ModelBundle


class ArchiveError(ValueError):
    """Not a hybridlabel model archive, or a damaged or unsafe one; the message says which."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_member(zf: zipfile.ZipFile, name: str) -> tuple[bytes, str]:
    """The member's bytes and sha256, read in blocks (never more than its declared size)."""
    digest, buf = hashlib.sha256(), io.BytesIO()
    with zf.open(name) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            buf.write(block)
            if buf.tell() > SIZE_LIMITS[name]:
                raise ArchiveError(f"{name} inflates beyond its {SIZE_LIMITS[name] >> 20} MiB limit")
    return buf.getvalue(), digest.hexdigest()


def _json(data: bytes, name: str, archive: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"{archive}: {name} is not valid JSON; the archive is damaged") from None


def load_weights(source, what: str) -> dict:
    """A checkpoint through torch's weights-only unpickler: tensors and plain containers
    only (nnU-Net's training logs hold numpy scalars: those few types are allowed)."""
    import torch

    allow_numpy_values()
    try:
        ckpt = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise ArchiveError(
                f"{what} holds objects other than weights ({found.group(1)}) and was refused; "
                "it cannot run code here, but do not use it elsewhere either"
            ) from None
        raise ArchiveError(f"{what} is not a readable PyTorch checkpoint (UnpicklingError)") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{what} is not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("network_weights"), dict):
        raise ArchiveError(f"{what} is not an nnU-Net checkpoint (no network_weights)")
    return ckpt


def checkpoint_configuration(ckpt: dict) -> str | None:
    init = ckpt.get("init_args")
    return init.get("configuration") if isinstance(init, dict) else None


def bundle_from(ckpt: dict, plans: dict, dataset_json: dict, what: str) -> ModelBundle:
    """The bundle, once the plans' classes are resolved and allowed and the network they
    describe (built on the meta device: nothing allocated) has the checkpoint's shapes."""
    configuration = checkpoint_configuration(ckpt)
    axes = ckpt.get("inference_allowed_mirroring_axes")
    problem = (
        plans_problem(plans, configuration)
        or dataset_problem(dataset_json)
        or mirror_axes_problem(axes)
        or network_problem(plans, dataset_json, configuration, ckpt["network_weights"])
    )
    if problem:
        raise ArchiveError(f"{what}: {problem}")
    axes = axes or (0, 1, 2)
    return ModelBundle(
        plans=plans,
        dataset_json=dataset_json,
        configuration=configuration,
        weights=ckpt["network_weights"],
        mirror_axes=tuple(int(a) for a in axes),
    )


def network_problem(plans: dict, dataset_json: dict, configuration: str, weights: dict) -> str | None:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from hybridlabel.models.nnunet.plan_classes import architecture_problem, network_state_shapes, shape_problem

    try:  # nnU-Net prints its defaults ("No label manager specified") to stdout
        with contextlib.redirect_stdout(io.StringIO()):
            config = PlansManager(plans).get_configuration(configuration)
        arch = (
            config.network_arch_class_name,
            config.network_arch_init_kwargs,
            config.network_arch_init_kwargs_req_import,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return f"plans.json configuration {configuration!r} is malformed ({type(exc).__name__}: {str(exc)[:80]})"
    if problem := architecture_problem(*arch):
        return f"plans.json {problem}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            shapes = network_state_shapes(plans, dataset_json, configuration)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AssertionError) as exc:
        return f"plans.json describes no network nnU-Net can build ({type(exc).__name__}: {str(exc)[:80]})"
    return shape_problem(shapes, weights)


def read_archive(path: Path, expect_sha256: str | None = None) -> tuple[ModelBundle, dict]:
    """The model bundle and the manifest (`hybridlabel.json`) of an archive."""
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"model archive {path} not found; export one with `hybridlabel run` (its last step)")
    if expect_sha256 and (actual := sha256_file(path)) != expect_sha256.lower():
        raise ArchiveError(
            f"{path.name} has sha256 {actual}, not the {expect_sha256} you expected; "
            "do not use it, get the archive again from its publisher"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist()}
            if MANIFEST not in sizes:
                raise ArchiveError(
                    f"{path.name} is a zip file but not a hybridlabel model archive "
                    f"(no {MANIFEST}); pass the .hlmodel.zip the export wrote"
                )
            if reason := oversized_member(sizes):
                raise ArchiveError(f"{path.name} refused: {reason}")
            manifest, why = parse_manifest(_json(_read_member(zf, MANIFEST)[0], MANIFEST, path.name))
            if why:
                raise ArchiveError(f"{path.name} is not a usable model archive: {why}")
            data = {}
            for name in MEMBERS:
                if name not in sizes:
                    raise ArchiveError(f"{path.name} lacks {name}; the archive is incomplete, export it again")
                data[name], digest = _read_member(zf, name)
                if digest != manifest.sha256[name]:
                    raise ArchiveError(f"{path.name}: {name} does not match its sha256; the archive is damaged")
    # BadZipFile: truncated, or a member that does not inflate to its declared size and CRC;
    # NotImplementedError: a compression method zipfile cannot inflate (tested)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, NotImplementedError, EOFError) as exc:
        raise ArchiveError(
            f"{path.name} is not a readable model archive ({type(exc).__name__}); "
            "pass the .hlmodel.zip the export wrote"
        ) from None
    ckpt = load_weights(io.BytesIO(data["weights.pth"]), f"{path.name}: weights.pth")
    bundle = bundle_from(
        ckpt,
        _json(data["plans.json"], "plans.json", path.name),
        _json(data["dataset.json"], "dataset.json", path.name),
        path.name,
    )
    return bundle, manifest.model_dump()
