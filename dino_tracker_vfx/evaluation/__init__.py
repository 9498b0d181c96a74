"""Evaluation: TAP-Vid / BADJA metrics, GT readers, baselines, the resumable harness and charts.

    metrics.py    tapvid_metrics (OA, AJ, delta_avg at 256x256), badja_metrics (delta_seg, delta_3px)
    datasets.py   GT readers -> GTVideo (named (t, x, y) queries in plate px): TAP-Vid pickles, DINO-Tracker
                  strided pickle, npz
    badja.py      BADJA npz + DAVIS masks, query protocol
    baselines.py  static, flow, dino, tracker behind one run(shot, queries) -> TrackSet
    harness.py    evaluate_tapvid / evaluate_badja: per-video results saved atomically, resumable
    plots.py      per-video bars, accuracy vs occlusion rate
"""
