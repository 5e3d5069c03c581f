"""Label descriptions that viewers read, so a reviewer sees named organs in the report's
colours: ITK-SNAP's label description file (Segmentation > Import Label Descriptions)
and 3D Slicer's color table (`.ctbl`, loaded with the label map as its colour node)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hybridlabel.tasks.files.atomic import atomic_write_text


def class_rgb(class_id: int) -> tuple[int, int, int]:
    """The class's colour in the report's overlays (matplotlib's tab20, by id)."""
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["tab20"]((class_id - 1) % 20)
    return round(r * 255), round(g * 255), round(b * 255)


def itksnap_labels(labels: Mapping[int, str]) -> str:
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File (hybridlabel)",
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
        "################################################",
        '    0     0    0    0     0  0  0    "Clear Label"',
    ]
    for c, name in sorted(labels.items()):
        if c == 0:
            continue
        r, g, b = class_rgb(c)
        lines.append(f'{c:5d} {r:5d} {g:4d} {b:4d}     1  1  1    "{name}"')
    return "\n".join(lines) + "\n"


def slicer_color_table(labels: Mapping[int, str]) -> str:
    rows = [
        f"{c} {name.replace(' ', '_')} {' '.join(map(str, class_rgb(c)))} 255"
        for c, name in sorted(labels.items())
        if c != 0
    ]
    return (
        "\n".join(["# Color table file hybridlabel.ctbl", f"# {len(rows) + 1} values", "0 background 0 0 0 0", *rows])
        + "\n"
    )


def write_viewer_files(folder: Path, labels: Mapping[int, str]) -> list[Path]:
    """`labels.txt` (ITK-SNAP) and `hybridlabel.ctbl` (3D Slicer) in `folder`."""
    return [
        atomic_write_text(Path(folder) / "labels.txt", itksnap_labels(labels)),
        atomic_write_text(Path(folder) / "hybridlabel.ctbl", slicer_color_table(labels)),
    ]
