"""The `ablation` flow: does the loop pay off on this data?

Arms, all on the same dataset, val cases and per-model budget (the config's), per seed:
- `teacher`: strong cases only (round 0 of the rounds arm when both are asked for);
- `teacher_long`: the teacher trained for as many iterations (and seconds, where every round
  has a time cap) as all the config's rounds together: the equal-compute control, since a
  student that starts from its parent has trained that long by its last round;
- `naive`: every labeled case, unannotated classes = background, nnU-Net's loss;
- `target_adaptive`, `merge_max`: every labeled case with a partial-label loss;
- `oracle`: every case that has a complete label (the phantom's and `simulate-partial`'s
  `groundTruth/`) as a strong case: the ceiling that perfect pseudo labels would give, so
  the loop's gain reads against its room;
- `rounds`: the config's rounds, each round's model evaluated;
- `cutmix`: the same rounds with tumour CutMix in every organs+tumor round (the config's
  `training.cutmix` where it has one, else the defaults); its rounds before the first
  CutMix round equal the rounds arm's and are not reported twice.
`naive`, the partial-loss arms and `oracle` train as long as `teacher_long` with the
teacher's plans (batch, patch, normalisation), as every student of the loop does: equal
iterations are then equal compute. Planned on their own, more cases, nnU-Net would give
them a batch many times the teacher's (135 against 6 on the cross-patient real CT).
Each arm is the `pipeline` flow (a Prefect subflow) in its own workdir
`W/arms/<arm>-s<seed>`, so it is recorded in a registry like any round (config with budget
and seed, metrics partition) and resumes like one.
"""

from __future__ import annotations

import math
from pathlib import Path

from prefect import flow

from hybridlabel.models.config import CutMixConfig, PipelineConfig, RoundSpec, load_config
from hybridlabel.models.config_yaml import render_config_yaml
from hybridlabel.models.nnunet.identity import round_dataset
from hybridlabel.tasks.ablation_results import collect_arms, merge_rows, read_ablation, write_ablation
from hybridlabel.tasks.files.atomic import atomic_write_text
from hybridlabel.tasks.intake.oracle import write_oracle_manifest
from hybridlabel.tasks.nnunet.preprocess import NnunetError, adopt_plans
from hybridlabel.tasks.workdir import Layout

# in run order: the arms whose round 0 is the teacher come first, since the others take its plans
ARMS = ("teacher", "teacher_long", "rounds", "naive", "target_adaptive", "merge_max", "oracle", "cutmix")
TEACHER_PLANNED = ("teacher_long", "rounds", "teacher")
TAKE_TEACHER_PLANS = ("naive", "target_adaptive", "merge_max", "oracle")
LABELED = ["strong", "partial", "tumor_only"]


class AblationError(ValueError):
    """The arms or seeds asked for cannot run; the message says why."""


def arm_config(config: PipelineConfig, arm: str, seed: int, oracle_manifest: Path | None = None) -> PipelineConfig:
    """The pipeline config of one arm and seed (budgets unchanged, seeds set); the oracle arm
    reads `oracle_manifest` (`tasks/intake/oracle.py`)."""

    def seeded(spec: RoundSpec, **training) -> RoundSpec:
        return spec.model_copy(update={"training": spec.training.model_copy(update={"seed": seed, **training})})

    extra: dict = {}
    if arm == "rounds":
        rounds = [seeded(r) for r in config.rounds]
    elif arm == "cutmix":
        rounds = [
            seeded(r, cutmix=r.training.cutmix or CutMixConfig()) if r.trains_tumor else seeded(r)
            for r in config.rounds
        ]
        if not any(r.training.cutmix for r in rounds):
            raise AblationError("the cutmix arm needs a round with targets: organs+tumor in the config")
    elif arm == "teacher":
        rounds = [seeded(config.rounds[0])]
    elif arm in ("teacher_long", *TAKE_TEACHER_PLANS):
        first, budgets = config.rounds[0], [r.training for r in config.rounds]
        iterations = sum(b.epochs * b.iterations_per_epoch for b in budgets)
        seconds = [b.max_train_seconds for b in budgets]
        spec: dict = {"name": arm}
        if arm == "oracle":
            spec |= {"targets": "organs+tumor", "train_roles": ["strong"]}
        elif arm != "teacher_long":
            spec |= {"targets": "organs+tumor", "train_roles": LABELED}
        loss = {"loss": arm} if arm in ("naive", "target_adaptive", "merge_max") else {}
        rounds = [
            seeded(
                first.model_copy(update=spec),
                epochs=math.ceil(iterations / first.training.iterations_per_epoch),
                max_train_seconds=sum(seconds) if all(seconds) else None,
                **loss,
            )
        ]
        if arm == "oracle":
            if oracle_manifest is None:
                raise AblationError("the oracle arm needs its manifest (tasks/intake/oracle.py)")
            # complete labels the user's config names outside the dataset are theirs to read
            trusted = config.allow_paths_outside_dataset or config.evaluation.complete_labels is not None
            extra = {"manifest": Path(oracle_manifest), "allow_paths_outside_dataset": trusted}
    else:
        raise AblationError(f"unknown arm {arm!r}; arms are {', '.join(ARMS)}")
    return config.model_copy(update={"rounds": rounds, "name": f"{config.name}_{arm}", **extra})


def teacher_arms_ran(work: Path) -> list[Path]:
    """The workdir's arms whose round 0 is the teacher (any seed: its plans depend on the
    strong cases alone)."""
    return sorted(d for a in TEACHER_PLANNED for d in (Path(work) / "arms").glob(f"{a}-s*") if d.is_dir())


def plan_arms(arms: list[str], seeds: list[int], teacher_planned: bool = False) -> list[tuple[str, int]]:
    """(arm, seed) runs: the teacher arm is the rounds arm's round 0 when both are asked; the
    arms that take the teacher's plans need an arm that makes them, asked for or already in
    the workdir (`teacher_planned`)."""
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise AblationError(f"unknown arm(s) {bad or arms}; choose from {', '.join(ARMS)}")
    if not seeds:
        raise AblationError("give at least one seed, e.g. --seeds 1,2")
    taking = [a for a in TAKE_TEACHER_PLANS if a in arms]
    if taking and not teacher_planned and not set(TEACHER_PLANNED) & set(arms):
        which = f"the {taking[0]} arm takes" if len(taking) == 1 else f"the {' and '.join(taking)} arms take"
        raise AblationError(f"{which} the teacher's plans: ask for teacher, teacher_long or rounds too")
    runs = [a for a in ARMS if a in arms and not (a == "teacher" and "rounds" in arms)]
    return [(arm, seed) for seed in seeds for arm in runs]


def _adopt_teacher_plans(config: PipelineConfig, work: Path, arm: str, seed: int) -> None:
    """Give the arm's dataset the teacher's plans, from an arm whose round 0 is the teacher
    (run before it; the same seed's when there is one: the plans depend on the strong cases
    alone, not the seed), so that equal iterations are equal compute."""
    arms = work / "arms"
    same_seed = [arms / f"{a}-s{seed}" for a in TEACHER_PLANNED]
    teacher = next((d for d in same_seed + teacher_arms_ran(work) if d.is_dir()), None)
    if teacher is None:
        raise AblationError(f"the {arm} arm takes the teacher's plans: run teacher, teacher_long or rounds first")
    source, arm_dir = teacher.name.rsplit("-s", 1)[0], arms / f"{arm}-s{seed}"
    try:
        adopt_plans(
            round_dataset(Layout(teacher).nnunet, config.nnunet_dataset_id, f"{config.name}_{source}", 0),
            round_dataset(Layout(arm_dir).nnunet, config.nnunet_dataset_id, f"{config.name}_{arm}", 0),
        )
    except NnunetError as exc:
        if not (arm_dir / "nnunet").is_dir():  # the teacher's side: its own message says it
            raise
        raise AblationError(
            f"{arm_dir} was planned otherwise than the teacher ({teacher.name}; an ablation from before "
            f"these arms took the teacher's plans?): move that folder aside to train the arm again"
        ) from exc


@flow(name="ablation", flow_run_name="ablation")
def ablation(config_path: str, workdir: str, arms: list[str], seeds: list[int]) -> str:
    """Train and evaluate every arm for every seed, then write the ablation table."""
    from hybridlabel.flows.pipeline import first_round_to_run, pipeline

    config, work = load_config(Path(config_path)), Path(workdir)
    for arm, seed in plan_arms(arms, seeds, bool(teacher_arms_ran(work))):
        arm_dir = work / "arms" / f"{arm}-s{seed}"
        if arm in TAKE_TEACHER_PLANS:
            _adopt_teacher_plans(config, work, arm, seed)
        manifest = write_oracle_manifest(config, work / "arms" / "oracle-manifest.csv") if arm == "oracle" else None
        cfg = arm_config(config, arm, seed, manifest)
        cfg_path = atomic_write_text(work / "arms" / f"{arm}-s{seed}.yaml", render_config_yaml(cfg))
        start = first_round_to_run(arm_dir, cfg)
        if start < len(cfg.rounds):  # completed arms are skipped: the ablation resumes
            pipeline.with_options(flow_run_name=f"arm-{arm}-seed-{seed}")(str(cfg_path), str(arm_dir), start, False)
    rows = merge_rows(read_ablation(work), collect_arms(work, arms, seeds, config))
    return str(write_ablation(work, rows))
