#!/usr/bin/env python
"""Plot the anchor blend rule (dino_tracker_vfx/tracker/anchors.py) on a corrected track -> docs/anchor_blend.png.

A point moves along a curve over 40 frames. The query (frame 5) is followed by a row that drifts away;
the artist corrects frames 20 and 34; each anchor's row follows the point from its own frame with its own
drift, and its confidence drops where it is far from its anchor. The top panel shows x over time for
the rows, the blended track and the truth; the bottom panel the blend weights of each row. Run:

    python benchmarks/plot_anchor_blend.py [--out docs/anchor_blend.png]
"""

from __future__ import annotations

import argparse

import numpy as np

from dino_tracker_vfx.tracker.anchors import EPS, anchor_tracks, layout
from dino_tracker_vfx.tracks import Query


def example(T: int = 40):
    t = np.arange(T, dtype=float)
    truth = np.stack([100 + 3.0 * t + 12 * np.sin(t / 5.0), 80 + 0.5 * t], -1)
    anchors_t, drift = [5, 20, 34], [0.6, -0.45, 0.5]  # px of drift per frame away from each anchor
    qs = [Query(a, *truth[a], "pt") for a in anchors_t]
    xy = np.stack([truth + np.stack([d * (t - a), 0.2 * d * (t - a)], -1) for a, d in zip(anchors_t, drift)])
    conf = np.stack([np.clip(1.0 - np.abs(t - a) / 30.0, 0.1, 1.0) for a in anchors_t]).astype(np.float32)
    vis = np.ones(conf.shape, bool)
    return t, truth, qs, xy, vis, conf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/anchor_blend.png")
    a = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, truth, qs, xy, vis, conf = example()
    lay = layout(qs)
    out, _, _ = anchor_tracks(xy, vis, conf, lay)
    fig, (ax, aw) = plt.subplots(2, 1, figsize=(7.5, 4.6), dpi=80, sharex=True,
                                 gridspec_kw={"height_ratios": [2.2, 1]})
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for k, q in enumerate(lay.rows):
        lab = "row of the query" if k == 0 else f"row of correction {k}"
        ax.plot(t, xy[k, :, 0] - truth[:, 0], "--", color=colours[k], lw=1, label=lab)
        ax.axvline(q.t, color=colours[k], lw=0.6, alpha=0.5)
    ax.plot(t, out[0, :, 0] - truth[:, 0], color="black", lw=2, label="blended track")
    ax.plot([q.t for q in lay.rows], [0] * len(lay.rows), "o", color="red", label="anchors (exact)")
    ax.set_ylabel("x error (px)")
    ax.set_ylim(-12, 12)
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    ax.set_title("anchor blend: each anchor's row, and the track that meets every anchor", fontsize=9)
    # the weights of each row (normalised), as in anchors.blend_pair
    w = np.zeros_like(conf, dtype=float)
    ts = [q.t for q in lay.rows]
    w[0, :ts[0] + 1] = 1
    w[-1, ts[-1]:] = 1
    for k in range(len(ts) - 1):
        sl = slice(ts[k], ts[k + 1] + 1)
        s = (t[sl] - ts[k]) / (ts[k + 1] - ts[k])
        wa, wb = (1 - s) * (conf[k, sl] + EPS), s * (conf[k + 1, sl] + EPS)
        w[k, sl], w[k + 1, sl] = wa / (wa + wb), wb / (wa + wb)
    for k in range(len(ts)):
        aw.plot(t, w[k], color=colours[k], lw=1.2)
    aw.set_ylabel("weight")
    aw.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
