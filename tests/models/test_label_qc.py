import numpy as np

from hybridlabel.models.label_qc import label_stats, qc_flags, qc_reference

NAMES = {1: "liver", 2: "spleen", 3: "ivc"}


def _label(liver=(slice(0, 4), slice(0, 5), slice(0, 5)), spleen_pieces=1) -> np.ndarray:
    label = np.zeros((8, 10, 10), np.uint8)
    label[liver] = 1
    for i in range(spleen_pieces):  # one-voxel islands two voxels apart: never 26-connected
        label[6, 2 * (i % 5), 2 * (i // 5) + 1] = 2
    return label


def test_stats_give_volume_in_ml_and_26_connected_pieces():
    stats = label_stats(_label(spleen_pieces=3), (2.0, 1.0, 1.0))
    assert stats == {1: {"volume_ml": 0.2, "components": 1}, 2: {"volume_ml": 0.006, "components": 3}}
    diagonal = np.zeros((3, 3, 3), np.uint8)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = 4
    assert label_stats(diagonal, (1, 1, 1)) == {4: {"volume_ml": 0.002, "components": 1}}
    assert label_stats(np.zeros((2, 2, 2), np.uint8), (1, 1, 1)) == {}
    view = _label()
    view.flags.writeable = False  # as SimpleITK's GetArrayViewFromImage gives it
    assert label_stats(view, (1, 1, 1))[1]["components"] == 1


def test_reference_spans_the_training_labels():
    ref = qc_reference(
        [
            label_stats(_label(), (1, 1, 1)),
            label_stats(_label(liver=(slice(0, 2), slice(0, 5), slice(0, 5)), spleen_pieces=2), (1, 1, 1)),
        ]
    )
    assert ref == {
        "1": {"volume_ml": [0.05, 0.1], "max_components": 1, "cases": 2},
        "2": {"volume_ml": [0.001, 0.002], "max_components": 2, "cases": 2},
    }


def test_a_bad_output_is_flagged_and_a_plausible_one_is_not():
    train = _label()
    train[6, 0, 0:3] = 2  # the spleen: 3 voxels in one piece
    ref = qc_reference([label_stats(train, (1, 1, 1))])
    assert qc_flags(label_stats(_label(liver=(slice(0, 4), slice(0, 4), slice(0, 5))), (1, 1, 1)), ref, NAMES) == []
    bad = np.zeros_like(train)
    bad[:5] = 1  # the liver over most of the scan
    for i in range(6):
        bad[6, 2 * (i % 5), 2 * (i // 5)] = 2  # the spleen in 6 one-voxel islands: as much, but in pieces
    bad[7, 9, 9] = 3  # a class no training label held
    flags = qc_flags(label_stats(bad, (1, 1, 1)), ref, NAMES)
    assert flags == [
        "liver: 0.5 ml, 5.0x the largest training volume (0.1 ml)",
        "spleen: 6 pieces, at most 1 in training labels",
        "ivc: present, but in no training label",
    ]
