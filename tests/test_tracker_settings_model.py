"""The typed settings model (tracker/config.py): presets validate and round-trip, bad fields give one
line naming the file and the field, cache keys of the presets are the ones main recorded before the
settings were typed, and ``cfg.a.b`` equals ``cfg["a.b"]`` for every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from dino_tracker_vfx.errors import ConfigError
from dino_tracker_vfx.tracker.cache import ShotCache
from dino_tracker_vfx.tracker.config import DEFAULTS, STAGE_FIELDS, STAGES, TrackerConfig, settings_hash
from dino_tracker_vfx.tracker.preprocess.stages import flow_settings
from dino_tracker_vfx.tracker.presets import load_preset, preset_names

# recorded on main before the settings became a pydantic model (commit fcf7a4e): existing caches must hit
GOLDEN_KEYS = Path(__file__).parent / "golden" / "preset_cache_keys.json"


def _dotted_fields(model: type[BaseModel] = TrackerConfig, prefix: str = "") -> list[str]:
    out = []
    for name, fi in model.model_fields.items():
        out.append(prefix + name)
        if isinstance(fi.annotation, type) and issubclass(fi.annotation, BaseModel):
            out += _dotted_fields(fi.annotation, f"{prefix}{name}.")
    return out


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_validates_and_round_trips_to_the_same_dict(name):
    cfg = load_preset(name)
    d = cfg.to_dict()
    again = TrackerConfig.from_dict(d)
    assert again.to_dict() == d and again.source == "<settings>" and cfg.source == f"{name}.yaml"
    assert json.loads(json.dumps(d)) == d  # plain JSON-able values, nothing model-typed left in the dict


def test_defaults_are_the_papers_values_and_a_plain_dict():
    assert DEFAULTS["train"]["iterations"] == 10000 and DEFAULTS["flow"]["fb_thresh"] == 1.5
    assert DEFAULTS["delta"]["hidden"] == [64, 128, 256] and DEFAULTS["backbone"] == "dinov2_vitl14"
    assert TrackerConfig.from_dict({}).to_dict() == DEFAULTS


@pytest.mark.parametrize("text, message", [
    ("train:\n  iterations: ten\n", "mine.yaml: train.iterations: must be an integer in 1..10000000, got 'ten'"),
    ("train:\n  lr: 20\n", "mine.yaml: train.lr: must be a number in 1e-09..10, got 20"),
    ("flow:\n  fb_thresh: true\n", "mine.yaml: flow.fb_thresh: must be a number in 0..100, got True"),
    ("layer: -1\n", "mine.yaml: layer: must be an integer in 0..39, got -1"),
    ("trian:\n  lr: 0.1\n", "mine.yaml: trian: unknown field; did you mean train?"),
    ("train:\n  iteratons: 5\n", "mine.yaml: train.iteratons: unknown field; did you mean train.iterations?"),
    ("flow:\n  method: farneback\n", "mine.yaml: flow.method: must be one of dis, raft_small, raft_large, "
                                     "got 'farneback'"),
    ("delta:\n  kernel: 4\n", "mine.yaml: delta.kernel: must be one of 3, 5, 7, got 4"),
    ("delta:\n  hidden: [8, 0]\n", "mine.yaml: delta.hidden: must be a non-empty list of integers in 1..4096, "
                                   "got [8, 0]"),
    ("flow:\n  height: 8\n", "mine.yaml: flow.height: must be an integer in 16..8192 or null, got 8"),
    ("infer: fast\n", "mine.yaml: infer: must be a mapping of settings, got str"),
    ("registers: 'no'\n", "mine.yaml: registers: must be true or false, got 'no'"),
])
def test_bad_fields_in_a_file_give_one_line_naming_the_file_and_the_field(tmp_path, text, message):
    p = tmp_path / "mine.yaml"
    p.write_text("base: paper\n" + text)
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert str(e.value) == f"{tmp_path}/{message}"


def test_cross_field_rules_name_their_field():
    with pytest.raises(ConfigError, match=r"^<settings>: delta.out_channels: must equal the dinov2_vitl14 "
                                          r"dimension 1024 \(or null\), got 64$"):
        TrackerConfig.from_dict({"delta": {"out_channels": 64}})


def test_numbers_keep_integers_so_cache_keys_of_older_files_stay():
    cfg = TrackerConfig.from_dict({"flow": {"fb_thresh": 2}})
    assert type(cfg.flow.fb_thresh) is int and cfg.to_dict()["flow"]["fb_thresh"] == 2


def test_cache_keys_of_every_preset_are_the_ones_recorded_before_typing():
    """Stage keys as main wrote them before the settings were typed; 'all' (the hash of every setting, infer
    included) was re-recorded when infer.drift_radius*/gone_* were added, when the refine.* section was, when
    refine.hide_run was and when refine.shutter was (stage keys unchanged each time)."""
    want = json.loads(GOLDEN_KEYS.read_text())
    assert sorted(want) == preset_names()
    for name in preset_names():
        cfg = load_preset(name)
        got = {s: ShotCache.key(s, cfg.stage_settings(s)) for s in STAGES}
        got["flow_settings"] = ShotCache.key("flow", flow_settings(cfg))
        got["all"] = settings_hash(cfg.to_dict())
        assert got == want[name], name


def test_stage_fields_come_from_the_model_marks():
    assert STAGE_FIELDS["correspondences"] == ("flow.fb_thresh", "flow.drift_thresh", "flow.drift_pairs",
                                               "flow.seed_step")
    assert "train" in STAGE_FIELDS["train"] and "train.iterations" not in STAGE_FIELDS["train"]
    assert set(STAGE_FIELDS) == set(STAGES)


@pytest.mark.parametrize("name", ["paper", "cpu-preview"])
def test_typed_access_equals_string_access_for_every_field(name):
    cfg = load_preset(name)
    fields = _dotted_fields()
    assert "train.iterations" in fields and "flow.params" in fields and len(fields) > 60
    for dotted in fields:
        v = cfg
        for k in dotted.split("."):
            v = getattr(v, k)
        assert cfg[dotted] == (v.model_dump() if isinstance(v, BaseModel) else v), dotted
    with pytest.raises(KeyError, match="train.iteratons"):
        cfg["train.iteratons"]


def test_settings_are_read_only():
    cfg = load_preset("paper")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train.iterations = 5
