"""The network a plans variant describes (torch; for parameter counts and prediction)."""

from __future__ import annotations

def build_network(plans: dict, dataset_json: dict, configuration: str, deep_supervision: bool = False):
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from hybridlabel.models.nnunet.trainers.hybridlabel_trainer import HybridLabelTrainer

    pm = PlansManager(plans)
    config = pm.get_configuration(configuration)
    n_in = determine_num_input_channels(pm, config, dataset_json)
    n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
    return HybridLabelTrainer.build_network_architecture(pm, config, n_in, n_out, enable_deep_supervision=deep_supervision)


def count_parameters(plans: dict, dataset_json: dict, configuration: str) -> int:
    return sum(p.numel() for p in build_network(plans, dataset_json, configuration).parameters())
