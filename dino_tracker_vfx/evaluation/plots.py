"""Evaluation and training pictures (matplotlib, Agg canvas; files written atomically).

* :func:`plot_per_video` - grouped bars of per-video metrics (e.g. AJ, delta_avg, OA) with the means.
* :func:`plot_occlusion_curve` - accuracy vs trajectory occlusion rate (as DINO-Tracker Fig. 6): queries
  binned by the fraction of frames their GT point is occluded; mean per-track delta_avg / AJ / OA per bin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import atomic

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_png) -> Path:
    out_png = Path(out_png)
    fig.tight_layout()
    with atomic.atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return out_png


def plot_per_video(rows: Sequence[Mapping], keys: Sequence[str], out_png, title: str = "",
                   label_key: str = "video") -> Path:
    """Grouped bars: one group per row (video), one bar per key; dashed lines at the means."""
    labels = [str(r[label_key]) for r in rows]
    n, k = len(rows), len(keys)
    fig = _figure(min(16.0, max(6.0, 0.13 * n * max(1, k) + 2)), 4.2)
    ax = fig.add_subplot(111)
    x = np.arange(n)
    w = 0.8 / max(1, k)
    for j, key in enumerate(keys):
        vals = np.array([float(r.get(key, np.nan)) for r in rows])
        c = COLOURS[j % len(COLOURS)]
        ax.bar(x + (j - (k - 1) / 2) * w, vals, w, label=f"{key} (mean {np.nanmean(vals):.3f})" if n else key,
               color=c)
        if n:
            ax.axhline(np.nanmean(vals), color=c, ls="--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.22)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncol=max(1, k), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, out_png)


def occlusion_bins(occ_rate, values: Mapping[str, np.ndarray], edges=(0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0001)):
    """Bin per-track values by occlusion rate -> (edges, counts [B], {key: mean [B]}), NaN-aware."""
    occ = np.asarray(occ_rate, np.float64)
    e = np.asarray(edges, np.float64)
    b = np.clip(np.digitize(occ, e) - 1, 0, len(e) - 2)
    counts = np.bincount(b, minlength=len(e) - 1)
    means = {}
    for k, v in values.items():
        v = np.asarray(v, np.float64)
        means[k] = np.array([np.nanmean(v[(b == i) & np.isfinite(v)]) if np.any((b == i) & np.isfinite(v))
                             else np.nan for i in range(len(e) - 1)])
    return e, counts, means


def plot_occlusion_curve(occ_rate, values: Mapping[str, np.ndarray], out_png, title: str = "") -> Path:
    """Accuracy vs occlusion rate. ``occ_rate`` float ``[Q]`` (fraction of frames occluded per query);
    ``values``: ``{"delta_avg": [Q], "AJ": [Q], ...}`` per-track metrics of the same queries."""
    e, counts, means = occlusion_bins(occ_rate, values)
    centres = [f"{e[i]:.1f}-{min(e[i + 1], 1.0):.1f}" for i in range(len(e) - 1)]
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot(111)
    x = np.arange(len(centres))
    for j, (k, m) in enumerate(means.items()):
        ax.plot(x, m, "o-", color=COLOURS[j % len(COLOURS)], label=k)
    ax2 = ax.twinx()
    ax2.bar(x, counts, 0.6, color="0.85", zorder=0)
    ax2.set_ylabel("queries per bin", color="0.4")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xticks(x)
    ax.set_xticklabels(centres, fontsize=8)
    ax.set_xlabel("trajectory occlusion rate (fraction of frames occluded)")
    ax.set_ylabel("mean per-track score")
    ax.set_ylim(0, 1.22)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncol=max(1, len(means)), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, out_png)
