"""Shot reading: sequences (patterns, ranges, gaps), EXR windows and colour, DPX, movies (incl. VFR)."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from conftest import textured_frame, write_exr
from dino_tracker_vfx.errors import ShotError
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.shots.patterns import parse_frame_range, parse_pattern


def srgb_encode(v):
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


# --------------------------------------------------------------------------- patterns
@pytest.mark.parametrize("spec, head, pad, tail", [
    ("a/plate.####.exr", "a/plate.", 4, ".exr"),
    ("plate.%04d.dpx", "plate.", 4, ".dpx"),
    ("plate.@@@.png", "plate.", 3, ".png"),
    ("plate.@.png", "plate.", 1, ".png"),
    ("plate_v2.$F4.exr", "plate_v2.", 4, ".exr"),
])
def test_parse_pattern(spec, head, pad, tail):
    p = parse_pattern(spec)
    assert (p.head, p.pad, p.tail) == (head, pad, tail)
    assert p.path(1001 if pad >= 4 else 7) == f"{head}{1001 if pad >= 4 else 7:0{pad}d}{tail}"


def test_frame_ranges():
    assert parse_frame_range("1001-1004") == [1001, 1002, 1003, 1004]
    assert parse_frame_range("1-9x4") == [1, 5, 9]
    assert parse_frame_range("5,1-2") == [1, 2, 5]
    with pytest.raises(ShotError, match="bad frame range"):
        parse_frame_range("10-1")


def test_png_sequence_patterns_and_range(png_sequence):
    pat = png_sequence(first=1001, n=6)
    for spec in (pat, pat.replace("####", "%04d"), pat.replace("####", "1003"), os.path.dirname(pat)):
        shot = open_shot(spec)
        assert list(shot.frame_numbers) == list(range(1001, 1007)), spec
        assert shot.size == (64, 48)
    shot = open_shot(pat + " 1002-1004")
    assert list(shot.frame_numbers) == [1002, 1003, 1004]
    img = shot.read(0)  # frame 1002 = texture shifted by 1
    assert img.dtype == np.float32 and img.shape == (48, 64, 3)
    np.testing.assert_allclose(img, textured_frame(1, 64, 48) / 255.0, atol=1e-6)


def test_sequence_gaps_are_reported_and_explicit_range_must_be_complete(png_sequence):
    pat = png_sequence(first=1, n=8, gaps=(4, 5))
    shot = open_shot(pat)
    assert list(shot.frame_numbers) == [1, 2, 3, 6, 7, 8]
    assert shot.gaps() == [(4, 5)]
    assert shot.index_of_frame(6) == 3
    with pytest.raises(ShotError, match=r"plate\.0004\.png: frame 4 is missing from range 1-8 \(2 missing"):
        open_shot(pat + " 1-8")


def test_mixed_resolution_names_the_file(png_sequence, tmp_path):
    pat = png_sequence(first=1, n=3)
    png_sequence(first=3, n=1, w=32, h=24)  # overwrite frame 3 with another size
    shot = open_shot(pat)
    shot.read(1)
    with pytest.raises(ShotError, match=r"plate\.0003\.png: frame 3 is 32x24, the shot is 64x48"):
        shot.read(2)


def test_truncated_image_names_the_file(png_sequence, tmp_path):
    pat = png_sequence(first=1, n=3)
    f = tmp_path / "plate.0002.png"
    f.write_bytes(f.read_bytes()[:200])
    shot = open_shot(pat)
    with pytest.raises(ShotError, match=r"plate\.0002\.png"):
        shot.read(1)


# --------------------------------------------------------------------------- EXR
def test_exr_data_window_inside_display_window(tmp_path):
    W, H = 40, 30
    data = np.zeros((10, 12, 3), np.float32)
    data[..., 0] = 0.18
    data[2, 3] = [1.0, 0.5, 0.25]  # marker at data (3, 2) -> display (7+3, 5+2)
    for f in (1, 2):
        write_exr(tmp_path / f"p.{f:04d}.exr", data, data_window=(7, 5), display_size=(W, H))
    shot = open_shot(str(tmp_path / "p.####.exr"), view="Un-tone-mapped")
    assert shot.size == (W, H)
    assert shot.display_window == (0, 0, W, H) and shot.data_window == (7, 5, 12, 10)
    assert shot.transform.source == "lin_rec709"
    img = shot.read(0)
    assert img.shape == (H, W, 3)
    assert not img[:5].any() and not img[:, :7].any() and not img[15:].any() and not img[:, 19:].any()
    # Un-tone-mapped sRGB view of linear Rec.709 = the sRGB encoding, computed by hand
    np.testing.assert_allclose(img[7, 10], srgb_encode([1.0, 0.5, 0.25]), atol=2e-3)
    np.testing.assert_allclose(img[5, 7], srgb_encode([0.18, 0.0, 0.0]), atol=2e-3)
    # one fixed transform: identical pixels give identical output on every frame
    np.testing.assert_array_equal(img, shot.read(1))


def test_exr_default_display_transform_tone_maps_highlights(tmp_path):
    data = np.full((8, 8, 3), 0.18, np.float32)
    data[0, 0] = 20.0  # a highlight far above 1.0
    write_exr(tmp_path / "hdr.0001.exr", data)
    shot = open_shot(str(tmp_path / "hdr.####.exr"))
    img = shot.read(0)
    assert shot.transform.source == "lin_rec709" and not shot.transform.identity
    assert 0.0 < img[1, 1, 0] < img[0, 0, 0] <= 1.0  # mid grey below the highlight, nothing above 1
    # the default (tone-mapping) view differs from a plain sRGB encoding of mid grey
    assert abs(img[1, 1, 0] - srgb_encode(0.18)) > 0.01


def test_exr_default_display_transform_is_pinned_not_the_oiio_default(tmp_path, monkeypatch):
    """Without $OCIO: the built-in CG config v2.1.0 with sRGB - Display / ACES 1.0 - SDR Video, whatever
    the OIIO build's default (OIIO 3.0: ACES 1.0, OIIO 3.2: ACES 2.0, 0.2 apart on a ramp). Values
    measured with OIIO 3.0.21 and 3.2.2 (identical)."""
    from dino_tracker_vfx.shots import colour
    from dino_tracker_vfx.tracker.cache import shot_identity

    monkeypatch.delenv("OCIO", raising=False)
    data = np.zeros((2, 2, 3), np.float32)
    data[0, 0], data[0, 1], data[1, 0] = 0.18, 20.0, [1.0, 0.5, 0.25]
    write_exr(tmp_path / "g.0001.exr", data, pixel_type="float")
    shot = open_shot(str(tmp_path / "g.####.exr"))
    tr = shot.transform
    assert (tr.config, tr.display, tr.view) == (colour.BUILTIN_CONFIG, "sRGB - Display", "ACES 1.0 - SDR Video")
    img = shot.read(0)
    np.testing.assert_allclose(img[0, 0], [0.35595] * 3, atol=2e-4)
    np.testing.assert_allclose(img[0, 1], [1.0] * 3, atol=1e-6)
    np.testing.assert_allclose(img[1, 0], [0.82029, 0.65670, 0.48195], atol=2e-4)
    # the cache key holds config, display and view: another view never reuses cached pixels
    key = shot_identity(shot)["transform"]
    assert colour.BUILTIN_CONFIG in key and "ACES 1.0 - SDR Video" in key
    other = open_shot(str(tmp_path / "g.####.exr"), view="Un-tone-mapped")
    assert shot_identity(other)["transform"] != key


STUDIO_OCIO = """ocio_profile_version: 2.1
roles: {default: sRGB, scene_linear: sRGB, data: matte}
displays:
  Monitor:
    - !<View> {name: Film, colorspace: monitor}
colorspaces:
  - !<ColorSpace> {name: sRGB, encoding: scene-linear}
  - !<ColorSpace> {name: plate_log, encoding: log, from_scene_reference: !<LogTransform> {base: 10}}
  - !<ColorSpace>
    name: monitor
    encoding: sdr-video
    from_scene_reference: !<ExponentTransform> {value: [2.2, 2.2, 2.2, 1], direction: inverse}
  - !<ColorSpace> {name: matte, isdata: true}
"""


def test_the_ocio_config_decides_what_is_scene_linear_not_the_names(tmp_path, monkeypatch):
    """A studio config whose 'sRGB' is scene-linear: it is transformed (a list of names would call it
    display-referred); its log space too; its display-encoded and data spaces pass unchanged."""
    from dino_tracker_vfx.shots import colour

    cfg = tmp_path / "studio.ocio"
    cfg.write_text(STUDIO_OCIO)
    monkeypatch.setenv("OCIO", str(cfg))
    px = np.full((1, 1, 3), 0.25, np.float32)
    got = {n: colour.make_transform(n) for n in ("sRGB", "plate_log", "monitor", "matte")}
    assert {n: t.identity for n, t in got.items()} == {"sRGB": False, "plate_log": False, "monitor": True,
                                                       "matte": True}
    assert (got["sRGB"].display, got["sRGB"].view) == ("Monitor", "Film")
    np.testing.assert_allclose(got["sRGB"].apply(px), 0.25 ** (1 / 2.2), atol=1e-5)  # to the monitor's gamma
    np.testing.assert_array_equal(got["monitor"].apply(px), px)


@pytest.mark.parametrize("space", ["Gamma 2.2 AP1 - Texture", "g18_rec709", "srgb_rec709_scene", "Raw"])
def test_display_encoded_spaces_of_the_builtin_config_pass_unchanged(tmp_path, monkeypatch, space):
    """Gamma-encoded textures (OCIO encoding sdr-video), OIIO's own tags for them and the colour interop ID
    of sRGB are already fit to look at: no tone mapping."""
    import cv2

    monkeypatch.delenv("OCIO", raising=False)
    rgb = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 900).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "t.0001.png"), rgb[..., ::-1])
    shot = open_shot(str(tmp_path / "t.####.png"), colorspace=space)
    assert shot.transform.identity
    np.testing.assert_allclose(shot.read(0), rgb / 65535.0, atol=1e-6)


@pytest.mark.parametrize("space", ["lin_rec709", "ACEScg", "ACEScct", "scene_linear"])
def test_scene_linear_and_log_spaces_of_the_builtin_config_are_transformed(monkeypatch, space):
    from dino_tracker_vfx.shots import colour

    monkeypatch.delenv("OCIO", raising=False)
    assert not colour.make_transform(space).identity and colour.needs_display_transform(space) is True


def test_unloadable_ocio_config_is_a_clear_error(tmp_path, monkeypatch):
    from dino_tracker_vfx.shots import colour

    write_exr(tmp_path / "c.0001.exr", np.zeros((4, 4, 3), np.float32))
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    colour._config_for.cache_clear()
    with pytest.raises(ShotError, match=r"OCIO config .*missing\.ocio cannot be loaded \(\$OCIO\)"):
        open_shot(str(tmp_path / "c.####.exr"))


def test_exr_nan_pixels_name_the_frame(tmp_path):
    data = np.full((6, 6, 3), 0.5, np.float32)
    write_exr(tmp_path / "n.0001.exr", data)
    data[3, 3, 1] = np.nan
    write_exr(tmp_path / "n.0002.exr", data, pixel_type="float")
    shot = open_shot(str(tmp_path / "n.####.exr"), colorspace="Raw")
    shot.read(0)
    with pytest.raises(ShotError, match=r"n\.0002\.exr: frame 2 has 1 NaN/Inf"):
        shot.read(1)


def test_unknown_colorspace_is_a_clear_error(tmp_path):
    write_exr(tmp_path / "c.0001.exr", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ShotError, match="colour space 'nonsense' is not in the OCIO config"):
        open_shot(str(tmp_path / "c.####.exr"), colorspace="nonsense")


def test_dpx_sequence(tmp_path):
    import OpenImageIO as oiio

    px = textured_frame(0, 32, 16).astype(np.float32) / 255.0
    spec = oiio.ImageSpec(32, 16, 3, "uint16")
    out = oiio.ImageOutput.create("x.dpx")
    if out is None:
        pytest.skip("this OpenImageIO build cannot write DPX")
    path = str(tmp_path / "d.1001.dpx")
    assert out.open(path, spec)
    assert out.write_image(px)
    out.close()
    shot = open_shot(str(tmp_path / "d.####.dpx"), colorspace="sRGB")
    assert list(shot.frame_numbers) == [1001]
    np.testing.assert_allclose(shot.read(0), px, atol=1 / 65535 + 1e-6)


# --------------------------------------------------------------------------- movies
def _encode_movie(path, frames, pts, rate=24):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.time_base = Fraction(1, rate)
        s.options = {"crf": "1", "g": "4", "bf": "0"}  # keyframe every 4 frames: exercises seeking
        for img, p in zip(frames, pts):
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = p
            fr.time_base = Fraction(1, rate)
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _level_frames(n, w=64, h=48):
    # frame k is flat grey at level 20 + 20 k: robust to compression
    return [np.full((h, w, 3), 20 + 20 * k, np.uint8) for k in range(n)]


def test_mp4_frames_by_timestamp_and_random_access(tmp_path):
    path = tmp_path / "clip.mp4"
    _encode_movie(path, _level_frames(10), list(range(10)))
    shot = open_shot(str(path))
    assert shot.kind == "movie" and shot.size == (64, 48) and shot.fps == 24
    assert list(shot.frame_numbers) == list(range(1, 11))
    for t in (7, 2, 3, 9, 0):  # backwards and forwards
        level = shot.read(t).mean() * 255
        assert abs(level - (20 + 20 * t)) < 3, (t, level)


def test_variable_frame_rate_does_not_shift_frames(tmp_path):
    path = tmp_path / "vfr.mp4"
    pts = [0, 1, 2, 5, 6, 9]  # dropped frames at 3-4 and 7-8
    _encode_movie(path, _level_frames(len(pts)), pts)
    shot = open_shot(str(path))
    assert list(shot.frame_numbers) == [1, 2, 3, 6, 7, 10]
    assert shot.gaps() == [(4, 5), (8, 9)]
    np.testing.assert_allclose(shot.seconds, np.array(pts) / 24)
    for t in range(len(pts)):
        assert abs(shot.read(t).mean() * 255 - (20 + 20 * t)) < 3


@pytest.mark.shared_data
def test_movie_read_matches_bundled_jpegs():
    from conftest import SHARED_DATA

    mp4 = os.path.join(SHARED_DATA, "demo_videos", "horsejump-high_480p.mp4")
    jpgs = os.path.join(SHARED_DATA, "tapvid_davis", "frames480", "29_horsejump-high", "video")
    m, s = open_shot(mp4), open_shot(jpgs)
    assert len(m) == len(s) == 50
    for t in (0, 17, 49):
        err_same = np.abs(m.read(t) - s.read(t)).mean()
        err_other = np.abs(m.read(t) - s.read(max(0, t - 3) if t else 3)).mean()
        assert err_same < 0.02 and err_same < err_other / 2


def test_corrupt_movie_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    with pytest.raises(ShotError, match=r"bad\.mp4"):
        open_shot(str(bad))
