"""The foreground quota of the training minibatches (tracker/train/quota.py, its one owner)."""

import numpy as np

from dino_tracker_vfx.tracker.train.quota import draw_with_fg_quota, fg_share, split_quota


def _draw_from(pool_fg: np.ndarray, rng):
    def draw(m):
        i = rng.integers(0, len(pool_fg), m)
        return pool_fg[i], None, (i,)
    return draw


def test_fills_the_foreground_share_exactly():
    rng = np.random.default_rng(0)
    pool = np.arange(1000) < 50  # 5% foreground
    (idx,) = draw_with_fg_quota(100, 0.7, True, _draw_from(pool, rng))
    assert len(idx) == 100 and pool[idx[:70]].all() and not pool[idx[70:]].any()


def test_empty_side_hands_its_share_over_and_ok_filters():
    rng = np.random.default_rng(1)
    pool = np.zeros(300, bool)  # no foreground at all
    (idx,) = draw_with_fg_quota(64, 0.5, True, _draw_from(pool, rng))
    assert len(idx) == 64
    ok_draw = lambda m: (np.zeros(m, bool), np.arange(m) % 2 == 0, (np.arange(m),))  # noqa: E731
    (rows,) = draw_with_fg_quota(10, 0.0, False, ok_draw)
    assert len(rows) == 10 and (rows % 2 == 0).all()
    assert draw_with_fg_quota(5, 0.5, True, lambda m: (np.zeros(m, bool), np.zeros(m, bool), (np.arange(m),))) is None


def test_share_and_split_of_known_candidates():
    assert [fg_share(n, r) for n, r in ((100, 0.7), (8, 0.5), (5, 0.5), (7, 0.5), (3, 0.0), (3, 1.0))] == \
        [70, 4, 2, 4, 0, 3]  # round half to even: 2.5 -> 2, 3.5 -> 4
    assert split_quota(10, 0.7, 100, 100) == (7, 3)
    assert split_quota(10, 0.7, 2, 100) == (2, 8)  # foreground runs short: background fills up
    assert split_quota(10, 0.3, 100, 1) == (9, 1)  # background runs short: foreground fills up
    assert split_quota(10, 0.5, 2, 3) == (2, 3)  # too few in all: everything there is
    assert split_quota(0, 0.5, 5, 5) == (0, 0) and split_quota(4, 0.5, 0, 0) == (0, 0)
