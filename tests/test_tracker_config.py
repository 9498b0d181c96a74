"""Presets and settings validation: every preset loads, bad fields name themselves."""

from __future__ import annotations

import pytest

from dino_tracker_vfx.errors import ConfigError
from dino_tracker_vfx.tracker.config import DEFAULTS, TrackerConfig, diff_settings, settings_hash
from dino_tracker_vfx.tracker.presets import DEFAULT_PRESET, load_preset, preset_names


def test_the_four_presets_exist_and_validate():
    names = preset_names()
    for n in ("paper", "balanced", "fast", "cpu-preview", "raw-dino"):
        assert n in names
        cfg = load_preset(n)
        assert cfg.name == n
    assert DEFAULT_PRESET == "cpu-preview"


def test_paper_preset_is_the_papers_settings():
    c = load_preset("paper")
    assert (c["backbone"], c["stride"], c["layer"], c["working_height"]) == ("dinov2_vitl14", 7, 15, 476)
    assert c["train.iterations"] == 10000 and c["train.lr"] == 0.01 and c.rfn_start() == 5000
    assert (c["train.lambda_dino_bb"], c["train.lambda_rfn_bb"], c["train.lambda_cyc"]) == (25e-5, 5e-5, 0.5)
    assert (c["infer.argmax_radius"], c["infer.anchor_cos"], c["infer.visible_cos"]) == (35.0, 0.7, 0.6)
    assert c.feature_dim == 1024 and not c.weight_free


def test_cpu_preview_is_weight_free_and_rfn_start_scales():
    c = load_preset("cpu-preview")
    assert c.weight_free and c["flow.method"] == "dis" and c.feature_dim == c["delta.out_channels"]
    assert c.rfn_start() == round(0.5 * c["train.iterations"])
    assert load_preset({"base": "fast", "train": {"iterations": 400}}).rfn_start() == 200


def test_raw_dino_preset_has_no_delta_and_no_refiner():
    c = load_preset("raw-dino")
    assert c.raw_dino and not c["refiner"]


@pytest.mark.parametrize("over, field", [
    ({"train": {"iterations": -5}}, "train.iterations"),
    ({"train": {"iteratons": 5}}, "did you mean train.iterations"),
    ({"backbone": "resnet"}, "backbone"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"infer": {"occlusion": "yes"}}, "infer.occlusion"),
    ({"delta": {"hidden": []}}, "delta.hidden"),
    ({"backbone": "none"}, "delta.out_channels"),
    ({"backbone": "none", "delta": {"out_channels": 32}}, "flow.method"),
    ({"layer": 30}, "layer"),
    ({"train": 5}, "train: must be a mapping"),
    ({"infer": {"drift_correct": True}}, "infer.drift_correct"),
])
def test_bad_fields_raise_config_error_naming_the_field(over, field):
    with pytest.raises(ConfigError) as e:
        load_preset({"base": "paper", **over})
    assert field in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_files_and_their_errors(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: cpu-preview\ntrain:\n  iterations: 7\n")
    c = load_preset(str(p))
    assert c["train.iterations"] == 7 and c.weight_free and c.name == "mine"
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line"):
        load_preset(str(bad))
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(ConfigError, match="loop"):
        load_preset(str(loop))
    with pytest.raises(ConfigError, match=r"unknown preset 'nope' \(known: "):
        load_preset("nope")


def test_hash_and_diff_of_settings():
    a = TrackerConfig.from_dict({}).to_dict()
    b = TrackerConfig.from_dict({"train": {"iterations": 5}}).to_dict()
    assert settings_hash(a) == settings_hash(dict(DEFAULTS, name="custom"))
    assert settings_hash(a) != settings_hash(b)
    assert diff_settings(a, b) == ["train.iterations: 10000 vs 5"]
