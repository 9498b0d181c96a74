"""Job spec validation: one-line errors naming the file and the field; relative paths; batch files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from _jobs_helpers import counting_tracker, make_shot, tiny_job, write_queries, write_spec
from dino_tracker_vfx.errors import ConfigError
from dino_tracker_vfx.jobs import batch as B
from dino_tracker_vfx.jobs.spec import load_spec, merged_preset, spec_from_dict


@pytest.fixture(autouse=True)
def own_tracker_settings():
    """Spec parsing tests use the helper tracker's preset fields (the tracker's own loader is tested below)."""
    with counting_tracker():
        yield


@pytest.fixture
def shot_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_shot(tmp_path / "plates", "sh010")
    write_queries(tmp_path / "q.csv")
    return tmp_path


def _spec(tmp_path: Path, **fields) -> Path:
    d = {"shot": "plates/sh010.####.png", "queries": "q.csv", "outputs": ["out/sh010.csv"]}
    d.update(fields)
    return write_spec(tmp_path / "job.yaml", {k: v for k, v in d.items() if v is not None})


def _err(path) -> str:
    with pytest.raises(ConfigError) as e:
        load_spec(os.path.relpath(path))  # as a user types it
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_valid_spec_resolves_relative_paths_against_the_spec_folder(shot_dir):
    sub = shot_dir / "elsewhere"
    sub.mkdir()
    os.chdir(sub)  # the cwd must not matter
    spec = load_spec(_spec(shot_dir, shot={"path": "plates/sh010.####.png", "frames": "1001-1004"},
                           outputs=[{"format": ".json", "path": "out/a.json"}, "out/b.csv",
                                    {"format": "csv", "path": "/abs/c.txt"}],
                           masks=[{"path": "q.csv", "frame": 1002}], seed=3, device="CUDA:1"))
    assert spec.name == "job"
    assert spec.shot.path == str(shot_dir / "plates" / "sh010.####.png")
    assert spec.shot.frames == "1001-1004"
    assert spec.queries == [str(shot_dir / "q.csv")]
    assert [(o.format, o.path) for o in spec.outputs] == [
        ("json", str(shot_dir / "out" / "a.json")), ("csv", str(shot_dir / "out" / "b.csv")), ("csv", "/abs/c.txt")]
    assert spec.masks[0].text == f"{shot_dir / 'q.csv'}@1002"
    assert (spec.seed, spec.device) == (3, "cuda:1")
    assert spec.wants_gpu()
    # the resolved copy reads back identically from anywhere
    again = spec_from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())), base_dir="/")
    assert again.to_dict() == spec.to_dict()
    assert again.tracking_key() == spec.tracking_key()


def test_range_in_the_shot_string(shot_dir):
    spec = load_spec(_spec(shot_dir, shot="plates/sh010.####.png 1002-1005"))
    assert spec.shot.frames == "1002-1005"
    assert spec.shot.path.endswith("sh010.####.png")


@pytest.mark.parametrize("fields, expect", [
    ({"outputs": [{"format": "csv", "path": "a.csv"}, {"format": "nukee", "path": "b.nk"}]},
     "job.yaml: outputs[1].format: unknown adapter 'nukee' (known: "),
    ({"outputs": ["out/tracks"]}, "job.yaml: outputs[0].path: "),
    ({"outputs": [{"format": "csv", "path": "a.csv", "options": {"bogus": 1}}]},
     "job.yaml: outputs[0].options: "),
    ({"outputs": [{"path": "a.csv", "fromat": "csv"}]}, "job.yaml: outputs[0].fromat: unknown field"),
    ({"outputs": ["a.csv", {"format": "csv", "path": "a.csv"}]}, "job.yaml: outputs: two outputs write the same"),
    ({"shot": "plates/nothing.####.png"}, "job.yaml: shot.path: no frames on disk match"),
    ({"shot": "plates/sh010.####.png 1010-1001"}, "job.yaml: shot.path: bad frame range"),
    ({"shot": {"path": "plates/sh010.####.png", "frames": "9-1"}}, "job.yaml: shot.frames: bad frame range '9-1'"),
    ({"shot": {"path": "plates/sh010.####.png", "colourspace": "x"}}, "job.yaml: shot.colourspace: unknown field"),
    ({"queries": "missing.csv"}, "job.yaml: queries: no such file: "),
    ({"queries": ["q.csv", "missing.csv"]}, "job.yaml: queries[1]: no such file"),
    ({"queries": None}, "job.yaml: queries: give queries and/or masks"),
    ({"corrections": "nofix.csv"}, "job.yaml: corrections: no such file: "),
    ({"masks": [{"path": "q.csv", "frame": "first"}]}, "job.yaml: masks[0].frame: expected a host frame number"),
    ({"device": "gpu"}, "job.yaml: device: 'gpu' is not one of auto, cpu, cuda"),
    ({"seed": -1}, "job.yaml: seed: expected an integer >= 0"),
    ({"name": "sh 010"}, "job.yaml: name: 'sh 010' must be letters"),
    ({"overrides": [1]}, "job.yaml: overrides: expected a mapping"),
    ({"resources": {"num_gpu": 1}}, "job.yaml: resources.num_gpu: unknown field"),
    ({"shots": "x"}, "job.yaml: shots: unknown field"),
])
def test_bad_fields_are_named(shot_dir, fields, expect):
    msg = _err(_spec(shot_dir, **fields))
    assert msg.startswith(expect), msg


@pytest.mark.parametrize("fields, expect", [
    ({"retries": 30}, "job.yaml: retries: expected an integer in 0..20, got 30"),
    ({"seed": "7"}, "job.yaml: seed: expected an integer >= 0, got '7'"),
    ({"seed": True}, "job.yaml: seed: expected an integer >= 0, got True"),
    ({"resources": {"num_cpus": -1}}, "job.yaml: resources.num_cpus: expected a number >= 0 or null, got -1"),
    ({"resources": {"num_gpu": 1}}, "job.yaml: resources.num_gpu: unknown field; did you mean resources.num_gpus?"),
    ({"shot": {"path": "plates/sh010.####.png", "first_frame": "1"}},
     "job.yaml: shot.first_frame: expected an integer, got '1'"),
    ({"shot": {"frames": "1001-1002"}}, "job.yaml: shot.path: missing"),
    ({"shot": 5}, "job.yaml: shot: expected a path or a mapping with path, frames, colorspace, display, view, "
                  "first_frame"),
    ({"shots": "x"}, "job.yaml: shots: unknown field; did you mean shot?"),
    ({"masks": ["q.csv"], "objects": {"min_visible": 2}},
     "job.yaml: objects.min_visible: expected a fraction in (0, 1], got 2"),
    ({"masks": ["q.csv"], "objects": {"trakcs": True}},
     "job.yaml: objects.trakcs: unknown field; did you mean objects.tracks?"),
    ({"masks": ["q.csv"], "objects": {"segment": {"mattes": "hard"}}},
     "job.yaml: objects.segment.out: missing (the folder for propagated masks)"),
    ({"masks": ["q.csv"], "objects": {"segment": {"out": "o", "features": 3}}},
     "job.yaml: objects.segment.features: expected a name, got 3"),
    ({"masks": ["q.csv"], "objects": {"names": {0: "bg"}}},
     "job.yaml: objects.names: expected {id: name} with mask ids > 0, e.g. {1: horse, 2: rider}, got {0: 'bg'}"),
    ({"outputs": [{"path": "a.csv", "options": 3}]}, "job.yaml: outputs[0].options: expected a mapping of adapter "
                                                     "options, got 3"),
])
def test_the_spec_model_gives_one_line_per_bad_field(shot_dir, fields, expect):
    """Types, bounds, unknown and missing fields come from the pydantic model (jobs/spec.py), one line each."""
    assert _err(_spec(shot_dir, **fields)) == expect


def test_spec_model_defaults_and_normalised_forms(shot_dir):
    spec = load_spec(_spec(shot_dir, masks="q.csv@1002", objects={"segment": {"out": "mattes"}},
                           resources={"num_cpus": 2}))
    assert (spec.seed, spec.retries, spec.device, spec.cache) == (0, 1, None, None)
    assert spec.masks[0].frame == 1002 and spec.masks[0].path == str(shot_dir / "q.csv")
    assert spec.objects == {"tracks": True, "segment": {"out": str(shot_dir / "mattes")}}
    assert spec.resources == {"num_cpus": 2} and type(spec.resources["num_cpus"]) is int
    assert spec.source.endswith("job.yaml") and spec.base_dir == str(shot_dir)


def test_bad_yaml_and_not_a_mapping(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("shot: [unclosed\n")
    assert "job.yaml: invalid YAML at line" in _err(p)
    p.write_text("- a\n- b\n")
    assert "expected a mapping" in _err(p)
    assert "job spec not found" in _err(tmp_path / "nope.yaml")


def test_unknown_preset_and_overrides_with_the_tracker_loader(shot_dir):
    from dino_tracker_vfx.jobs import tracker_entry
    from dino_tracker_vfx.tracker import presets as P

    tracker_entry.use(None)  # the built-in tracker
    msg = _err(_spec(shot_dir, preset="nonexistent-preset"))
    assert msg.startswith("job.yaml: preset: unknown preset 'nonexistent-preset' (known: ")
    name = P.preset_names()[0]
    msg = _err(_spec(shot_dir, preset=name, overrides={"no_such_section": {"x": 1}}))
    assert msg.startswith("job.yaml: overrides: "), msg
    spec = load_spec(_spec(shot_dir, preset=name, overrides={}))
    assert merged_preset(spec) == name


def test_a_preset_module_that_fails_to_import_is_an_error_not_a_skipped_check(shot_dir, monkeypatch):
    import sys

    import dino_tracker_vfx.tracker as tracker_pkg
    from dino_tracker_vfx.jobs import tracker_entry

    tracker_entry.use(None)  # the built-in tracker
    monkeypatch.setitem(sys.modules, "dino_tracker_vfx.tracker.presets", None)
    monkeypatch.delattr(tracker_pkg, "presets", raising=False)
    with pytest.raises(ImportError, match="dino_tracker_vfx.tracker.presets"):
        load_spec(_spec(shot_dir, preset={"no_such_section": {"x": 1}}))


def test_overrides_merge(shot_dir):  # the stand-in's own preset fields
    spec = load_spec(_spec(shot_dir, preset={"a": {"x": 1, "y": 2}, "b": 3}, overrides={"a": {"y": 5}}))
    assert merged_preset(spec) == {"a": {"x": 1, "y": 5}, "b": 3}
    spec = load_spec(_spec(shot_dir, preset="fast", overrides={"train": {"iterations": 10}}))
    assert merged_preset(spec) == {"base": "fast", "train": {"iterations": 10}}


def test_batch_template_and_per_job_errors(tmp_path):
    for n in ("sh010", "sh020"):
        make_shot(tmp_path / "plates" / n, n)
        write_queries(tmp_path / f"{n}.csv")
    write_spec(tmp_path / "shots.yaml", {
        "template": {"queries": "{name}.csv", "preset": {"iterations": 3}, "device": "cpu",
                     "outputs": [{"format": "csv", "path": "out/{name}_tracks.csv"}]},
        "shots": [{"shot": "plates/sh010/sh010.####.png"},
                  {"name": "sh020", "shot": "plates/sh020/sh020.####.png", "seed": 4},
                  {"name": "sh030", "shot": "plates/sh030/sh030.####.png"},
                  {"name": "sh040", "shot": "plates/sh010/sh010.####.png", "queries": "{take}.csv"}]})
    jobs = B.load_batch(tmp_path / "shots.yaml")
    assert [j.name for j in jobs] == ["sh010", "sh020", "sh030", "sh040"]
    assert jobs[0].spec.queries == [str(tmp_path / "sh010.csv")]
    assert jobs[1].spec.outputs[0].path == str(tmp_path / "out" / "sh020_tracks.csv") and jobs[1].spec.seed == 4
    assert jobs[2].spec is None and jobs[2].state == "failed"
    assert jobs[2].reason.startswith("shots.yaml: shots[2]: shot.path: no such folder") or \
        "shots[2]: shot.path" in jobs[2].reason, jobs[2].reason
    assert "shots[3]" in jobs[3].reason and "{take}" in jobs[3].reason

    write_spec(tmp_path / "dup.yaml", {"jobs": [{"name": "a", "shot": "plates/sh010/sh010.####.png",
                                                 "queries": "sh010.csv"}] * 2})
    with pytest.raises(ConfigError, match="two jobs are named 'a'"):
        B.load_batch(tmp_path / "dup.yaml")
    write_spec(tmp_path / "bad.yaml", {"job": []})
    with pytest.raises(ConfigError, match="bad.yaml: job: unknown field"):
        B.load_batch(tmp_path / "bad.yaml")


def test_list_form_batch_with_spec_paths(tmp_path):
    tiny_job(tmp_path, "a")
    (tmp_path / "b.yaml").write_text("shot: [\n")
    (tmp_path / "list.yaml").write_text("- a.yaml\n- b.yaml\n- nope.yaml\n")
    jobs = B.load_batch(tmp_path / "list.yaml")
    assert [(j.name, j.spec is not None) for j in jobs] == [("a", True), ("b", False), ("nope", False)]
    assert "invalid YAML" in jobs[1].reason and "job spec not found" in jobs[2].reason


def test_corrections_join_the_queries_tracks_and_change_the_tracking_key(shot_dir):
    from dino_tracker_vfx.errors import InputError
    from dino_tracker_vfx.jobs.worker import read_inputs
    from dino_tracker_vfx.shots import open_shot

    (shot_dir / "q2.csv").write_text("name,frame,x,y\nb,1001,3,3\nb,1003,4,4\n")
    plain = load_spec(_spec(shot_dir, queries=["q.csv", "q2.csv"]))
    first = read_inputs(plain, open_shot(plain.shot.path))[0]
    (shot_dir / "fix.csv").write_text("name,frame,x,y\nb,1004,5,5\n")
    spec = load_spec(_spec(shot_dir, queries=["q.csv", "q2.csv"], corrections="fix.csv"))
    assert spec.corrections == str(shot_dir / "fix.csv")
    assert spec_from_dict(spec.to_dict(), base_dir="/").corrections == spec.corrections
    assert spec.tracking_key() != plain.tracking_key()  # the saved tracks are stale, the cache is not
    qs = read_inputs(spec, open_shot(spec.shot.path))[0]
    assert qs[:len(first)] == first and [q.name for q in first].count("b") == 2  # b's two rows: one track
    assert (qs[-1].name, qs[-1].t, qs[-1].x) == ("b", 3, 5.0)
    (shot_dir / "fix.csv").write_text("name,frame,x,y\nzz,1004,5,5\n")
    with pytest.raises(InputError, match=r"fix.csv: line 2: correction for unknown track 'zz' \(not in q.csv, q2.csv\)"):
        read_inputs(spec, open_shot(spec.shot.path))


def test_tracking_key_and_plain_form_are_the_ones_main_wrote_before_the_spec_model():
    """A saved result stays current across the change to the pydantic spec (key recorded on main fcf7a4e)."""
    d = {"shot": "plates/sh010.####.png 1002-1004", "queries": ["q.csv"], "masks": ["m.png@1002"],
         "outputs": ["out/a.csv", {"format": "json", "path": "o.json"}],
         "preset": {"base": "fast", "train": {"iterations": 5}}, "seed": 3, "device": "cuda:1",
         "resources": {"num_gpus": 1}, "objects": {"names": {1: "car"}, "min_visible": 1}}
    spec = spec_from_dict(d, base_dir="/show/sh010", where="j.yaml", check_files=False)
    assert spec.tracking_key() == "1be9040a4537f8ac"
    assert spec.to_dict() == {
        "name": "job", "shot": {"path": "/show/sh010/plates/sh010.####.png", "frames": "1002-1004"},
        "queries": ["/show/sh010/q.csv"], "masks": [{"path": "/show/sh010/m.png", "frame": 1002}],
        "preset": {"base": "fast", "train": {"iterations": 5}}, "seed": 3, "device": "cuda:1",
        "outputs": [{"format": "csv", "path": "/show/sh010/out/a.csv"},
                    {"format": "json", "path": "/show/sh010/o.json"}],
        "objects": {"names": {1: "car"}, "min_visible": 1, "tracks": True}, "resources": {"num_gpus": 1}, "retries": 1}
