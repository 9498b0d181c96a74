"""Evaluation: TAP-Vid / BADJA metrics, GT readers, baselines, the resumable harness and charts.

    metrics.py    tapvid_metrics (OA, AJ, delta_avg at 256x256), badja_metrics (delta_seg, delta_3px)
    datasets.py   GT readers -> GTVideo (named (t, x, y) queries in plate px): TAP-Vid pickles, DINO-Tracker
                  strided pickle, npz
    badja.py      BADJA npz + DAVIS masks, query protocol
    baselines.py  static, flow, klt, dino, tracker behind one run(shot, queries) -> TrackSet
    klt.py        chained pyramidal Lucas-Kanade with a forward-backward check (the matchmove classic)
    plate_metrics.py  delta at 0.25..4 plate px, AJ, OA, median / p90 error, re-acquisition
    synth/        synthetic plates with exact GT: scene.py (seeded scenes), render.py (renderer, GT),
                  files.py (plate.1001.png/exr, gt.npz, queries.csv)
    harness.py    evaluate_tapvid / evaluate_badja / evaluate_synth: per-video results saved atomically, resumable
    plots.py      per-video bars, accuracy vs occlusion rate
"""
