"""Delta-DINO, refiner and the tracker head: shapes, coordinate conventions, exactness of the windowed head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tolerance
from dino_tracker_vfx.errors import ShapeError
from dino_tracker_vfx.tracker.model.delta_dino import BlurPool, DeltaDino, count_parameters
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid, dino_working_size, sample_map
from dino_tracker_vfx.tracker.model.tracker_model import TrackerModel, l2n
from dino_tracker_vfx.tracker.model.refiner import Refiner

torch.set_num_threads(1)


def test_delta_dino_has_the_papers_size_and_starts_at_zero():
    net = DeltaDino(1024)
    assert abs(count_parameters(net) - 7.59e6) < 0.01e6  # docs/method.md: about 7.59M
    small = DeltaDino(32, (8, 16, 16))
    out = small.forward_native(torch.rand(2, 3, 48, 64))
    assert out.shape == (2, 32, 6, 8)  # ceil(48/8), ceil(64/8)
    assert torch.count_nonzero(out) == 0  # zero-initialised output: training starts at raw DINO
    wf = DeltaDino(32, (8, 16, 16), zero_init=False)
    assert torch.count_nonzero(wf.forward_native(torch.rand(2, 3, 48, 64))) > 0


def test_blurpool_output_k_is_centred_at_input_2k_plus_half():
    # a ramp is preserved by the symmetric binomial filter away from the reflected border
    H, W = 16, 20
    ramp = torch.arange(W, dtype=torch.float32).view(1, 1, 1, W).expand(1, 1, H, W)
    out = BlurPool(1)(ramp)
    assert out.shape == (1, 1, 8, 10)
    k = torch.arange(10, dtype=torch.float32)
    assert torch.allclose(out[0, 0, 4, 1:-1], 2 * k[1:-1] + 0.5, atol=1e-5)
    # three downsamples: cells of the native CNN grid are centred at 8j + 3.5
    g = FeatureGrid.cnn((64, 48), 3)
    assert (g.h, g.w, g.stride, g.offset) == (6, 8, 8.0, 3.5)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 1, 64).expand(1, 1, 48, 64)
    y = BlurPool(1)(BlurPool(1)(BlurPool(1)(x)))
    assert torch.allclose(y[0, 0, 3, 1:-1], g.centres()[1:7, 0], atol=1e-4)


def test_dino_patch_grid_geometry():
    """feature_grid owns the DINO patch grid: map size, centres, nearest cell of a pixel, working raster."""
    from dino_tracker_vfx.tracker.preprocess.backbones import DinoV2

    g = FeatureGrid.dino((854, 476), 7)
    assert (g.h, g.w) == (67, 121)  # docs/method.md: 854x476 -> 67x121
    vit = DinoV2("vits14", stride=7, layer=0)
    with torch.no_grad():
        assert vit(torch.rand(1, 3, 14 + 7 * 2, 14 + 7 * 3)).shape[-2:] == FeatureGrid.dino((35, 28), 7).hw == (3, 4)
    c = FeatureGrid.dino((35, 28), 7).centres().numpy()  # patch (i, j) covers px 7j .. 7j + 13
    assert c.shape == (12, 2) and c.dtype == np.float32
    assert c[0].tolist() == [6.5, 6.5] and c[5].tolist() == [13.5, 13.5] and c[-1].tolist() == [27.5, 20.5]
    assert c[3, 0] + 6.5 == 35 - 1  # the last patch of a (W - 14) % 7 == 0 raster ends on the last pixel
    assert FeatureGrid.dino_map(3, 4, 7) == FeatureGrid.dino((35, 28), 7)
    ii, jj = FeatureGrid.dino_map(3, 4, 7).nearest_cells((35, 28))
    # the cell of the nearest centre (6.5, 13.5, 20.5, 27.5), clamped; a tie goes to the even cell (np.rint):
    # x = 10 is halfway between 6.5 and 13.5 -> cell 0, x = 17 -> cell 2
    assert jj.tolist() == [0] * 11 + [1] * 6 + [2] * 8 + [3] * 10
    assert ii.tolist() == [0] * 11 + [1] * 6 + [2] * 11 and jj.dtype == np.int64


@pytest.mark.parametrize("plate,want", [((854, 480), (854, 476)), ((910, 480), (910, 476)),
                                        ((1920, 1080), (847, 476)), ((480, 854), (266, 476))])
def test_dino_working_size(plate, want):
    W, H = dino_working_size(plate)
    assert (W, H) == want and (W - 14) % 7 == 0 and (H - 14) % 7 == 0
    assert dino_working_size((854, 480), height=238, stride=14)[1] == 238


def test_sample_map_reads_sub_cell_positions_exactly(device, dtype):
    g = FeatureGrid.dino((96, 64), 7)
    c = g.centres().view(g.h, g.w, 2).permute(2, 0, 1)  # [2, h, w]: each cell holds its own (x, y)
    maps = torch.stack([c, c + 100.0]).to(device, dtype)  # two maps (feature maps are stored in low precision)
    pts = torch.tensor([[10.3, 12.9], [40.0, 30.5], [77.7, 20.1], [6.5, 6.5]], device=device)
    frame = torch.tensor([1, 0, 1, 0], device=device)
    out = sample_map(maps, g, pts, frame)
    assert out.device.type == device.type
    expect = pts + 100.0 * frame[:, None].float()
    # the map's own rounding (values up to ~190) bounds the error, not the sub-cell position
    torch.testing.assert_close(out.double(), expect.double(), atol=tolerance(dtype, 190.0), rtol=0)
    with pytest.raises(ShapeError):
        sample_map(maps, g, pts[:, :1], frame)


def test_delta_output_is_resampled_at_the_grid_cell_centres():
    net = DeltaDino(2, (4, 4, 4), zero_init=False)
    W, H = 96, 64
    native = net.native_grid((W, H))

    def fake_native(images):  # a map holding each native cell's own centre
        c = native.centres().view(native.h, native.w, 2).permute(2, 0, 1)
        return c[None].expand(images.shape[0], -1, -1, -1).contiguous()

    net.forward_native = fake_native
    g = FeatureGrid.dino((W, H), 7)
    out = net(torch.rand(1, 3, H, W), g)
    assert out.shape == (1, 2, g.h, g.w)
    cen = g.centres().view(g.h, g.w, 2).permute(2, 0, 1)
    inside = (cen[0] <= native.centres()[:, 0].max()) & (cen[1] <= native.centres()[:, 1].max())
    torch.testing.assert_close(out[0][:, inside], cen[:, inside], atol=1e-4, rtol=0)


def _reference_head(model: TrackerModel, cost: torch.Tensor) -> torch.Tensor:
    """Full-map refiner, then the soft-argmax of the softmax heatmap within R of the argmax (the paper's
    head; the softmax normaliser cancels, so it is taken over the disc for numerical range)."""
    B, h, w = cost.shape
    cost = cost.float()  # the head reads low-precision cost volumes in float32
    hm = torch.relu(cost)[:, None]
    if model.refiner is not None:
        hm = model.refiner(hm)
    c = model.grid.centres().view(h, w, 2)
    ac = c.view(-1, 2)[cost.reshape(B, -1).argmax(1)]
    mask = (c[None] - ac[:, None, None]).norm(dim=-1) <= model.argmax_radius + 1e-6
    sm = torch.softmax(hm[:, 0].masked_fill(~mask, float("-inf")).reshape(B, -1), 1).view(B, h, w)
    return (sm[..., None] * c[None]).sum((1, 2))


@pytest.mark.parametrize("use_refiner", [True, False])
def test_windowed_head_equals_the_full_map_head(use_refiner, device, dtype):
    torch.manual_seed(0)
    g = FeatureGrid.dino((120, 90), 7)
    m = TrackerModel((120, 90), g, "dino+delta" if use_refiner else "dino", DeltaDino(8, (4, 4, 4)),
                     Refiner() if use_refiner else None, argmax_radius=20.0).to(device)
    cost = torch.rand(7, g.h, g.w) * 2 - 1
    cost[0, 0, 0] = 2.0  # argmax in a corner: the window leaves the map
    cost[1, -1, 5] = 2.0  # on the bottom border
    cost = cost.to(device, dtype)  # low-precision cost volumes (amp on CUDA)
    xy, peak = m.head(cost)
    assert xy.device.type == device.type
    # both heads read the same rounded costs in float32, so only the order of their sums differs, whatever
    # the cost volume's dtype
    atol = 2e-4
    torch.testing.assert_close(xy.double(), _reference_head(m, cost).double(), atol=atol, rtol=0)
    m.windowed = False  # the plain whole-map head of the benchmarks gives the same
    xy_full, peak_full = m.head(cost)
    torch.testing.assert_close(xy_full.double(), xy.double(), atol=atol, rtol=0)
    torch.testing.assert_close(peak.double(), cost.reshape(7, -1).max(1).values.double())


def test_refiner_valid_crop_equals_full_map():
    torch.manual_seed(1)
    r = Refiner()
    x = torch.rand(2, 1, 12, 15)
    full = r(x)
    pad = F.pad(x, (3, 3, 3, 3))
    inside = F.pad(torch.ones_like(x, dtype=torch.bool), (3, 3, 3, 3))
    crop = pad[:, :, 0:11, 2:13]  # window rows -3..7, cols -1..9 of the map, + margin
    out = r.forward_valid(crop, inside[:, :, 0:11, 2:13])
    # out row a <-> padded row a + 2 <-> map row a - 1; out col b <-> map col b + 1
    torch.testing.assert_close(out[:, :, 1:7, :], full[:, :, 0:6, 1:8], atol=1e-4, rtol=1e-5)


def test_track_recovers_points_of_shifted_random_features(device, dtype):
    # "dino" mode with hand-made maps: frame 1 is frame 0 shifted by 2 cells right, 1 down
    torch.manual_seed(0)
    g = FeatureGrid.dino((140, 98), 7)
    base = torch.randn(64, g.h + 4, g.w + 4).to(device, dtype)
    f0 = base[:, 2:2 + g.h, 2:2 + g.w]
    f1 = base[:, 1:1 + g.h, 0:g.w]  # content moves +2 cells in x, +1 in y
    phi = torch.stack([f0, f1])
    m = TrackerModel((140, 98), g, "dino", None, None, argmax_radius=3.0).to(device)  # window = the argmax cell
    src = g.centres()[[g.w * 3 + 4, g.w * 6 + 9]].to(device)  # two cell centres of frame 0
    t0, t1 = torch.tensor([0, 0], device=device), torch.tensor([1, 1], device=device)
    xy, peak = m.track(phi, src, t0, t1, l2n(phi))
    assert xy.device.type == device.type
    torch.testing.assert_close(xy.double(), (src + torch.tensor([14.0, 7.0], device=device)).double(),
                               atol=1e-3, rtol=0)  # exact cell centres: no rounding of the features moves them
    assert torch.all(peak > 0.999)
