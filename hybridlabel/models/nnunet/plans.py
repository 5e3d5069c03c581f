"""Plans variants (network sizes) as edited copies of nnU-Net's plans (pure dicts).

A variant keeps the configuration's `data_identifier`, so it trains on the same
preprocessed data: only the network changes. Configurations (`2d`, `3d_fullres`,
`3d_lowres`) are nnU-Net's, as its planner writes them.
"""

from __future__ import annotations

import copy

DEFAULT_CONFIGURATION = "3d_fullres"  # nnU-Net's; `training.configuration` chooses per model
BASE_PLANS = "nnUNetPlans"

# base features, max features, convolutions per encoder stage and per decoder stage
NETWORKS: dict[str, tuple[int, int, int, int]] = {
    "lightweight": (16, 256, 2, 2),  # the FLARE22/23 small nnU-Nets
    # CPU tests and demos. Measured on the phantom (H100, 400 iterations, Adam): 16 features
    # with one convolution per stage reached organ Dice 0.31, 8 features with two 0.11,
    # 8 with one 0.02: width, not depth, is what a short budget needs.
    "tiny": (16, 128, 1, 1),
}


def plans_name(network: str) -> str:
    return BASE_PLANS if network == "default" else f"{BASE_PLANS}_{network}"


def configuration_problem(plans: dict, configuration: str) -> str | None:
    """Why `configuration` cannot be trained with these plans, or None."""
    available = sorted(c for c, v in plans.get("configurations", {}).items() if "architecture" in v)
    if configuration not in available:
        return (
            f"nnU-Net's planner wrote no {configuration!r} configuration for this dataset (it has "
            f"{', '.join(available)}); choose one of those in training.configuration"
        )
    return None


def plans_variant(
    plans: dict,
    network: str,
    batch_size: int | None = None,
    dataset_name: str | None = None,
    configuration: str = DEFAULT_CONFIGURATION,
) -> dict:
    """A copy of `plans` with the network of `network` in `configuration` and, optionally,
    a batch size."""
    if network != "default" and network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected default, {', '.join(NETWORKS)}")
    if problem := configuration_problem(plans, configuration):
        raise ValueError(problem)
    out = copy.deepcopy(plans)
    out["plans_name"] = plans_name(network)
    if dataset_name:
        out["dataset_name"] = dataset_name
    config = out["configurations"][configuration]
    if batch_size is not None:
        config["batch_size"] = int(batch_size)
    if network == "default":
        return out
    base, cap, n_enc, n_dec = NETWORKS[network]
    kwargs = config["architecture"]["arch_kwargs"]
    stages = int(kwargs["n_stages"])
    kwargs["features_per_stage"] = [min(base * 2**i, cap) for i in range(stages)]
    kwargs["n_conv_per_stage"] = [n_enc] * stages
    kwargs["n_conv_per_stage_decoder"] = [n_dec] * (stages - 1)
    return out
