"""The report's figures as PNG bytes (matplotlib, Agg backend, chosen when drawing)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from hybridlabel.models.metric_summary import ORGAN_MEAN, ORGAN_MEAN_PRESENT, SUMMARY_ROWS, TUMOR

SUMMARY_COLORS = {ORGAN_MEAN: "black", ORGAN_MEAN_PRESENT: "#555555", TUMOR: "#c62828"}

SOURCE_COLOURS = {"gt": "#2e7d32", "pseudo": "#1565c0", "ignore": "#9e9e9e", "none": "#eeeeee"}
DECISION_COLOURS = {"tumor_kept": "#2e7d32", "organ_kept": "#f9a825", "sits_out": "#9e9e9e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def metric_lines(table: pd.DataFrame, ylabel: str) -> bytes:
    """Rounds x classes table (rounds_by_class) as one line per class; organ mean bold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    cmap = plt.get_cmap("tab20")
    for i, col in enumerate(table.columns):
        bold = col in SUMMARY_ROWS
        ax.plot(
            table.index,
            table[col],
            marker="o",
            lw=3 if bold else 1,
            alpha=1 if bold else 0.7,
            label=col,
            color=SUMMARY_COLORS.get(col, cmap(i % 20)),
        )
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(list(table.index))
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


def source_bars(sources: pd.DataFrame, labels: dict[int, str]) -> bytes:
    """Per round, per class: cases whose label came from gt / pseudo / ignore / none."""
    plt = _plt()
    rounds = sorted(sources["round"].unique())
    fig, axes = plt.subplots(1, len(rounds), figsize=(4 * len(rounds), 3.5), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], rounds):
        frame = sources[sources["round"] == r].pivot_table(
            index="class_id", columns="source", values="cases", aggfunc="sum", fill_value=0
        )
        bottom = np.zeros(len(frame))
        for src in [s for s in SOURCE_COLOURS if s in frame.columns]:
            ax.bar(range(len(frame)), frame[src], bottom=bottom, color=SOURCE_COLOURS[src], label=src)
            bottom += frame[src].to_numpy()
        ax.set_xticks(range(len(frame)))
        ax.set_xticklabels([labels.get(int(c), str(c))[:8] for c in frame.index], rotation=90, fontsize=7)
        ax.set_title(f"round {r}")
    axes[0][0].set_ylabel("cases")
    axes[0][-1].legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")  # beside the bars, never on them
    return _png(fig)


def score_strips(scores: pd.DataFrame, cutoffs: dict[int, float], scorer: str) -> bytes:
    """Organ uncertainty of unlabeled cases per round, coloured by decision, with the cut-off."""
    plt = _plt()
    rounds = sorted(scores["round"].unique())
    fig, ax = plt.subplots(figsize=(7, 1 + 0.8 * len(rounds)))
    rng = np.random.default_rng(0)
    for i, r in enumerate(rounds):
        frame = scores[scores["round"] == r]
        y = i + rng.uniform(-0.2, 0.2, len(frame))
        colours = [DECISION_COLOURS.get(d, "#000000") for d in frame["decision"]]
        ax.scatter(frame["organ_score"], y, c=colours, s=30)
        if r in cutoffs:
            ax.vlines(cutoffs[r], i - 0.35, i + 0.35, colors="#c62828", linestyles="--")
    ax.set_yticks(range(len(rounds)))
    ax.set_yticklabels([f"round {r}" for r in rounds])
    ax.set_xlabel(f"organ {scorer} (lower = more confident); dashed: cut-off")
    for name, colour in DECISION_COLOURS.items():
        ax.scatter([], [], c=colour, label=name)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _png(fig)


def stacked_barh(frame: pd.DataFrame, index: str, column: str, value: str, xlabel: str) -> bytes:
    """Horizontal stacked bars: one bar per `index`, segments per `column` (times, tumours)."""
    plt = _plt()
    table = frame.pivot_table(index=index, columns=column, values=value, aggfunc="sum", fill_value=0)
    fig, ax = plt.subplots(figsize=(7, 1 + 0.5 * len(table)))
    left = np.zeros(len(table))
    cmap = plt.get_cmap("tab10")
    for i, col in enumerate(table.columns):
        ax.barh([str(x) for x in table.index], table[col], left=left, color=cmap(i % 10), label=str(col))
        left += table[col].to_numpy()
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _png(fig)


def overlay_grid(rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]], labels: dict[int, str]) -> bytes:
    """One row per case (its CT slice, soft-tissue window), one column per label map
    (ground truth first, then each model), classes filled in fixed colours; the legend
    names every class drawn."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _plt()
    n_cols = max(len(panels) for _, _, panels in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(3.4 * n_cols, 3.5 * len(rows) + 0.8), squeeze=False)
    colours = plt.get_cmap("tab20")
    lut = ListedColormap([colours((c - 1) % 20) for c in range(1, 256)])
    drawn: set[int] = set()
    for axes_row, (title, ct, panels) in zip(axes, rows):
        for ax in axes_row:
            ax.axis("off")
        for ax, (name, mask) in zip(axes_row, panels):
            ax.imshow(np.clip(ct, -160, 240), cmap="gray", interpolation="nearest")
            overlay = np.ma.masked_equal(mask.astype(np.int32), 0)
            ax.imshow(overlay, cmap=lut, vmin=1, vmax=255, alpha=0.5, interpolation="nearest")
            drawn |= {int(c) for c in np.unique(mask) if c}
            ax.set_title(f"{title}: {name}" if name == panels[0][0] else name, fontsize=9)
    handles = [Patch(color=colours((c - 1) % 20), label=labels.get(c, str(c))) for c in sorted(drawn)]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(7, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
    return _png(fig)


def arm_bars(table: pd.DataFrame) -> bytes:
    """Organ DSC (over the classes present, where the rows have it) and tumour DSC per arm /
    round, mean with the SD over seeds as error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(table))
    present = "organ_dsc_present_mean" in table  # rows written before that column have FLARE's mean only
    bars = (
        (
            -0.2,
            "organ_dsc_present" if present else "organ_dsc",
            "#1565c0",
            "organ DSC, classes present" if present else "organ DSC",
        ),
        (0.2, "tumor_dsc", "#c62828", "tumour DSC"),
    )
    for offset, key, colour, name in bars:
        ax.bar(
            x + offset,
            table[f"{key}_mean"].fillna(0),
            0.38,
            yerr=table[f"{key}_sd"].fillna(0),
            color=colour,
            label=name,
            capsize=3,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(table["arm"], rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("DSC (val)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def pasted_patches(rounds: list[tuple[str, list[dict]]], labels: dict[int, str]) -> bytes:
    """One row per round: the training patches that got a pasted tumour, as the network saw
    them (intensities as normalised for training, windowed to their 1-99th percentiles),
    classes filled in the report's colours, the pasted box outlined in yellow."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _plt()
    n_cols = max(len(ex) for _, ex in rounds)
    fig, axes = plt.subplots(len(rounds), n_cols, figsize=(3.2 * n_cols, 3.4 * len(rounds) + 0.8), squeeze=False)
    colours = plt.get_cmap("tab20")
    lut = ListedColormap([colours((c - 1) % 20) for c in range(1, 256)])
    drawn: set[int] = set()
    for axes_row, (name, examples) in zip(axes, rounds):
        for ax in axes_row:
            ax.axis("off")
        for i, (ax, ex) in enumerate(zip(axes_row, examples)):
            lo, hi = np.percentile(ex["image"], (1, 99))
            ax.imshow(ex["image"], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            label = np.where((ex["label"] > 0) & (ex["label"] <= max(labels)), ex["label"], 0).astype(np.int32)
            ax.imshow(np.ma.masked_equal(label, 0), cmap=lut, vmin=1, vmax=255, alpha=0.5, interpolation="nearest")
            ax.contour(ex["box"].astype(float), levels=[0.5], colors="yellow", linewidths=1.2)
            drawn |= {int(c) for c in np.unique(label) if c}
            ax.set_title(f"{name}: patch {i + 1}" if i == 0 else f"patch {i + 1}", fontsize=9)
    handles = [Patch(color=colours((c - 1) % 20), label=labels.get(c, str(c))) for c in sorted(drawn)]
    handles.append(Patch(facecolor="none", edgecolor="yellow", label="pasted box"))
    fig.legend(handles=handles, loc="lower center", ncol=min(7, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _png(fig)
