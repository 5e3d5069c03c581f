"""Shared fixtures: the real CT copied into tests/data/real-ct (licence beside it), and
a small phantom cohort written once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_CT = Path(__file__).parent / "data" / "real-ct"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def real_ct() -> Path:
    return REAL_CT


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory) -> Path:
    from tasks.phantom import write_phantom_cohort

    out = tmp_path_factory.mktemp("phantom")
    write_phantom_cohort(out, n_cases=12, seed=3)
    return out
