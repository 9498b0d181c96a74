"""Preview movie and contact sheet: decoded back with PyAV, marks checked at the track positions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dino_tracker_vfx.cli import main
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.render.overlay import object_colours, track_colours
from dino_tracker_vfx.render.preview import even_size, render_preview
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracks import ObjectTrack, Query, TrackSet

from _eval_helpers import SAMPLE_SHOT


def decode(path):
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = (s.codec_context.name, s.codec_context.pix_fmt, s.width, s.height)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return info, frames


def sample_tracks(shot, occluded_from: int = 12) -> TrackSet:
    """Four tracks drifting across the sample shot; track 3 occluded from ``occluded_from`` on; a group."""
    T, (W, H) = shot.n_images, shot.size
    starts = np.array([[150.0, 120.0], [420.0, 300.0], [700.0, 90.0], [300.0, 420.0]])
    vel = np.array([[6.0, 1.0], [-4.0, 2.0], [-5.0, 3.0], [8.0, -2.0]])
    xy = starts[:, None, :] + vel[:, None, :] * np.arange(T)[None, :, None]
    vis = np.ones((4, T), bool)
    vis[3, occluded_from:] = False
    qs = [Query(0, *starts[i], f"p{i}", "obj" if i < 2 else None) for i in range(4)]
    ts = TrackSet(xy, vis, vis.astype(np.float32), [q.name for q in qs], qs, shot.frame_numbers, (W, H))
    c = xy[:2].mean(0)
    ts.groups["obj"] = ObjectTrack(c, np.ones(T, bool), np.concatenate([xy[:2].min(0) - 30, xy[:2].max(0) + 30], 1))
    return ts


def test_preview_movie_shows_tracks(tmp_path):
    shot = open_shot(SAMPLE_SHOT)
    ts = sample_tracks(shot)
    res = render_preview(shot, ts, tmp_path / "p.mp4", tmp_path / "sheet.png", trail=6)
    (codec, pix, w, h), frames = decode(tmp_path / "p.mp4")
    assert (codec, pix, w, h) == ("h264", "yuv420p", 854, 480) and len(frames) == shot.n_images == 24
    cols = track_colours(4).astype(int)
    cols[:2] = object_colours(["obj"])["obj"]  # a set with an object track: members in the object's colour
    for t in (0, 7, 20):
        plate = np.round(shot.read(t) * 255).astype(int)
        img = frames[t].astype(int)
        for i in range(3):  # visible tracks: a filled dot of the track colour at the position
            x, y = np.round(ts.xy[i, t]).astype(int)
            got = img[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)
            assert np.abs(got - cols[i]).max() < 40, (t, i, got, cols[i])
            assert np.abs(got - plate[y, x]).max() > 40
    # occluded track 3 at t=20: hollow ring -> its centre keeps the (undimmed) plate up to H.264 chroma
    # bleeding from the ring, the ring has the track colour
    x, y = np.round(ts.xy[3, 20]).astype(int)
    plate = np.round(shot.read(20) * 255).astype(int)
    inside = frames[20][y, x].astype(int)
    assert np.abs(inside - plate[y, x]).max() < 30
    ring = frames[20][y - 6:y + 7, x - 6:x + 7].reshape(-1, 3).astype(int)
    assert np.min(np.abs(ring - cols[3]).max(1)) < 40
    # trail: halfway between t=19 and t=20 positions of track 0 the colour shows
    mid = np.round((ts.xy[0, 19] + ts.xy[0, 20]) / 2 - [0, 0]).astype(int)
    seg = frames[20][mid[1] - 1:mid[1] + 2, mid[0] - 1:mid[0] + 2].reshape(-1, 3).astype(int)
    assert np.min(np.abs(seg - cols[0]).max(1)) < 60
    # the object bbox is drawn (its left edge at t=0)
    x0, y0, x1, y1 = np.round(ts.groups["obj"].bbox[0]).astype(int)
    edge = frames[0][(y0 + y1) // 2, x0 - 1:x0 + 2].astype(int)
    plate0 = np.round(shot.read(0) * 255).astype(int)[(y0 + y1) // 2, x0 - 1:x0 + 2]
    assert np.abs(edge - plate0).max() > 60
    import cv2

    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert res["png"] and sheet.shape[1] == 4 * 480 + 5 * 4 and sheet.shape[0] > 2 * 270


def test_linear_exr_preview_is_as_bright_as_the_display_transformed_plate(tmp_path):
    """Issue 16: linear EXR previews came out darker than the plate. The preview shows shot.read (the
    tracker's display transform), undimmed: its mean matches the display-referred plate."""
    import cv2

    from conftest import write_exr

    ramp = np.linspace(0.005, 2.0, 96, dtype=np.float32)  # scene-linear, above 1 too
    lin = np.tile(ramp[None, :, None], (64, 1, 3)) * np.array([1.0, 0.8, 0.6], np.float32)
    for f in (1001, 1002):
        write_exr(tmp_path / f"lin.{f}.exr", lin)
    shot = open_shot(str(tmp_path / "lin.####.exr"))
    assert not shot.transform.identity  # lin_rec709 -> OCIO display/view
    want = shot.read(0) * 255.0
    empty = TrackSet.empty(shot.frame_numbers, shot.size)
    render_preview(shot, empty, tmp_path / "lin.mp4", tmp_path / "lin.png")
    _, frames = decode(tmp_path / "lin.mp4")
    below_label = (slice(32, None), slice(None))  # the frame label is drawn in the top rows
    for fr in frames:
        got = fr[below_label].astype(np.float64)
        assert abs(got.mean() - want[below_label].mean()) < 2.0, (got.mean(), want[below_label].mean())
        # column by column, the ramp keeps its brightness (H.264 chroma only blurs a little)
        np.testing.assert_allclose(got.mean((0, 2)), want[below_label].mean((0, 2)), atol=6)
    tile = cv2.imread(str(tmp_path / "lin.png"))[4:4 + 64, 4:4 + 96, ::-1].astype(np.float64)
    assert abs(tile[32:].mean() - want[32:].mean()) < 2.0


def test_even_size_and_subset_frames(tmp_path):
    assert even_size((855, 481), None) == (854, 480)
    assert even_size((4096, 2160), 1920) == (1920, 1012)
    shot = open_shot(SAMPLE_SHOT)
    full = sample_tracks(shot)
    sub = full.subset(range(4))
    sub = TrackSet(full.xy[:, 5:10], full.visible[:, 5:10], full.confidence[:, 5:10], full.names,
                   [Query(0, *full.xy[i, 5], n) for i, n in enumerate(full.names)], shot.frame_numbers[5:10],
                   full.plate_size)
    res = render_preview(shot, sub, tmp_path / "s.mp4", max_size=427)
    (_, _, w, h), frames = decode(tmp_path / "s.mp4")
    assert (w, h) == (426, 240) and len(frames) == 5 and res["frames"] == 5
    bad = TrackSet(full.xy, full.visible, full.confidence, full.names, full.queries, shot.frame_numbers + 100,
                   full.plate_size)
    with pytest.raises(InputError, match="frame 100"):
        render_preview(shot, bad, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def test_cli_preview(tmp_path, capsys):
    shot = open_shot(SAMPLE_SHOT)
    ts = sample_tracks(shot)
    ts.save_json(tmp_path / "t.json")
    rc = main(["preview", SAMPLE_SHOT, str(tmp_path / "t.json"), "--out", str(tmp_path / "o.mp4"),
               "--sheet", str(tmp_path / "o.png"), "--trail", "4", "-q"])
    assert rc == 0 and "24 frames" in capsys.readouterr().out
    assert (tmp_path / "o.png").stat().st_size > 10000
    rc = main(["preview", SAMPLE_SHOT, str(tmp_path / "t.json"), "--out", str(tmp_path / "o.mov")])
    assert rc == 2 and ".mp4" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text(json.dumps({"format": "something else"}))
    rc = main(["preview", SAMPLE_SHOT, str(tmp_path / "broken.json"), "--out", str(tmp_path / "b.mp4")])
    assert rc == 2 and "broken.json" in capsys.readouterr().err
