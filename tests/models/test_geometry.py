from hybridlabel.models.geometry import Grid, compare_grids, orientation_code, orientation_mix

IDENTITY = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)


def grid(size=(10, 20, 5), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=IDENTITY):
    return Grid(size, spacing, origin, direction)


def test_same_grid():
    assert compare_grids(grid(), grid()) == ("same", None)


def test_flipped_axis_with_moved_origin_is_the_same_space():
    flipped = grid(origin=(0.0, 19.0, 0.0), direction=(1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    assert compare_grids(grid(), flipped)[0] == "resample"


def test_coarser_grid_over_the_same_extent_is_resampled():
    coarse = grid(size=(5, 10, 5), spacing=(2.0, 2.0, 2.0), origin=(0.5, 0.5, 0.0))
    assert compare_grids(grid(), coarse)[0] == "resample"


def test_shifted_label_is_incompatible_with_a_reason():
    match, why = compare_grids(grid(), grid(origin=(30.0, 0.0, 0.0)))
    assert match == "incompatible" and "physical space" in why


def test_two_dimensional_label_is_incompatible():
    flat = Grid((10, 20), (1.0, 1.0), (0.0, 0.0), (1.0, 0, 0, 1.0))
    assert compare_grids(grid(), flat)[0] == "incompatible"


def test_orientation_codes_are_the_dicom_letters_of_each_axis():
    assert orientation_code(IDENTITY) == "LPS"
    assert orientation_code((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)) == "RAS"  # a NIfTI written in RAS
    assert orientation_code((0, 0, 1.0, 1.0, 0, 0, 0, 1.0, 0)) == "PSL"  # axes permuted (a sagittal stack)
    tilted = (0.99, -0.14, 0, 0.14, 0.99, 0, 0, 0, 1.0)  # gantry tilt: still closest to LPS
    assert orientation_code(tilted) == "LPS"


def test_orientation_mix_names_the_cases_that_are_reoriented():
    assert orientation_mix({"a": "RAS", "b": "RAS"}) is None
    line = orientation_mix({f"c{i}": "RAS" for i in range(6)} | {f"r{i}": "LPS" for i in range(5)})
    assert line.startswith("images in 2 axis orientations (RAS: 6, LPS: 5; not LPS: c0, c1, c2 and 3 more)")
    assert "predicted in LPS" in line and "\n" not in line
