from hybridlabel.models.geometry import Grid, compare_grids

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
