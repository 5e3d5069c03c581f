import pytest
import torch

from hybridlabel.models.nnunet.warm_start import warm_start_state


def _state(classes: int, features: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.conv.weight": torch.randn(features, 1, 3, 3, generator=g),
        "decoder.seg_layers.0.weight": torch.randn(classes, features, 1, 1, generator=g),
        "decoder.seg_layers.0.bias": torch.randn(classes, generator=g),
    }


def test_same_classes_carry_every_tensor_including_the_heads():
    parent, student = _state(14, seed=1), _state(14, seed=2)
    out, partial = warm_start_state(student, parent)
    assert partial == [] and all(torch.equal(out[k], parent[k]) for k in parent)


def test_a_new_class_keeps_the_shared_rows_and_starts_its_own_fresh():
    parent, student = _state(14, seed=1), _state(15, seed=2)  # organs -> organs + tumour
    out, partial = warm_start_state(student, parent)
    assert set(partial) == {"decoder.seg_layers.0.weight", "decoder.seg_layers.0.bias"}
    assert torch.equal(out["decoder.seg_layers.0.weight"][:14], parent["decoder.seg_layers.0.weight"])
    assert torch.equal(out["decoder.seg_layers.0.weight"][14], student["decoder.seg_layers.0.weight"][14])
    assert torch.equal(out["encoder.conv.weight"], parent["encoder.conv.weight"])


def test_another_network_is_refused_with_what_differs():
    with pytest.raises(ValueError, match="encoder.conv.weight.*init_from_parent"):
        warm_start_state(_state(14, features=4), _state(14, features=8))
