"""The HTML report of a finished pipeline, rendered by a real browser (headless Chromium,
installed by .ci/run), and the `evaluate` command on label folders."""

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from tests.realct import REAL_CT

pytestmark = pytest.mark.slow  # trains models or runs the pipeline: `pytest -m "not slow"` skips it

runner = CliRunner()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise AssertionError(
        "headless Chromium is needed for the report test; install it with `apt-get install chromium` (.ci/run does)"
    )


def _browser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_renders_in_a_real_browser(finished, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--workdir", str(finished["work"]), "--out", str(out), "--cases", "2"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for heading in (
        "Verdict",
        "Rounds (registry)",
        "Model quality on val cases",
        "Pseudo-label quality vs training",
        "Label sources per class",
        "Uncertainty of unlabeled cases",
        "Time per stage per round",
        "Val cases: ground truth and each model",
        "CutMix: tumours pasted into training patches",
        "Registry summary",
    ):
        assert heading in text, heading
    assert text.count('class="caption"') >= 8  # every chart says how to read it
    assert "The rounds " in text and "val organ DSC over the classes present" in text  # the verdict's words
    assert "No case was quarantined." in text or "quarantine_reason" in text  # no lone "none" at the end
    assert 'src="http' not in text and "<link" not in text  # self-contained: nothing fetched
    images = re.findall(r'src="data:image/png;base64,', text)
    assert len(images) >= 8

    dom = _browser("--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert 'data-ready="1"' in body and 'data-errors="0"' in body, body  # the script ran to its end
    assert int(re.search(r'data-sections="(\d+)"', body).group(1)) >= 8

    shot = tmp_path / "report.png"
    png = _browser(f"--screenshot={shot}", "--window-size=1280,2400", out.as_uri())
    assert png.returncode == 0 and shot.stat().st_size > 20_000, png.stderr[-2000:]
    keep = Path(__file__).parents[3] / ".pytest_cache" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)  # for a human look after the run


def test_report_without_registry_is_one_line(tmp_path):
    result = runner.invoke(app, ["report", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "holds no registry" in result.output


def test_evaluate_folders_writes_csv_and_prints_summary(tmp_path):
    import SimpleITK as sitk

    from tests.realct import read_flare

    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    full, image = read_flare("ct_abdomen_3mm_totalseg.nii.gz")
    fast, _ = read_flare("ct_abdomen_3mm_totalseg_fast.nii.gz")
    for case, (g, p) in {"a": (full, fast), "b": (fast, full), "c": (full, full)}.items():
        for folder, array in (("gt", g), ("pred", p)):
            img = sitk.GetImageFromArray(array)
            img.CopyInformation(image)
            sitk.WriteImage(img, str(tmp_path / folder / f"{case}.nii.gz"))
    (tmp_path / "pred" / "c.nii.gz").unlink()  # a missing prediction counts as empty
    out = tmp_path / "m.csv"
    result = runner.invoke(
        app, ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "organ mean" in result.output and "no prediction" in result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["case_id", "class_id", "class", "dsc", "nsd", "gt_present"]
    assert set(table["case_id"]) == {"a", "b", "c"} and len(table) == 3 * 14
    assert "organ mean (present)" in result.output
    organs = runner.invoke(
        app,
        [
            "evaluate",
            "--pred",
            str(tmp_path / "pred"),
            "--gt",
            str(tmp_path / "gt"),
            "--out",
            str(out),
            "--classes",
            "1-13",
        ],
    )
    assert organs.exit_code == 0 and set(pd.read_csv(out)["class_id"]) == set(range(1, 14))  # no tumour scored
    bad = runner.invoke(
        app, ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--classes", "1-99"]
    )
    assert bad.exit_code == 2 and "not classes of the label map" in bad.output
    assert (table.loc[(table["case_id"] == "c") & table["class_id"].isin(range(1, 14)), "dsc"] == 0).any()
    a = table[table["case_id"] == "a"].set_index("class_id")
    assert 0.8 < a.loc[1, "dsc"] <= 1 and 0 <= a.loc[1, "nsd"] <= 1


def test_evaluate_rejects_mismatched_inputs(tmp_path):
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "nope"), "--gt", str(REAL_CT)])
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "p").mkdir()
    result = runner.invoke(
        app, ["evaluate", "--pred", str(tmp_path / "p"), "--gt", str(REAL_CT / "ct_abdomen_3mm_totalseg.nii.gz")]
    )
    assert result.exit_code == 2 and "two files or as two folders" in result.output
