"""RAFT runs on the tracker's device, batched, with the reference's 24 refinement updates by default."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from _prep_helpers import sliding_frames
from _tracker_helpers import write_shot
from dino_tracker_vfx.tracker.preprocess import flow as fl
from dino_tracker_vfx.tracker.preprocess import weights as W

torch.set_num_threads(1)


class _SpyRaft(torch.nn.Module):
    """A random-weight raft_small that records where it is moved and what each forward pass gets."""

    def __init__(self):
        super().__init__()
        from torchvision.models.optical_flow import raft_small

        torch.manual_seed(0)
        self.raft = raft_small(weights=None).eval()
        self.moved_to: list[torch.device] = []
        self.calls: list[tuple] = []

    def to(self, *args, **kwargs):
        self.moved_to.append(torch.device(args[0] if args else kwargs["device"]))
        return super().to(*args, **kwargs)

    def forward(self, a, b, num_flow_updates=12):
        self.calls.append((a.device, b.device, a.shape[0], num_flow_updates))
        return self.raft(a, b, num_flow_updates=num_flow_updates)


@pytest.fixture
def spies(monkeypatch):
    made = []

    def load(method, weights=None, progress=None):
        made.append(_SpyRaft())
        return made[-1]

    monkeypatch.setattr(W, "load_raft", load)
    return made


def test_raft_moves_to_the_device_batches_pairs_and_matches_pair_by_pair(spies):
    frames = sliding_frames(6, 50, 36)  # 5 consecutive pairs, both ways
    one = fl.compute_flow(frames, method="raft_small", params={"iters": 2}, device="cpu", batch=2)
    many = fl.compute_flow(frames, method="raft_small", params={"iters": 2}, device="cpu", batch=4)
    assert spies[0].moved_to == [torch.device("cpu")] and spies[1].moved_to == [torch.device("cpu")]
    assert [c[2] for c in spies[0].calls] == [2] * 5  # one pair both ways per pass
    assert [c[2] for c in spies[1].calls] == [4, 4, 2]  # two pairs both ways per pass
    np.testing.assert_allclose(many.fwd, one.fwd, atol=1e-4)
    np.testing.assert_allclose(many.bwd, one.bwd, atol=1e-4)
    assert fl.raft_batch("cuda") == 16 and fl.raft_batch(torch.device("cpu")) == 2


def test_raft_takes_the_references_24_updates_by_default(spies):
    frames = sliding_frames(2, 50, 36)
    ff = fl.compute_flow(frames, method="raft_small")
    assert ff.params == {"iters": 24} and spies[0].calls[0][3] == 24
    assert fl.effective_params("raft_large", {}) == {"iters": 24}
    assert fl.effective_params("dis", {}) == {}


def test_the_tracker_runs_raft_on_its_device_for_flow_and_direct_flows(spies, tmp_path):
    from _tracker_helpers import TINY_WF
    from dino_tracker_vfx.shots import open_shot
    from dino_tracker_vfx.tracker.api import ShotTracker

    shot = open_shot(str(write_shot(tmp_path / "plates")))
    p = copy.deepcopy(TINY_WF)
    p.update(backbone="dinov2_vits14", layer=1, weights="random", delta={"hidden": [8, 16, 16]},
             foreground={"source": "all"}, best_buddies={"enabled": False})
    p["flow"] = {"method": "raft_small", "weights": str(tmp_path / "unused.pth"), "params": {"iters": 2}}
    st = ShotTracker(shot, p, device="cpu")
    st._check_weights_first = lambda: None  # the spy needs no weight file
    st.prepare()
    assert len(spies) == 2  # consecutive flows, then the tracklets' direct (drift) flows
    assert all(s.moved_to == [st.device] for s in spies)
    assert all(c[0] == st.device and c[1] == st.device for s in spies for c in s.calls)
    assert all(c[2] == 2 for c in spies[1].calls)  # a direct flow is one pass for both directions


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_raft_on_cuda_matches_the_cpu(spies):
    frames = sliding_frames(6, 50, 36)
    gpu = fl.compute_flow(frames, method="raft_small", params={"iters": 4}, device="cuda")
    cpu = fl.compute_flow(frames, method="raft_small", params={"iters": 4}, device="cpu")
    assert spies[0].moved_to == [torch.device("cuda")]
    assert all(c[0].type == "cuda" for c in spies[0].calls) and spies[0].calls[0][2] == 10  # 5 pairs, one pass
    np.testing.assert_allclose(gpu.fwd, cpu.fwd, atol=2e-2)
    np.testing.assert_allclose(gpu.bwd, cpu.bwd, atol=2e-2)
