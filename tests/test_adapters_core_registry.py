"""Plugin system: registry, selection, options, ReadResult frame mapping, core json/csv adapters, CLI."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from dino_tracker_vfx.adapters import (Adapter, HostQuery, OptionSpec, ReadResult, hookimpl, load_registry,
                                       parse_option_pairs, resolve_options)
from dino_tracker_vfx.adapters.records import options_model
from dino_tracker_vfx.errors import ConfigError, InputError, UserError
from dino_tracker_vfx.tracks import TrackSet

from _adapter_helpers import (assert_same_tracks, check_golden, dtvfx, golden_trackset, read_with, registry,
                              write_with)

BUILTINS = {"json", "csv", "nuke", "nuke-ascii", "aftereffects", "aftereffects-jsx", "fusion"}


class _Plugin:
    """A plugin object (pluggy accepts instances with hookimpl-marked methods)."""

    def __init__(self, adapters=None, exc=None):
        self.adapters, self.exc = adapters or [], exc

    @hookimpl
    def dtvfx_adapters(self):
        if self.exc:
            raise self.exc
        return self.adapters


def _ad(name, suffixes=(".zz",), **kw):
    return Adapter(name, suffixes, f"test adapter {name}", write=lambda t, p, o: p.write_text("x"), **kw)


# ------------------------------------------------------------------------------------------- registry
def test_builtins_registered_with_their_plugin():
    reg = registry()
    assert BUILTINS <= set(reg.names())
    assert reg.source_of("nuke") == "dtvfx_plugins.nuke"
    assert reg.source_of("json") == "dtvfx_plugins.core_formats"
    assert reg.is_builtin("fusion")
    assert "host_nuke" not in " ".join(reg.sources.values())  # host-side code is not a plugin


def test_select_by_name_and_suffix():
    reg = registry()
    assert reg.select("nuke").name == "nuke"
    assert reg.for_path("shot/out.NK").name == "nuke"
    assert reg.for_path("a.nuke.txt").name == "nuke-ascii"  # longest suffix wins over nothing for .txt
    assert reg.for_path("x.ae.txt").name == "aftereffects"
    assert reg.for_path("tracks.setting", "read_queries").name == "fusion"
    with pytest.raises(ConfigError, match=r"no adapter can write a \.txt file"):
        reg.for_path("plain.txt")
    with pytest.raises(ConfigError, match="unknown adapter 'nukee'"):
        reg.get("nukee")
    with pytest.raises(ConfigError, match="cannot read queries"):
        reg.get("aftereffects-jsx", "read_queries")


def test_ambiguous_suffix_lists_candidates():
    reg = load_registry(entry_points=False, extra_plugins=[("ext_a", _Plugin([_ad("zz-one")])),
                                                           ("ext_b", _Plugin([_ad("zz-two")]))])
    with pytest.raises(ConfigError) as e:
        reg.for_path("t.zz")
    msg = str(e.value)
    assert "ambiguous" in msg and "zz-one (ext_a)" in msg and "zz-two (ext_b)" in msg and "--to" in msg
    assert reg.select("zz-two", "t.zz").name == "zz-two"  # a name resolves it


def test_duplicate_adapter_name_names_both_plugins():
    with pytest.raises(ConfigError) as e:
        load_registry(entry_points=False, extra_plugins=[("my_studio_plugin", _Plugin([_ad("nuke", (".nk2",))]))])
    assert "'nuke'" in str(e.value) and "dtvfx_plugins.nuke" in str(e.value) and "my_studio_plugin" in str(e.value)


def test_broken_third_party_plugin_is_skipped_and_logged(caplog):
    caplog.set_level(logging.WARNING, "dino_tracker_vfx.adapters")
    reg = load_registry(entry_points=False, extra_plugins=[
        ("boom", _Plugin(exc=RuntimeError("kaput"))),
        ("junk", _Plugin(["not an adapter"])),
        ("fine", _Plugin([_ad("fine-one")]))])
    assert "fine-one" in reg.names() and BUILTINS <= set(reg.names())
    assert any("boom" in s and "kaput" in s for s in reg.skipped)
    assert any("junk" in s and "Adapter" in s for s in reg.skipped)
    assert "boom" in caplog.text
    assert not reg.pm.is_registered(reg.pm.get_plugin("boom"))  # unregistered again


def test_adapter_record_validation():
    with pytest.raises(ValueError, match="capabilities"):
        _ad("x", capabilities=frozenset({"teleport"}))
    with pytest.raises(ValueError, match="start with '.'"):
        _ad("x", ("nk",))
    assert _ad("x", (".NK",)).suffixes == (".nk",)


# ------------------------------------------------------------------------------------------- options
def test_options_parse_resolve_and_errors():
    a = _ad("opt", options=(OptionSpec("cornerpin", "list"), OptionSpec("first_frame", "int", 1001),
                            OptionSpec("centroid", "bool", True), OptionSpec("size", "size"),
                            OptionSpec("blend", "path", flag="--blend", required=True, help="output .blend"),
                            OptionSpec("mode", "str", "a", choices=("a", "b"))))
    got = resolve_options(a, parse_option_pairs(["cornerpin=a, b,c,d", "centroid=no", "size=1920x1080",
                                                 "blend=o.blend", "first-frame=1"]))
    assert got["cornerpin"] == ("a", "b", "c", "d") and got["centroid"] is False and got["size"] == (1920, 1080)
    assert got["first_frame"] == 1 and got["mode"] == "a" and str(got["blend"]) == "o.blend"
    with pytest.raises(ConfigError, match="unknown option 'bogus'.*blend, centroid"):
        resolve_options(a, {"bogus": 1, "blend": "x"})
    with pytest.raises(ConfigError, match="'blend' is required.*--blend"):
        resolve_options(a, {})
    with pytest.raises(ConfigError, match="first_frame='ten' is not a valid int"):
        resolve_options(a, {"blend": "x", "first_frame": "ten"})
    with pytest.raises(ConfigError, match="must be one of a, b"):
        resolve_options(a, {"blend": "x", "mode": "c"})
    with pytest.raises(ConfigError, match="not key=value"):
        parse_option_pairs(["cornerpin"])
    ctx = resolve_options(a, {"blend": "x", "plate_size": "2048x1556", "frame_numbers": "1001-1003"})
    assert ctx["plate_size"] == (2048, 1556) and ctx["frame_numbers"] == [1001, 1002, 1003]


def test_options_are_a_pydantic_model_built_from_the_option_specs():
    a = _ad("opt", options=(OptionSpec("size", "size"), OptionSpec("first_frame", "int", "1001"),
                            OptionSpec("level", "int", 2, choices=(1, 2, 3)), OptionSpec("on", "bool", False)))
    m = options_model(a.name, a.options)
    assert [f.alias for f in m.model_fields.values()] == ["size", "first_frame", "level", "on"]
    got = resolve_options(a, {"level": "3", "on": None})
    assert got == {"size": None, "first_frame": 1001, "level": 3, "on": False}  # defaults converted, None = unset
    with pytest.raises(ConfigError, match=r"^adapter opt: size='0x5' is not a valid size \(WxH\)$"):
        resolve_options(a, {"size": "0x5"})
    with pytest.raises(ConfigError, match=r"^adapter opt: on='maybe' is not a valid bool$"):
        resolve_options(a, {"on": "maybe"})
    with pytest.raises(ConfigError, match=r"^adapter opt: level='4' must be one of 1, 2, 3$"):
        resolve_options(a, {"level": "4"})
    assert OptionSpec("plate_size", "size").parse("2048,1556") == (2048, 1556)


def test_every_registered_adapters_options_build_a_model_and_resolve():
    reg = registry()
    for name in reg.names():
        a = reg.get(name)
        need = {o.name: {"int": 1, "float": 1.0, "bool": True, "list": "a,b", "size": "4x3"}.get(o.type, "x")
                for o in a.options if o.required}
        got = resolve_options(a, need)
        assert set(got) == {o.name for o in a.options}, name


# ------------------------------------------------------------------------------------------- ReadResult
def test_read_result_maps_host_frames_to_image_indices():
    shot = SimpleNamespace(frame_numbers=np.array([1001, 1002, 1005, 1006]), size=(1920, 1080))
    rr = ReadResult((HostQuery(1005, 10, 20, "a", "g"), HostQuery(1001, 1, 2, "b")), plate_size=(1920, 1080),
                    source="q.nk")
    qs = rr.to_queries(shot)
    assert [(q.t, q.x, q.y, q.name, q.group) for q in qs] == [(2, 10, 20, "a", "g"), (0, 1, 2, "b", None)]
    with pytest.raises(InputError, match=r"q.nk:7: query 'c' is at frame 1003, in a gap of the shot \(1001-1006\)"):
        ReadResult((HostQuery(1003, 0, 0, "c", line=7),), source="q.nk").to_queries(shot)
    with pytest.raises(InputError, match="at frame 1, outside the shot"):
        ReadResult((HostQuery(1, 0, 0, "c"),), source="q.nk").to_queries(shot)
    with pytest.raises(InputError, match="1280x720 plate, the shot is 1920x1080"):
        ReadResult((HostQuery(1001, 0, 0, "c"),), plate_size=(1280, 720)).to_queries(shot)
    assert [q.t for q in rr.to_queries([1005, 1001])] == [0, 1]  # a plain frame list works too


def test_read_result_renames_duplicates_and_notes_it():
    rr = ReadResult((HostQuery(1, 0, 0, "pt"), HostQuery(1, 1, 1, "pt"), HostQuery(1, 2, 2, None)))
    assert [q.name for q in rr.queries] == ["pt", "pt_2", "query_003"]
    assert rr.notes == ("duplicate name 'pt' renamed to 'pt_2'",)


# ------------------------------------------------------------------------------------------- core formats
@pytest.mark.parametrize("name,suffix", [("json", ".json"), ("csv", ".csv")])
def test_core_golden_and_round_trip(tmp_path, name, suffix):
    ts = golden_trackset()
    out = write_with(name, ts, tmp_path / f"golden{suffix}")
    check_golden(out, name)
    back = read_with(name, out)
    assert_same_tracks(ts, back, visible_only=False, confidence=True)
    rr = read_with(name, out, "read_queries")
    assert [(q.frame, q.x, q.y, q.name, q.group) for q in rr.queries] == [
        (1001, 0.0, 0.0, "car_a", "car"), (1001, 100.25, 200.5, "car_b", "car"), (1003, 1916.0, 1074.0, "corner 1", None)]
    assert [q.t for q in rr.to_queries(ts)] == [0, 0, 2]


def test_core_json_spot_values(tmp_path):
    d = json.loads(write_with("json", golden_trackset(), tmp_path / "t.json").read_text())
    b = d["tracks"][1]
    assert d["frames"] == [1001, 1002, 1003, 1004, 1005] and d["plate"]["width"] == 1920
    assert b["xy"][2] == [104.25, 198.5] and b["visible"][2] is False  # occluded: position kept, not visible
    assert d["groups"][0]["centroid"][0] == [50.125, 100.25]


# ------------------------------------------------------------------------------------------- CLI
def test_cli_plugins_lists_adapters(tmp_path):
    r = dtvfx("plugins")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("nuke "))
    assert ".nk" in line and "dtvfx_plugins.nuke" in line and "cornerpin" in line and "write" in line
    d = json.loads(dtvfx("plugins", "--json").stdout)
    fus = next(a for a in d["adapters"] if a["name"] == "fusion")
    assert fus["suffixes"] == [".setting"] and fus["plugin"] == "dtvfx_plugins.fusion" and fus["builtin"]


def test_cli_export_by_name_suffix_and_options(tmp_path):
    ts = golden_trackset()
    ts.save_json(tmp_path / "t.json")
    r = dtvfx("export", tmp_path / "t.json", "--to", "nuke")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t.nk").is_file() and "wrote" in r.stdout
    r = dtvfx("export", tmp_path / "t.json", "--out", tmp_path / "o.setting")
    assert r.returncode == 0 and (tmp_path / "o.setting").read_text().startswith("{")
    r = dtvfx("export", tmp_path / "t.json", "--out", tmp_path / "cp.nk", "--option", "cornerpin=car_a,car_b,corner 1,car_a")
    assert r.returncode == 0, r.stderr
    assert "CornerPin2D {" in (tmp_path / "cp.nk").read_text()
    # host file -> core JSON (read_tracks through the suffix)
    r = dtvfx("export", tmp_path / "t.nk", "--to", "json", "--out", tmp_path / "back.json")
    assert r.returncode == 0, r.stderr
    assert_same_tracks(ts, TrackSet.load_json(tmp_path / "back.json"), confidence=True)


@pytest.mark.parametrize("args,msg", [
    (["--to", "nuke", "--option", "cornerpin=a,b"], "cornerpin needs 4 track names"),
    (["--to", "nuke", "--option", "cornerpin=car_a,car_b,nope,car_a"], "no track named 'nope'"),
    (["--to", "nuke", "--option", "colour=red"], "unknown option 'colour'"),
    (["--out", "X/plain.txt"], "no adapter can write a .txt file"),
    (["--to", "json"], "would overwrite the input"),
    ([], "--to NAME and/or --out FILE"),
])
def test_cli_export_bad_input_one_line_nothing_written(tmp_path, args, msg):
    golden_trackset().save_json(tmp_path / "t.json")
    before = sorted(p.name for p in tmp_path.iterdir())
    r = dtvfx("export", tmp_path / "t.json", *[a.replace("X/", str(tmp_path) + "/") for a in args])
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.startswith("dtvfx: error:") and "\n" not in err and msg in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_cli_export_missing_input_and_empty_trackset(tmp_path):
    r = dtvfx("export", tmp_path / "missing.json", "--to", "nuke")
    assert r.returncode == 2 and "missing.json: file not found" in r.stderr
    TrackSet.empty([1001, 1002], (64, 48)).save_json(tmp_path / "e.json")
    r = dtvfx("export", tmp_path / "e.json", "--to", "nuke")
    assert r.returncode == 2 and "holds no tracks" in r.stderr and not (tmp_path / "e.nk").exists()


def test_every_user_error_is_a_user_error():
    assert issubclass(ConfigError, UserError) and issubclass(InputError, UserError)
