import numpy as np

from hybridlabel.models.phantom import generate_phantom


def test_phantom_has_all_organs_and_plausible_intensities():
    case = generate_phantom(np.random.default_rng(1))
    assert case.image.shape == case.label.shape and case.image.shape[1:] == (64, 80)
    assert 32 <= case.image.shape[0] <= 48
    present = set(np.unique(case.label)) - {0}
    assert set(range(1, 14)) <= present | {14}
    assert set(range(1, 14)) <= set(np.unique(case.organ_label)) - {0}
    liver = case.image[case.label == 1].mean()
    kidney = case.image[case.label == 2].mean()
    assert 70 < liver < 120 and kidney > liver + 50  # contrast-enhanced kidney brighter
    assert case.image[0, 0, 0] < -900  # air outside the body


def test_tumours_sit_inside_their_host_organ():
    for seed in range(6):
        case = generate_phantom(np.random.default_rng(seed))
        tumour = case.label == 14
        assert len(case.tumors) == 0 or tumour.any()
        hosts = set(np.unique(case.organ_label[tumour]))
        assert hosts <= {t["host"] for t in case.tumors}
        assert 0 not in hosts


def test_phantom_is_deterministic_and_varies_between_cases():
    a = generate_phantom(np.random.default_rng([5, 1]))
    b = generate_phantom(np.random.default_rng([5, 1]))
    c = generate_phantom(np.random.default_rng([5, 2]))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)


def test_cases_vary_in_body_size_scan_length_and_contrast():
    cases = [generate_phantom(np.random.default_rng([3, i])) for i in range(8)]
    slices = {c.image.shape[0] for c in cases}
    body = [int((c.image[c.image.shape[0] // 2] > -500).sum()) for c in cases]
    aorta = [float(c.image[c.label == 5].mean()) for c in cases]
    assert len(slices) >= 3
    assert max(body) > 1.15 * min(body)  # habitus
    assert max(aorta) - min(aorta) > 25  # contrast phase, beyond the per-organ +-6 HU jitter
    explicit = generate_phantom(np.random.default_rng(0), size="flare", shape=(12, 64, 64))
    assert explicit.image.shape == (12, 64, 64)  # an explicit grid is kept as given
