"""The network a plans variant describes (torch; for parameter counts and prediction)."""

from __future__ import annotations


def build_network(
    plans: dict, dataset_json: dict, configuration: str, deep_supervision: bool = False, allow_init: bool = True
):
    # nnU-Net's trainer builds its network with this call (nnUNetTrainer.build_network_architecture,
    # which our trainer keeps); calling it directly spares `predict` importing the training
    # stack (matplotlib, seaborn, the data loaders): ~1.7 s of every start-up
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(plans)
    config = pm.get_configuration(configuration)
    n_in = determine_num_input_channels(pm, config, dataset_json)
    n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
    return get_network_from_plans(
        config.network_arch_class_name,
        config.network_arch_init_kwargs,
        config.network_arch_init_kwargs_req_import,
        n_in,
        n_out,
        allow_init=allow_init,
        deep_supervision=deep_supervision,
    )


def count_parameters(plans: dict, dataset_json: dict, configuration: str) -> int:
    return sum(p.numel() for p in build_network(plans, dataset_json, configuration).parameters())
