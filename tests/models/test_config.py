import pytest

from hybridlabel.models.config import ConfigError, PipelineConfig, SelectionConfig, load_config
from hybridlabel.models.config_yaml import render_config_yaml


def test_defaults_follow_the_design():
    cfg = PipelineConfig()
    assert cfg.label_map.labels[1] == "liver" and cfg.label_map.labels[14] == "tumor"
    assert cfg.label_map.organ_ids == tuple(range(1, 14))
    assert cfg.merge.attribution_mm == 5 and cfg.merge.min_component_mm3 == 150
    assert cfg.merge.max_tumor_organ_gap_mm == 20
    assert cfg.merge.tumor_bearing_organ == "pseudo" and cfg.merge.tumor_fallback == "organ"
    assert cfg.merge.min_voxel_confidence is None
    assert [r.name for r in cfg.rounds][0] == "teacher" and cfg.rounds[0].train_roles == ["strong"]


def test_rendered_yaml_loads_back_to_the_same_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(render_config_yaml())
    loaded = load_config(path)
    assert loaded.model_copy(update={"dataset": PipelineConfig().dataset}) == PipelineConfig()
    assert loaded.dataset == tmp_path / "data" / "raw"  # relative to the file
    assert "# tumour components are dilated by this many mm" in path.read_text()


def test_config_is_frozen():
    with pytest.raises(Exception):
        PipelineConfig().merge.attribution_mm = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("merge: {attribution_mm: -1}", "merge.attribution_mm"),
        ("merge: {tumor_fallback: nowhere}", "merge.tumor_fallback"),
        ("unknown_field: 1", "unknown_field"),
        ("rounds: []", "rounds"),
        ("[1, 2", "not valid YAML"),
        ("- a\n- b", "must be a YAML mapping"),
        ("rounds: [{name: t, kind: teacher}, {name: s, predict_roles: [partail]}]", "rounds.1.predict_roles.0"),
        ("rounds: [{name: t, kind: teacher, train_roles: [val]}]", "rounds.0.train_roles.0"),
        ("merge: {largest_component_classes: [1, 99]}", "merge.largest_component_classes holds [99]"),
        ("merge: {min_pseudo_dice: 1.5}", "merge.min_pseudo_dice"),
        (
            "rounds: [{name: t, kind: teacher}, {name: s, training: {configuration: 2d, init_from_parent: true}}]",
            "round 's' starts from 't''s weights but trains 2d/default where that round trained 3d_fullres/default",
        ),
        ("rounds: [{name: t, kind: teacher, training: {cutmix: {}}}]", "round 't': training.cutmix pastes tumours"),
        (
            "rounds: [{name: t, kind: teacher, targets: organs+tumor, training: {loss: naive, cutmix: {}}}]",
            "needs a partial-label loss",
        ),
        (
            "rounds: [{name: t, kind: teacher, targets: organs+tumor, training: {cutmix: {host_organs: [14]}}}]",
            "training.cutmix.host_organs holds [14]",
        ),
        ("rounds: [{name: t, kind: teacher, training: {cutmix: {margins: [[9, 8], [1, 2]]}}}]", "0 <= min <= max"),
        # the probe's numbers: an infinite learning rate, a seed beyond 32 bits, a million workers
        ("rounds: [{name: t, kind: teacher, training: {learning_rate: .inf}}]", "rounds.0.training.learning_rate"),
        ("rounds: [{name: t, kind: teacher, training: {seed: 1180591620717411303424}}]", "rounds.0.training.seed"),
        ("workers: 1000000", "workers: Input should be less than or equal to 256"),
        ("merge: {min_component_mm3: .nan}", "merge.min_component_mm3"),
    ],
)
def test_bad_config_gives_one_line_error(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_config_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="hybridlabel init"):
        load_config(tmp_path / "nope.yaml")


def test_keep_is_count_or_fraction():
    assert SelectionConfig(organ_keep=1000).organ_keep == 1000
    assert SelectionConfig(organ_keep=0.5).organ_keep == 0.5
    with pytest.raises(Exception):
        SelectionConfig(organ_keep=1.5)
    with pytest.raises(Exception):
        SelectionConfig(tumor_keep=-3)


def test_the_cutmix_comment_names_the_real_defaults():
    from hybridlabel.models.config import CutMixConfig, TrainingConfig

    text = TrainingConfig.model_fields["cutmix"].description
    d = CutMixConfig()
    margins = "[" + ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in d.margins) + "]"
    for fragment in (
        f"probability: {d.probability}",
        f"margins: {margins}",
        f"placement: {d.placement}",
        f"min_voxels: {d.min_voxels}",
        "host_organs: null",
    ):
        assert fragment in text, fragment
