"""Read a model archive written by `tasks/export.py`, checking that it is ours and intact."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from models.nnunet.predictor import ModelBundle
from tasks.export import ARCHIVE_FORMAT

MEMBERS = ("weights.pth", "plans.json", "dataset.json", "config.json")


class ArchiveError(ValueError):
    """Not a hybridlabel model archive, or a damaged one; the message says which."""


def read_archive(path: Path) -> tuple[ModelBundle, dict]:
    """The model bundle and the manifest (`hybridlabel.json`) of an archive."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"model archive {path} not found; export one with `hybridlabel run` (its last step)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "hybridlabel.json" not in names:
                raise ArchiveError(f"{path.name} is a zip file but not a hybridlabel model archive "
                                   "(no hybridlabel.json); pass the .hlmodel.zip the export wrote")
            info = json.loads(zf.read("hybridlabel.json"))
            if info.get("format") != ARCHIVE_FORMAT:
                raise ArchiveError(f"{path.name} has archive format {info.get('format')!r}; this hybridlabel "
                                   f"reads {ARCHIVE_FORMAT!r}")
            data = {}
            for name in MEMBERS:
                if name not in names:
                    raise ArchiveError(f"{path.name} lacks {name}; the archive is incomplete, export it again")
                data[name] = zf.read(name)
                if hashlib.sha256(data[name]).hexdigest() != info["sha256"].get(name):
                    raise ArchiveError(f"{path.name}: {name} does not match its sha256; the archive is damaged")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, json.JSONDecodeError, KeyError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"{path.name} is not a readable model archive ({type(exc).__name__}); "
                           "pass the .hlmodel.zip the export wrote") from None
    ckpt = torch.load(io.BytesIO(data["weights.pth"]), map_location="cpu", weights_only=False)
    bundle = ModelBundle(plans=json.loads(data["plans.json"]), dataset_json=json.loads(data["dataset.json"]),
                         configuration=ckpt["init_args"]["configuration"], weights=ckpt["network_weights"],
                         mirror_axes=tuple(ckpt.get("inference_allowed_mirroring_axes") or (0, 1, 2)))
    return bundle, info
