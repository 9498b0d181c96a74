"""GT readers: official TAP-Vid layouts (synthetic), DINO-Tracker strided pickle and npz (real dev split)."""

from __future__ import annotations

import numpy as np
import pytest

from dino_tracker_vfx.evaluation import datasets as D
from dino_tracker_vfx.errors import InputError

from _eval_helpers import DEV_PKL, FRAMES480, NPZ_DIR, official_entry, write_pickle


def test_official_davis_dict_strided_and_first(tmp_path):
    e = official_entry(T=12, w=64, h=48, n=5)
    p = write_pickle(tmp_path / "tapvid_davis.pkl", {"bear": e, "cat": official_entry(T=12, seed=1)})
    vids = D.read_gt(p, "strided")
    assert [v.name for v in vids] == ["bear", "cat"] and vids[0].plate_size == (64, 48)
    v = vids[0]
    occ = e["occluded"]
    # strided: t = 0, 5, 10; each track visible at t becomes a query
    exp = [(t, k) for t in (0, 5, 10) for k in range(5) if not occ[k, t]]
    assert [(q.t, int(q.name.split("_")[1])) for q in v.queries] == exp
    for q, (t, k) in zip(v.queries, exp):
        assert q.x == pytest.approx(e["points"][k, t, 0] * 64) and q.y == pytest.approx(e["points"][k, t, 1] * 48)
    assert np.isnan(v.xy[~v.visible]).all()
    first = D.read_gt(p, "first")[0]
    assert [q.t for q in first.queries] == [3, 0, 1, 0, 0]
    # GT normalised: can be put on the 480p frames it is evaluated with
    big = first.scaled_to((640, 480))
    assert big.queries[0].x == pytest.approx(first.queries[0].x * 10)
    assert big.queries[0].y == pytest.approx(first.queries[0].y * 10)


def test_official_query_points_are_t_y_x(tmp_path):
    e = official_entry(T=6, w=64, h=32, n=2)
    # TAP-Vid order [t, y, x], normalised like points: (t=4, y=0.25, x=0.75) -> Query(4, x=48, y=8)
    e["query_points"] = np.array([[4, 0.25, 0.75], [1, 0.5, 0.125]])
    v = D.read_gt(write_pickle(tmp_path / "q.pkl", {"v": e}), "first")[0]
    assert [(q.t, q.x, q.y) for q in v.queries] == [(4, 48.0, 8.0), (1, 8.0, 16.0)]


def test_kinetics_list_with_jpeg_bytes(tmp_path):
    data = [official_entry(T=6, jpeg=True, seed=s) for s in range(2)]
    vids = D.read_gt(write_pickle(tmp_path / "0000_of_0010.pkl", data), "first")
    assert len(vids) == 2 and vids[0].video.shape == (6, 48, 64, 3) and vids[0].plate_size == (64, 48)


def test_rgb_stacking_list_without_video_is_normalised(tmp_path):
    v = D.read_gt(write_pickle(tmp_path / "rgb.pkl", [official_entry(T=6, with_video=False)]), "strided")[0]
    assert v.plate_size == (1, 1) and v.normalized
    assert v.scaled_to((64, 48)).plate_size == (64, 48)


@pytest.mark.shared_data
def test_dino_tracker_pickle_dev_split():
    vids = D.read_gt(DEV_PKL, "strided")
    assert len(vids) == 22 and sum(v.n_queries for v in vids) == 2438
    v = vids[-1]
    assert v.index == 29 and v.plate_size == (854, 480) and v.n_frames == 32
    assert sorted(set(v.query_t.tolist())) == [0, 5, 10, 15, 20, 25, 30]
    # each query sits on its GT track at its query frame
    for n, q in enumerate(v.queries):
        assert v.visible[n, q.t] and np.allclose(v.xy[n, q.t], (q.x, q.y))
    # pixel GT cannot be silently rescaled
    with pytest.raises(InputError, match="854x480"):
        v.scaled_to((427, 240))


@pytest.mark.shared_data
def test_pickle_and_npz_agree():
    pk, nz = D.read_gt(DEV_PKL, "strided"), D.read_gt(NPZ_DIR, "strided")
    for a, b in zip(pk, nz):
        assert a.index == b.index
        ka = sorted((q.t, round(q.x, 2), round(q.y, 2)) for q in a.queries)
        kb = sorted((q.t, round(q.x, 2), round(q.y, 2)) for q in b.queries)
        assert ka == kb, a.index
    # 'first' from the strided pickle = unique tracks at their first visible frame = the npz's query_frame_first
    pf, nf = D.read_gt(DEV_PKL, "first"), D.read_gt(NPZ_DIR, "first")
    assert sum(v.n_queries for v in pf) == sum(v.n_queries for v in nf) == 435
    for a, b in zip(pf, nf):
        assert sorted(a.query_t.tolist()) == sorted(b.query_t.tolist())


@pytest.mark.shared_data
def test_select_and_frames_dir():
    vids = D.read_gt(DEV_PKL, "strided")
    assert [v.index for v in D.select(vids, ["29", "0"])] == [29, 0]
    d = D.find_frames_dir(FRAMES480, vids[-1])
    assert d.name == "video" and D.name_from_frames_dir(d) == "horsejump-high"
    with pytest.raises(InputError, match="--videos.*99"):
        D.select(vids, ["99"])


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="missing.pkl: file not found"):
        D.read_gt(tmp_path / "missing.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(InputError, match="junk.pkl: not a readable pickle"):
        D.read_gt(junk)
    p = write_pickle(tmp_path / "nofield.pkl", {"bear": {"points": np.zeros((2, 4, 2))}})
    with pytest.raises(InputError, match="'bear'.*missing field 'occluded'") as ei:
        D.read_gt(p)
    assert "\n" not in str(ei.value)
    p = write_pickle(tmp_path / "dt.pkl", {"videos": [{"video_idx": 3, "h": 48, "w": 64,
                                                         "query_points": {0: [[1, 2]]}}]})
    with pytest.raises(InputError, match=r"videos\[0\]: missing field 'target_points'"):
        D.read_gt(p)
