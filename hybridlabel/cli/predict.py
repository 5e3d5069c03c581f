"""`hybridlabel predict`: the exported model on a CT file, a DICOM series or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hybridlabel.cli.app import app, console, err_console, fail


@app.command()
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="model archive (.hlmodel.zip) written by the export"),
    source: Path = typer.Argument(
        ..., metavar="INPUT", help="NIfTI/MHA/NRRD file, DICOM series folder, or a folder of them"
    ),
    output: Path = typer.Argument(..., metavar="OUTPUT", help="label map (.nii.gz) for one input, or a folder"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    tta: str = typer.Option("none", "--tta", help="none | mirror (nnU-Net's 8 mirrorings)"),
    fast: Optional[bool] = typer.Option(
        None, "--fast/--no-fast", help="body crop + fast resampling (default: as exported, on)"
    ),
    min_tumor_peak: Optional[float] = typer.Option(
        None,
        "--min-tumor-peak",
        help="drop predicted tumours whose highest probability is below this (default: as exported; 0: keep all)",
    ),
    sha256: Optional[str] = typer.Option(
        None, "--sha256", help="refuse the archive unless its sha256 is this (the digest its publisher gave)"
    ),
) -> None:
    """Segment CTs with an exported model: label maps in the inputs' geometry, and an
    efficiency record per case (wall time, peak RAM, peak GPU memory, memory-time area).
    An output unlike the training labels (an organ far larger, in many more pieces) gets a
    `check:` line and its reasons in the record's `qc`.
    Exit code 0: every input segmented; 1: some failed (each says why); 2: nothing could start."""
    import hybridlabel
    from hybridlabel.cli.progress import BarOnStart
    from hybridlabel.tasks.model.archive import ArchiveError
    from hybridlabel.tasks.model.predict_files import PredictInputError

    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda, got {device!r}")
    if tta not in ("none", "mirror"):
        fail(f"--tta must be none or mirror, got {tta!r}")
    bar = BarOnStart("cases segmented")
    try:
        records = hybridlabel.predict(
            model,
            source,
            output,
            device,
            tta,
            fast,
            sha256,
            on_start=bar.start,
            on_case=bar.advance,
            min_tumor_peak=min_tumor_peak,
        )
    except (ArchiveError, PredictInputError, RuntimeError) as exc:
        bar.stop()
        fail(str(exc).splitlines()[0])
    bar.stop()
    for r in records:
        if "error" in r:
            err_console.print(f"[yellow]warning:[/] {r['case_id']}: {r['error']}", highlight=False, soft_wrap=True)
        else:
            console.print(
                f"{r['case_id']}: {r['output']}  {r['wall_time_s']:.1f} s, peak RAM {r['peak_ram_mb']:.0f} MB, "
                f"GPU {r['peak_gpu_mb']:.0f} MB ({r['device']}{', fast' if r['fast'] else ''})"
            )
            if flags := r["qc"]["flags"]:
                err_console.print(
                    f"[yellow]check:[/] {r['case_id']} looks implausible: {'; '.join(flags)}",
                    highlight=False,
                    soft_wrap=True,
                )
    failed = sum("error" in r for r in records)
    if failed:
        fail(f"{failed} of {len(records)} input(s) could not be segmented (see above; each has its record)", code=1)
