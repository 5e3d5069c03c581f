"""Plans variants (network sizes) as edited copies of nnU-Net's plans (pure dicts).

A variant keeps the configuration's `data_identifier`, so it trains on the same
preprocessed data: only the network changes.
"""

from __future__ import annotations

import copy

CONFIGURATION = "3d_fullres"
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


def plans_variant(plans: dict, network: str, batch_size: int | None = None,
                  dataset_name: str | None = None) -> dict:
    """A copy of `plans` with the network of `network` and, optionally, a batch size."""
    if network != "default" and network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected default, {', '.join(NETWORKS)}")
    out = copy.deepcopy(plans)
    out["plans_name"] = plans_name(network)
    if dataset_name:
        out["dataset_name"] = dataset_name
    config = out["configurations"][CONFIGURATION]
    if batch_size is not None:
        config["batch_size"] = int(batch_size)
    if network == "default":
        return out
    base, cap, n_enc, n_dec = NETWORKS[network]
    kwargs = config["architecture"]["arch_kwargs"]
    stages = int(kwargs["n_stages"])
    kwargs["features_per_stage"] = [min(base * 2 ** i, cap) for i in range(stages)]
    kwargs["n_conv_per_stage"] = [n_enc] * stages
    kwargs["n_conv_per_stage_decoder"] = [n_dec] * (stages - 1)
    return out
