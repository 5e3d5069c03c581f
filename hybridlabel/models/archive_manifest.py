"""What a model archive may contain (pure): the manifest's schema, size limits per member,
and the plans' import names that nnU-Net would resolve and call.

An archive comes from elsewhere, so nothing in it is trusted until checked: nnU-Net
builds the network by importing `network_class_name` and every name listed in
`_kw_requires_import` (`pydoc.locate`) and calling the class with the plans' keyword
arguments, so a plans file naming another callable would run it. The patterns here are
the first gate, before anything is imported: only names under
`dynamic_network_architectures.architectures` and `torch.nn`. A name can match them and
still lead elsewhere through a module's imports; `models/nnunet/plan_classes.py` resolves
each name and checks the object it reaches before nnU-Net may build the network.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybridlabel.models.geometry import ORIENTATION_PATTERN

ARCHIVE_FORMAT = "hybridlabel-model/1"
MANIFEST = "hybridlabel.json"
MEMBERS = ("weights.pth", "plans.json", "dataset.json", "config.json")
MiB = 1 << 20
# Declared (uncompressed) size limits, checked before anything is inflated. nnU-Net's
# largest residual-encoder plans hold ~100 M parameters (~400 MB of fp32 weights).
SIZE_LIMITS = {
    MANIFEST: 1 * MiB,
    "weights.pth": 1024 * MiB,
    "plans.json": 16 * MiB,
    "dataset.json": 4 * MiB,
    "config.json": 4 * MiB,
}
NETWORK_MODULE = re.compile(r"^dynamic_network_architectures\.architectures\.[A-Za-z0-9_.]+$")
LAYER_MODULE = re.compile(r"^torch\.nn\.(modules\.[a-z_]+\.)?[A-Z][A-Za-z0-9]*$")


class ClassQC(BaseModel):
    """What one class looked like in the training labels (models/label_qc.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    volume_ml: tuple[float, float]
    max_components: int = Field(ge=0)
    cases: int = Field(ge=0)

    @model_validator(mode="after")
    def _range(self) -> "ClassQC":
        low, high = self.volume_ml
        if not 0 < low <= high:
            raise ValueError(f"volume range {low}..{high} ml must be positive and ordered")
        return self


class TumorFilter(BaseModel):
    """Predicted tumours never this sure are dropped (models/tumor_filter.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tumor_id: int = Field(ge=1, le=255)
    min_peak: float = Field(ge=0, le=1)


class Manifest(BaseModel):
    """`hybridlabel.json`: the fields inference relies on are typed; the rest is kept."""

    model_config = ConfigDict(extra="allow", frozen=True)
    format: str
    sha256: dict[str, str] = Field(description="member name -> sha256 (hex)")
    labels: dict[str, int]
    fast: bool = True
    label_qc: dict[str, ClassQC] = Field(default_factory=dict, description="class id -> training-label ranges")
    orientation: str | None = Field(
        None,
        pattern=ORIENTATION_PATTERN,
        description="the axis orientation the network was trained in (DICOM letters); none in archives "
        "exported before hybridlabel reoriented: their inputs are predicted as stored",
    )
    tumor_filter: TumorFilter | None = Field(
        None, description="the pipeline's `min_tumor_peak` at export; none: every predicted tumour is kept"
    )


def parse_manifest(data: object) -> tuple[Manifest | None, str | None]:
    """(manifest, None), or (None, one line saying what is wrong)."""
    if not isinstance(data, dict):
        return None, f"its manifest is a JSON {type(data).__name__}, not an object"
    if data.get("format") != ARCHIVE_FORMAT:
        return None, f"archive format {data.get('format')!r}; this hybridlabel reads {ARCHIVE_FORMAT!r}"
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        return None, f"manifest field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    bad = [n for n, h in manifest.sha256.items() if not re.fullmatch(r"[0-9a-f]{64}", h)]
    if bad:
        return None, f"manifest sha256 of {bad[0]} is not a 64-digit hex digest"
    missing = [n for n in MEMBERS if n not in manifest.sha256]
    if missing:
        return None, f"manifest has no sha256 for {missing[0]}"
    return manifest, None


def oversized_member(sizes: dict[str, int]) -> str | None:
    """The first member whose declared size exceeds its limit, as a reason."""
    for name, limit in SIZE_LIMITS.items():
        if sizes.get(name, 0) > limit:
            return f"{name} declares {sizes[name] / MiB:,.0f} MiB uncompressed, over the {limit / MiB:,.0f} MiB limit"
    return None


def plans_problem(plans: object, configuration: object) -> str | None:
    """Why these plans cannot be used for `configuration`, or None (structure and imports)."""
    if not isinstance(plans, dict) or not isinstance(plans.get("configurations"), dict):
        return "plans.json is not nnU-Net plans (no 'configurations' mapping)"
    if not isinstance(configuration, str) or configuration not in plans["configurations"]:
        return f"plans.json has no configuration {configuration!r} (the weights were trained with it)"
    conf = plans["configurations"][configuration]
    arch = conf.get("architecture") if isinstance(conf, dict) else None
    if not isinstance(arch, dict):
        return f"plans.json configuration {configuration!r} has no 'architecture'"
    name = arch.get("network_class_name")
    if not isinstance(name, str) or not NETWORK_MODULE.match(name):
        return f"plans.json names network class {name!r}; only dynamic_network_architectures classes are loaded"
    kwargs = arch.get("arch_kwargs")
    imports = arch.get("_kw_requires_import", [])
    if not isinstance(kwargs, dict) or not isinstance(imports, list):
        return "plans.json architecture arguments are malformed"
    for key in imports:
        value = kwargs.get(key) if isinstance(key, str) else None
        if value is not None and (not isinstance(value, str) or not LAYER_MODULE.match(value)):
            return f"plans.json argument {key!r} imports {value!r}; only torch.nn layer classes are loaded"
    return None


def dataset_problem(dataset: object) -> str | None:
    """The label map must be class name -> distinct integer id in 0..255, background 0;
    the channels a mapping (nnU-Net's label manager and readers assume both)."""
    if not isinstance(dataset, dict) or not isinstance(dataset.get("labels"), dict):
        return "dataset.json has no 'labels' mapping"
    labels = dataset["labels"]
    bad = [k for k, v in labels.items() if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255]
    if bad:
        return f"dataset.json label {bad[0]!r} is {labels[bad[0]]!r}, not a class id 0-255"
    if labels.get("background") != 0:
        return "dataset.json labels must map 'background' to 0"
    if len(set(labels.values())) != len(labels):
        return "dataset.json gives two labels the same id"
    if not isinstance(dataset.get("channel_names"), dict) or not dataset["channel_names"]:
        return "dataset.json has no 'channel_names' mapping"
    return None


def mirror_axes_problem(axes: object) -> str | None:
    """nnU-Net flips the network input along these axes (0-2, each at most once)."""
    if axes is None:
        return None
    if (
        not isinstance(axes, (list, tuple))
        or len(axes) > 3
        or any(isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 2 for a in axes)
        or len(set(axes)) != len(axes)
    ):
        return f"the checkpoint's mirroring axes {axes!r} are not distinct axes 0-2"
    return None
