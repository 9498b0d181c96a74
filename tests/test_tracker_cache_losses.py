"""Stage cache (atomic, corrupt entries recomputed, foreign checkpoints refused) and the training losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dino_tracker_vfx.errors import CacheError
from dino_tracker_vfx.tracker.train import losses
from dino_tracker_vfx.tracker.cache import ShotCache, read_checkpoint

torch.set_num_threads(1)
IDENT = {"source": "x.####.png", "frames": [1, 2, 3], "size": [64, 48]}


def test_stage_round_trip_and_keys(tmp_path):
    c = ShotCache(tmp_path, IDENT)
    k = c.key("flow", {"method": "dis"}, ["frames-abc"])
    assert k != c.key("flow", {"method": "raft_small"}, ["frames-abc"]) != c.key("flow", {"method": "dis"}, ["x"])
    assert c.load("flow", k) is None
    a = {"fwd": np.random.rand(2, 4, 5, 2).astype(np.float32), "t": np.arange(3)}
    c.save("flow", k, a, {"note": "hi"})
    arrays, meta = c.load("flow", k)
    np.testing.assert_array_equal(arrays["fwd"], a["fwd"])
    assert meta["note"] == "hi" and meta["stage"] == "flow"
    assert (tmp_path / c.shot_key / "shot.json").is_file()
    assert ShotCache(tmp_path, {**IDENT, "frames": [1, 2]}).shot_key != c.shot_key
    # memory-only cache keeps nothing
    m = ShotCache(None, IDENT)
    m.save("flow", k, a)
    assert m.load("flow", k) is None and not m.enabled


def test_corrupt_entry_warns_and_is_recomputed(tmp_path):
    c = ShotCache(tmp_path, IDENT)
    k = c.key("features", {}, [])
    c.save("features", k, {"features": np.ones((2, 3), np.float16)})
    p = c.entry_path("features", k)
    p.write_bytes(p.read_bytes()[:40])  # truncated
    with pytest.warns(UserWarning, match="corrupt cache entry"):
        assert c.load("features", k) is None
    assert not p.exists()


def test_failed_write_leaves_no_partial_file(tmp_path):
    c = ShotCache(tmp_path, IDENT)
    k = c.key("flow", {}, [])

    class Boom:
        def __array__(self, *a, **kw):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        c.save("flow", k, {"a": np.zeros(3), "b": Boom()})
    assert not c.entry_path("flow", k).exists()
    assert not list((tmp_path / c.shot_key).glob(".flow*"))


def test_checkpoints_keep_the_newest_and_refuse_other_settings(tmp_path):
    c = ShotCache(tmp_path, IDENT)
    s = {"train": {"iterations": 10}, "seed": 0}
    for it in (2, 4, 6):
        c.save_checkpoint("key1", it, {"iteration": it, "settings": s, "model": {"w": torch.ones(2) * it}})
    files = sorted((tmp_path / c.shot_key / "checkpoints" / "key1").glob("iter_*.pt"))
    assert [f.name for f in files] == ["iter_0000004.pt", "iter_0000006.pt"]
    st = c.latest_checkpoint("key1", s)
    assert st["iteration"] == 6
    with pytest.raises(CacheError, match=r"other settings .*train.iterations: 10 vs 20"):
        read_checkpoint(files[-1], {"train": {"iterations": 20}, "seed": 0})
    files[-1].write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable checkpoint"):
        assert c.latest_checkpoint("key1", s)["iteration"] == 4
    with pytest.raises(CacheError, match="unusable checkpoint"):
        (tmp_path / "junk.pt").write_bytes(b"xx")
        read_checkpoint(tmp_path / "junk.pt", s)


def test_position_loss_is_huber_on_normalised_coordinates():
    wh = (64, 32)
    a = torch.tensor([[10.0, 10.0], [0.0, 0.0]])
    assert losses.position_loss(a, a, wh).item() == 0.0
    b = a + torch.tensor([[0.5, 0.0], [16.0, 0.0]])  # 0.5 px -> 1/64 < delta; 16 px -> 0.5 > delta
    d1, d2 = 2 * 0.5 / 64, 2 * 16.0 / 64
    delta = 1 / 32
    expect = (0.5 * d1 ** 2 + delta * (d2 - 0.5 * delta)) / 4  # mean over 2 points x 2 coords
    assert abs(losses.position_loss(b, a, wh).item() - expect) < 1e-7
    w = torch.tensor([1.0, 0.0])
    assert abs(losses.position_loss(b, a, wh, w).item() - 0.5 * d1 ** 2 / 4) < 1e-9


def test_info_nce_prefers_the_true_buddy_and_prior_is_zero_at_dino():
    torch.manual_seed(0)
    maps = torch.nn.functional.normalize(torch.randn(2, 16, 4, 5), dim=1)
    fi = maps[0].reshape(16, -1).t()[:6]
    good = maps[1].reshape(16, -1).t()[:6]
    bad = maps[1].reshape(16, -1).t()[6:12]
    mi, mj = torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)
    w = torch.ones(6)
    l_good = losses.symmetric_info_nce(fi, fi.clone(), torch.stack([maps[0], maps[0]]), mi, mj, w)
    l_bad = losses.symmetric_info_nce(fi, bad, maps, mi, mj, w)
    l_mid = losses.symmetric_info_nce(fi, good, maps, mi, mj, w)
    assert l_good < l_mid and l_good < l_bad
    assert losses.symmetric_info_nce(fi, bad, maps, mi, mj, torch.zeros(6)).item() == 0.0
    phi = torch.randn(2, 8, 3, 3)
    n, a = losses.prior_loss(phi, phi.clone())
    assert n.item() < 1e-6 and a.item() < 1e-6
    n, a = losses.prior_loss(2 * phi, phi)
    assert abs(n.item() - 1.0) < 1e-5 and a.item() < 1e-6


def test_cycle_loss_weights_by_gamma_power_distance():
    wh = (32, 32)
    p = torch.tensor([[1.0, 1.0]])
    t = torch.tensor([[2.0, 1.0]])
    l0 = losses.cycle_loss(p, t, p, t, torch.tensor([0.0]), wh)
    l3 = losses.cycle_loss(p, t, p, t, torch.tensor([3.0]), wh)
    assert abs(l3.item() / l0.item() - 0.8 ** 3) < 1e-6
