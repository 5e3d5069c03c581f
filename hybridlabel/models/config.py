"""The pipeline configuration: one pydantic model, YAML on disk, passed down explicitly.

Every threshold of the design is a field here with the design's default, and every
field carries a description, which `hybridlabel init` writes as the YAML comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridlabel.models.labels import FLARE23_LABELS, FLARE23_NSD_TOLERANCE_MM, FLARE23_TUMOR_ID
from hybridlabel.models.review_rank import DEFAULT_WEIGHTS, SIGNALS

Keep = Union[int, float]
# roles a round may predict or train on (`val` is held out, `quarantined` unusable)
RoundRole = Literal["strong", "partial", "tumor_only", "unlabeled"]


class ConfigError(ValueError):
    """The config file is missing, is not YAML, or breaks a rule; the message says which."""


class _Frozen(BaseModel):
    # allow_inf_nan: no threshold, rate or budget of this config is meaningful as inf or nan
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LabelMapConfig(_Frozen):
    labels: dict[int, str] = Field(
        default_factory=lambda: dict(FLARE23_LABELS),
        description="class id -> name; 0 must be background (FLARE23 ids by default)",
    )
    tumor_id: int = Field(FLARE23_TUMOR_ID, description="id of the (pan-cancer) tumour class")
    nsd_tolerance_mm: dict[int, float] = Field(
        default_factory=lambda: {c: float(mm) for c, mm in FLARE23_NSD_TOLERANCE_MM.items()},
        description="NSD tolerance per class in mm (FLARE23 values)",
    )

    @model_validator(mode="after")
    def _check(self) -> "LabelMapConfig":
        if self.labels.get(0) != "background":
            raise ValueError("labels must map 0 to 'background'")
        if self.tumor_id not in self.labels:
            raise ValueError(f"tumor_id {self.tumor_id} is not a key of labels")
        if sorted(self.labels) != list(range(len(self.labels))):
            raise ValueError("class ids must be consecutive from 0 (nnU-Net needs them so)")
        if max(self.labels) > 253:
            raise ValueError("class ids must be below 254 (the next id is the ignore label)")
        return self

    @property
    def ignore_id(self) -> int:
        """nnU-Net's ignore label must be the highest label value: the id after the last class."""
        return max(self.labels) + 1

    @property
    def organ_ids(self) -> tuple[int, ...]:
        return tuple(sorted(c for c in self.labels if c not in (0, self.tumor_id)))


class MergeConfig(_Frozen):
    clean_gt: bool = Field(True, description="rule 1: clean the ground truth before merging")
    min_component_mm3: float = Field(
        150.0, ge=0, description="components smaller than this (mm3, per class, 26-connected) are dropped"
    )
    max_tumor_organ_gap_mm: float = Field(
        20.0, ge=0, description="ground-truth tumour components farther than this from every organ are dropped"
    )
    largest_component_classes: list[int] = Field(
        default_factory=lambda: list(range(1, 14)),
        description="organ classes of the pseudo label reduced to their largest connected component",
    )
    attribution_mm: float = Field(
        5.0, ge=0, description="tumour components are dilated by this many mm to find their organ"
    )
    tumor_bearing_organ: Literal["pseudo", "gt"] = Field(
        "pseudo",
        description="annotated organ with an attributed tumour: take the pseudo label (FLARE23) or the ground truth",
    )
    tumor_fallback: Literal["organ", "background", "ignore"] = Field(
        "organ", description="pseudo tumour of a case that is not tumour-selected becomes this"
    )
    min_voxel_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="pseudo voxels whose highest class probability is below this become the ignore label "
        "(the round's prediction step then writes each case's voxel confidence beside its label map); null = off",
    )
    min_pseudo_dice: float | None = Field(
        0.75,
        ge=0,
        le=1,
        description="a class whose pseudo labels score below this Dice on what the parent did not train on "
        "(predicted cases it did not see, else its val cases), or that has no such evidence, is left "
        "unannotated where it is pseudo-labelled (partial-label losses only); null = trust all",
    )


class SelectionConfig(_Frozen):
    scorer: Literal["entropy", "disagreement"] = Field(
        "entropy", description="uncertainty score used to rank unlabeled cases (entropy is always recorded too)"
    )
    disagreement_with: Literal["mirror", "previous_round"] = Field(
        "mirror",
        description="disagreement compares the prediction with its mirrored pass (one more forward pass) "
        "or with the previous round's prediction of the case (the mirrored pass where there is none)",
    )
    organ_keep: Keep = Field(
        0.55, description="unlabeled cases kept for organs: a count (int) or a fraction (float <= 1)"
    )
    tumor_keep: Keep = Field(
        0.1, description="of the organ-kept cases, those whose tumour pseudo labels are kept: count or fraction"
    )

    @field_validator("organ_keep", "tumor_keep")
    @classmethod
    def _keep(cls, v: Keep) -> Keep:
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ValueError("a fraction must lie in [0, 1]; use an integer for a count")
        if isinstance(v, int) and v < 0:
            raise ValueError("a count must be >= 0")
        return v


class CutMixConfig(_Frozen):
    """Context-aware tumour CutMix (models/cutmix.py): annotated tumours cut out with their
    surroundings and pasted online into training patches of cases without a tumour label."""

    probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="chance that a training patch of a case without a tumour label gets a tumour pasted",
    )
    margins: tuple[tuple[float, float], tuple[float, float]] = Field(
        ((20.0, 40.0), (19.0, 26.0)),
        description="context kept around a tumour in mm: [z min, z max], [in-plane min, in-plane max], drawn per "
        "tumour (the FLARE23 runner-up's 8-16 and 24-32 voxels at FLARE's 2.5 x 0.8 mm)",
    )
    placement: Literal["host_organ", "any_organ"] = Field(
        "host_organ",
        description="where a tumour object lands: only in its host organ (host_organ: no paste in a "
        "patch without it), or in its host organ when the patch shows it and else in any "
        "organ (any_organ: on the phantom it cost the organs 0.06 Dice, docs/benchmarks.md)",
    )
    min_voxels: int = Field(
        10, ge=1, description="tumour components smaller than this (voxels at the training resolution) are not pooled"
    )
    host_organs: list[int] | None = Field(
        None, description="pool only tumours attributed to these organs; null = every tumour"
    )

    @field_validator("margins")
    @classmethod
    def _margins(cls, v):
        for low, high in v:
            if not 0 <= low <= high:
                raise ValueError(f"a margin range must be 0 <= min <= max, got [{low}, {high}]")
        return v


class TrainingConfig(_Frozen):
    configuration: Literal["3d_fullres", "2d", "3d_lowres"] = Field(
        "3d_fullres",
        description="nnU-Net configuration: 3d_fullres, 2d (slices: learns fastest on a CPU) or "
        "3d_lowres (when the planner wrote one)",
    )
    network: Literal["default", "lightweight", "tiny"] = Field(
        "default",
        description="plans variant: nnU-Net default, lightweight (16 features, 2 convs/stage), tiny (CPU tests)",
    )
    loss: Literal["naive", "target_adaptive", "merge_max"] = Field(
        "target_adaptive", description="loss for partially labeled cases"
    )
    epochs: int = Field(1000, ge=1, description="training epochs")
    iterations_per_epoch: int = Field(250, ge=1, description="training iterations per epoch")
    val_iterations: int = Field(50, ge=0, description="validation iterations per epoch")
    batch_size: int | None = Field(None, ge=1, le=1024, description="batch size; null = nnU-Net's plans")
    seed: int = Field(
        12345, ge=0, lt=2**32, description="random seed (bit-identical weights on CPU with nnUNet_n_proc_DA=0)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="training device; auto = cuda when present")
    optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="sgd = nnU-Net's (momentum 0.99, lr 1e-2); adam converges faster on short CPU budgets"
    )
    learning_rate: float | None = Field(
        None, gt=0, le=10, description="initial learning rate; null = 1e-2 for sgd, 1e-3 for adam"
    )
    init_from_parent: bool = Field(
        False,
        description="start a student from its teacher's weights, output layers included (a class the teacher "
        "lacks starts fresh)",
    )
    max_train_seconds: float | None = Field(
        None,
        gt=0,
        description="stop training once this many seconds of training have passed (checked at epoch ends; the "
        "model so far is the final one); null = the epochs decide",
    )
    curve_every: int = Field(
        0,
        ge=0,
        description="keep the weights every N epochs (fold_all/curve/) so that one training gives a learning "
        "curve; 0 = off",
    )
    rare_class_sampling: float | None = Field(
        1.0,
        gt=0,
        description="draw a case in proportion to the rarest class its loss counts as annotated: a class "
        "annotated in a share f of the cases is drawn as if in min(1, this / f) of them "
        "(models/case_sampling.py); null = uniform, as nnU-Net",
    )
    rare_class_patches: bool = Field(
        True,
        description="centre foreground patches on a case's annotated class in proportion to its "
        "rare_class_sampling repeat factor, instead of uniformly as nnU-Net (a class only "
        "3 strong cases annotate is then seen by a student about as often as by their teacher); "
        "no effect when rare_class_sampling is null",
    )
    foreground_oversampling: float = Field(
        0.33,
        ge=0,
        le=1,
        description="share of each batch whose patch is centred on a class of the case (drawn as "
        "rare_class_patches says; nnU-Net's 0.33); more makes small organs seen more often",
    )
    tumor_drawn_as_organ: bool = Field(
        False,
        description="organs+tumor rounds, partial-label losses: a case whose labels do not annotate the tumour "
        "drew each tumour as the organ around it (FLARE22-style organ labels): on it, a voxel of an organ that "
        "annotated tumours lie in scores as organ or tumour, and the tumour is punished everywhere else; "
        "false = the tumour counts as background there, like any class the case does not annotate, so its organ "
        "labels teach the organ over a tumour inside it. Off by "
        "default: on the 4-site phantom and the cross-patient real CT it found more tumours but gave more "
        "tumour-free test cases a false one, and on the real CT it cost the organs (docs/benchmarks.md)",
    )
    cutmix: CutMixConfig | None = Field(
        None,
        description="paste annotated tumours with their surroundings into patches of cases without a tumour "
        "label (organs+tumor rounds, partial-label losses); null = off; {} = on with the defaults "
        "{probability: 0.5, margins: [[20, 40], [19, 26]] (mm), placement: host_organ, min_voxels: 10, "
        "host_organs: null}",
    )


class EvaluationConfig(_Frozen):
    labeled_slices_only: list[int] = Field(
        default_factory=lambda: [5, 6, 10],
        description="classes scored only on the axial slices the ground truth labels (FLARE23: aorta, IVC, esophagus)",
    )
    holdout_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of each partial case's annotated classes held back from merging and training, so that "
        "pseudo-label quality on them is an unbiased estimate; 0 = off",
    )
    holdout_seed: int = Field(
        0, ge=0, lt=2**32, description="seed of the held-back class draw (fixed for the whole pipeline)"
    )
    report_cases: int = Field(3, ge=0, le=12, description="val cases drawn as axial slices per round in the report")
    learned_floor: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a round whose val organ DSC over the classes present is below this, or below "
        "its parent's by more than 0.01, is flagged as having learned little (round "
        "line, status, report): its pseudo labels are handed on, but say so",
    )
    complete_labels: Path | None = Field(
        None,
        description="folder of complete label maps (<case_id>.nii.gz, every class) of partial and unlabeled "
        "cases: each round's hybrid labels and the parent's raw predictions of those cases are "
        "scored against them (the labels a user came for, measured); null = <dataset>/groundTruth "
        "when it exists (what `phantom` and `simulate-partial` write); relative paths are "
        "relative to this file",
    )


class ReviewConfig(_Frozen):
    """The review queue (`hybridlabel review`, models/review_rank.py)."""

    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="weight of each signal in a pseudo-labelled class's review score: uncertainty (entropy "
        "percentile), volume (outside ground truth's range), missing (an organ nearly every label "
        "holds), pieces, adjacency (a contact never seen in ground truth), gt_conflict (prediction on "
        "another ground-truth class), gt_disagreement (1 - the prediction's Dice on the case's own "
        "ground truth); a signal left out counts 0",
    )
    fraction: float = Field(
        0.05,
        gt=0,
        le=1,
        description="share of a round's pseudo-labelled cases `review` puts in "
        "the queue when neither --top nor --fraction is given "
        "(AbdomenAtlas sent the top 5 %)",
    )
    gate: bool = Field(
        False,
        description="after each student round, publish the queue as a Prefect artifact and "
        "pause the pipeline until someone resumes it (corrections are in / skip)",
    )
    gate_timeout_hours: float = Field(
        72.0, gt=0, le=8760, description="how long the gate waits before the flow run fails (Prefect's pause timeout)"
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown review signal(s) {unknown}; known: {', '.join(SIGNALS)}")
        if any(w < 0 for w in v.values()):
            raise ValueError("review weights must be >= 0")
        return v


class ExportConfig(_Frozen):
    network: Literal["default", "lightweight", "tiny"] = Field(
        "lightweight",
        description="network of the exported model; when the last round's differs, a student of this "
        "network is trained on the last round's hybrid labels",
    )
    training: TrainingConfig | None = Field(
        None, description="budget of that export student; null = the last round's budget"
    )
    fast: bool = Field(True, description="the archive's default for `hybridlabel predict --fast`")


class RoundSpec(_Frozen):
    name: str = Field(description="round name, used in dataset and folder names")
    kind: Literal["teacher", "student"] = Field("student", description="teacher = trained on strong cases only")
    predict_roles: list[RoundRole] = Field(
        default_factory=lambda: ["partial", "tumor_only"], description="roles the previous model predicts in this round"
    )
    train_roles: list[RoundRole] = Field(
        default_factory=lambda: ["strong", "partial", "tumor_only"], description="roles the student trains on"
    )
    targets: Literal["organs", "organs+tumor"] = Field(
        "organs", description="classes trained: organs only or organs and tumour"
    )
    tta: Literal["none", "flip4", "mirror8"] = Field(
        "none", description="test-time augmentation when predicting pseudo labels"
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="network and budget of this round's model"
    )

    @property
    def trains_tumor(self) -> bool:
        return self.targets == "organs+tumor"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or not all(ch.isalnum() or ch in "-_" for ch in v):
            raise ValueError(f"round name {v!r} must be letters, digits, '-' or '_'")
        return v


def default_rounds() -> list[RoundSpec]:
    """The FLARE23 schedule of the design."""
    return [
        RoundSpec(name="teacher", kind="teacher", predict_roles=[], train_roles=["strong"]),
        RoundSpec(name="organ_student", predict_roles=["partial", "tumor_only"]),
        # strong cases carry no tumour annotation: from the tumour rounds on they are predicted too
        RoundSpec(name="tumor_student", predict_roles=["strong", "partial", "tumor_only"], targets="organs+tumor"),
        RoundSpec(
            name="unlabeled_student",
            predict_roles=["strong", "partial", "tumor_only", "unlabeled"],
            train_roles=["strong", "partial", "tumor_only", "unlabeled"],
            targets="organs+tumor",
        ),
    ]


class PipelineConfig(_Frozen):
    name: str = Field("hybridlabel", description="project name, used in nnU-Net dataset names")
    nnunet_dataset_id: int = Field(500, ge=1, le=899, description="nnU-Net dataset id of round 0; round r uses id + r")
    dataset: Path = Field(
        Path("data/raw"),
        description="nnU-Net raw folder (imagesTr/, labelsTr/); relative paths are relative to this file",
    )
    manifest: Path | None = Field(
        None,
        description="optional manifest CSV (case_id,image,label,annotated,role); default: "
        "<dataset>/manifest.csv when present",
    )
    label_map: LabelMapConfig = Field(default_factory=LabelMapConfig, description="label ids")
    merge: MergeConfig = Field(default_factory=MergeConfig, description="hybrid label merge rules")
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig, description="uncertainty-based selection of unlabeled cases"
    )
    export: ExportConfig = Field(default_factory=ExportConfig, description="the final lightweight model")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="metrics, held-back classes, report"
    )
    review: ReviewConfig = Field(default_factory=ReviewConfig, description="the review queue and its gate")
    rounds: list[RoundSpec] = Field(
        default_factory=default_rounds, description="the rounds, in order; round 0 is the teacher"
    )
    planner_gpu_memory_gb: float | None = Field(
        None,
        gt=0,
        description="GPU memory (GB) nnU-Net's planner sizes 3d patches for (its -gpu_memory_target); null = "
        "nnU-Net's 8. Less gives smaller patches, and the planner writes 3d_lowres when the "
        "3d_fullres patch covers under a quarter of the median image. Fixed once a workdir is planned",
    )
    predict_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="device for pseudo-label prediction")
    min_tumor_peak: float | None = Field(
        0.9,
        ge=0,
        le=1,
        description="a predicted tumour (connected component) whose highest tumour probability is below this "
        "takes the class the model ranks next, in every prediction (pseudo labels, val, the exported "
        "model's default); null = keep every predicted tumour",
    )
    allow_paths_outside_dataset: bool = Field(
        False,
        description="manifest paths may point outside the dataset and manifest folders (refused by default: a "
        "manifest from elsewhere must not read arbitrary files)",
    )
    workers: int = Field(2, ge=1, le=256, description="per-case tasks run at once (threads or Dask workers)")
    task_runner: Literal["threads", "dask"] = Field("threads", description="Prefect task runner for per-case tasks")
    dask_address: str | None = Field(None, description="Dask scheduler address; null = a local cluster")

    @model_validator(mode="after")
    def _check(self) -> "PipelineConfig":
        if not self.rounds:
            raise ValueError("rounds must hold at least the teacher")
        if self.rounds[0].kind != "teacher":
            raise ValueError("round 0 must be of kind 'teacher'")
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"name {self.name!r} must be letters, digits and '_'")
        if self.nnunet_dataset_id + len(self.rounds) > 999:
            raise ValueError("nnunet_dataset_id + number of rounds must stay below 1000")
        names = [r.name for r in self.rounds]
        if len(set(names)) != len(names):
            raise ValueError(f"round names must be unique, got {names}")
        for field, ids in (
            ("merge.largest_component_classes", self.merge.largest_component_classes),
            ("evaluation.labeled_slices_only", self.evaluation.labeled_slices_only),
        ):
            unknown = sorted(set(ids) - set(self.label_map.labels) - {0})
            if unknown or 0 in ids:
                raise ValueError(
                    f"{field} holds {unknown or [0]}, not classes of the label map (ids 1-{max(self.label_map.labels)})"
                )
        for spec in self.rounds:
            cutmix = spec.training.cutmix
            if cutmix is not None and not spec.trains_tumor:
                raise ValueError(
                    f"round {spec.name!r}: training.cutmix pastes tumours, so the round must train "
                    f"targets: organs+tumor (it trains {spec.targets})"
                )
            if cutmix is not None and spec.training.loss == "naive":
                raise ValueError(
                    f"round {spec.name!r}: training.cutmix needs a partial-label loss (target_adaptive "
                    f"or merge_max), not naive: a pasted tumour is annotated only where it is pasted"
                )
            if (
                cutmix is not None
                and cutmix.host_organs is not None
                and set(cutmix.host_organs) - set(self.label_map.organ_ids)
            ):
                raise ValueError(
                    f"round {spec.name!r}: training.cutmix.host_organs holds "
                    f"{sorted(set(cutmix.host_organs) - set(self.label_map.organ_ids))}, not organs of "
                    f"the label map"
                )
        for parent, child in zip(self.rounds, self.rounds[1:]):
            a, b = parent.training, child.training
            if b.init_from_parent and (a.configuration, a.network) != (b.configuration, b.network):
                raise ValueError(
                    f"round {child.name!r} starts from {parent.name!r}'s weights but trains "
                    f"{b.configuration}/{b.network} where that round trained {a.configuration}/"
                    f"{a.network}; use the same configuration and network, or init_from_parent: false"
                )
        return self


def load_config(path: Path) -> PipelineConfig:
    """Read a YAML config; relative dataset/manifest paths resolve against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; write one with `hybridlabel init {path}`")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of fields, got {type(data).__name__}")
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"config {path}: field {where}: {first['msg']} ({exc.error_count()} error(s) in all)"
        ) from None
    base = path.resolve().parent
    updates = {"dataset": (base / cfg.dataset) if not cfg.dataset.is_absolute() else cfg.dataset}
    if cfg.manifest is not None and not cfg.manifest.is_absolute():
        updates["manifest"] = base / cfg.manifest
    complete = cfg.evaluation.complete_labels
    if complete is not None and not complete.is_absolute():
        updates["evaluation"] = cfg.evaluation.model_copy(update={"complete_labels": base / complete})
    return cfg.model_copy(update=updates)
