"""Environments and command lines of nnU-Net subprocesses (pure builders).

nnU-Net reads its `nnUNet_*` variables from the environment: they are set here for
its subprocesses only, never in the caller's process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hybridlabel.models.nnunet.identity import FOLD, ModelIdentity
from hybridlabel.models.nnunet.plans import DEFAULT_CONFIGURATION
from hybridlabel.models.nnunet.spec import SPEC_ENV

TRAINERS_DIR = Path(__file__).resolve().parent / "trainers"


def nnunet_env(
    root: Path,
    base: dict[str, str],
    n_proc: int = 2,
    n_proc_da: int | None = None,
    spec_path: Path | None = None,
    compile_network: bool = False,
) -> dict[str, str]:
    env = dict(base)
    env.update(
        {
            "nnUNet_raw": str(Path(root) / "raw"),
            "nnUNet_preprocessed": str(Path(root) / "preprocessed"),
            "nnUNet_results": str(Path(root) / "results"),
            "nnUNet_extTrainer": str(TRAINERS_DIR),
            "nnUNet_def_n_proc": str(n_proc),
            "nnUNet_compile": "true" if compile_network else "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if n_proc_da is not None:  # 0 + seeds = bit-identical weights on CPU (planning needs > 0)
        env["nnUNet_n_proc_DA"] = str(n_proc_da)
    if spec_path is not None:
        env[SPEC_ENV] = str(spec_path)
    return env


def _die_with_parent() -> str:
    """Python that makes the child end when the process that started it dies (Linux's
    parent-death signal, then a check that the parent is still the one that started it):
    a killed pipeline leaves no nnU-Net training running on."""
    if not sys.platform.startswith("linux"):
        return ""
    return (
        f"import ctypes, os, signal; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
        f"os.getppid() == {os.getpid()} or sys.exit(1); "
    )


def _entry(module: str, func: str) -> list[str]:
    # the console scripts' own entry points, run with this interpreter
    return [
        sys.executable,
        "-c",
        f"import sys; {_die_with_parent()}from {module} import {func} as f; sys.argv[0] = '{func}'; f()",
    ]


def plan_command(dataset_id: int, n_proc: int = 2, gpu_memory_gb: float | None = None) -> list[str]:
    """Fingerprint and plans (every configuration) only: the images are preprocessed by
    hybridlabel, once per configuration."""
    memory = [] if gpu_memory_gb is None else ["-gpu_memory_target", str(gpu_memory_gb)]
    return _entry("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints", "plan_and_preprocess_entry") + [
        "-d",
        str(dataset_id),
        "--no_pp",
        "-npfp",
        str(n_proc),
        *memory,
    ]


def full_preprocess_command(
    dataset_id: int, plans: str = "nnUNetPlans", n_proc: int = 2, configuration: str = DEFAULT_CONFIGURATION
) -> list[str]:
    """nnU-Net's own preprocessing of a whole dataset (the reference of the benchmark)."""
    return _entry("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints", "preprocess_entry") + [
        "-d",
        str(dataset_id),
        "-c",
        configuration,
        "-plans_name",
        plans,
        "-np",
        str(n_proc),
    ]


def train_command(model: ModelIdentity, device: str, continue_training: bool = False) -> list[str]:
    """nnU-Net's training entry point. A student's parent weights travel in the training
    spec, not as `-pretrained_weights`: nnU-Net's loader unpickles the checkpoint whole and
    drops the segmentation heads (models.nnunet.warm_start)."""
    cmd = _entry("nnunetv2.run.run_training", "run_training_entry") + [
        str(model.dataset_id),
        model.configuration,
        FOLD,
        "-tr",
        model.trainer,
        "-p",
        model.plans,
        "-device",
        device,
    ]
    if continue_training:
        cmd.append("--c")
    return cmd
