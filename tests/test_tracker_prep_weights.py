"""tracker/preprocess/weights.py + backbones.py loading: official key layout, search order, sha256 checks, errors."""

from __future__ import annotations

import hashlib

import pytest
import torch

from dino_tracker_vfx.errors import WeightsError
from dino_tracker_vfx.tracker.preprocess import weights as wt
from dino_tracker_vfx.tracker.preprocess.backbones import DinoV2, build_dinov2


@pytest.fixture
def offline_dirs(tmp_path, monkeypatch):
    wdir, home = tmp_path / "weights", tmp_path / "torchhome"
    wdir.mkdir()
    monkeypatch.setenv("DTVFX_WEIGHTS", str(wdir))
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("DTVFX_OFFLINE", "1")
    return wdir, home


def _save_random_vits(path, registers=False, seed=0):
    m = DinoV2("vits14", registers=registers, layer=0)
    m.reset_parameters(seed)
    torch.save(m.state_dict(), path)
    return m


def test_official_key_layout():
    with torch.device("meta"):  # shapes only
        sd = DinoV2("vits14", registers=True, init=False).state_dict()
    assert sd["pos_embed"].shape == (1, 1 + 37 * 37, 384) and sd["register_tokens"].shape == (1, 4, 384)
    assert sd["cls_token"].shape == (1, 1, 384) and sd["mask_token"].shape == (1, 384)
    assert sd["patch_embed.proj.weight"].shape == (384, 3, 14, 14)
    for k in ("norm1.weight", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "ls1.gamma", "norm2.bias",
              "mlp.fc1.weight", "mlp.fc2.bias", "ls2.gamma"):
        assert f"blocks.11.{k}" in sd
    assert "norm.weight" in sd and "blocks.12.norm1.weight" not in sd
    from dino_tracker_vfx.tracker.preprocess.backbones import Block

    with torch.device("meta"):
        assert "register_tokens" not in DinoV2("vits14", init=False).state_dict()
        g = Block(1536, 24, "swiglu").state_dict()  # ViT-g FFN: SwiGLU with DINOv2's hidden size
    assert g["mlp.w12.weight"].shape == (2 * 4096, 1536) and g["mlp.w3.weight"].shape == (1536, 4096)


def test_load_from_weights_dir_records_and_checks_sidecar(offline_dirs):
    wdir, _ = offline_dirs
    path = wdir / "dinov2_vits14_reg4_pretrain.pth"
    ref = _save_random_vits(path, registers=True)
    net = build_dinov2("vits14_reg4", stride=7, layer=0)
    assert torch.equal(net.state_dict()["blocks.3.attn.qkv.weight"], ref.state_dict()["blocks.3.attn.qkv.weight"])
    side = wdir / "dinov2_vits14_reg4_pretrain.pth.sha256"
    assert side.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    _save_random_vits(path, registers=True, seed=1)  # the file changes under the recorded hash
    with pytest.raises(WeightsError, match="sha256") as e:
        build_dinov2("vits14_reg4")
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_known_hash_mismatch_is_refused(offline_dirs):
    wdir, _ = offline_dirs
    _save_random_vits(wdir / "dinov2_vits14_pretrain.pth")  # random weights under the official name
    with pytest.raises(WeightsError, match="does not match the official file"):
        build_dinov2("vits14")


def test_hub_cache_is_searched_after_weights_dir(offline_dirs):
    _, home = offline_dirs
    ck = home / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    _save_random_vits(ck / "dinov2_vits14_reg4_pretrain.pth", registers=True)
    assert wt.resolve_dinov2("vits14", True) == ck / "dinov2_vits14_reg4_pretrain.pth"


def test_missing_offline_says_where_to_put_it(offline_dirs):
    with pytest.raises(WeightsError) as e:
        build_dinov2("vitl14")
    msg = str(e.value)
    assert "\n" not in msg and "dinov2_vitl14_pretrain.pth" in msg and "backbone: none" in msg
    assert "DTVFX_WEIGHTS" in msg and "dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/" in msg
    with pytest.raises(WeightsError, match="does not exist"):
        build_dinov2("vits14", weights=offline_dirs[0] / "nope.pth")


def test_download_path_with_file_url(offline_dirs, tmp_path, monkeypatch):
    monkeypatch.delenv("DTVFX_OFFLINE")
    src = tmp_path / "served.pth"
    _save_random_vits(src, registers=True)
    got = []
    p = wt.resolve("dinov2_vits14_reg4_pretrain.pth", src.as_uri(), progress=got.append)
    assert p == offline_dirs[0] / "dinov2_vits14_reg4_pretrain.pth" and p.read_bytes() == src.read_bytes()
    assert got and got[-1].stage == "weights" and got[-1].done == got[-1].total == src.stat().st_size


def test_download_checks_the_official_hash_and_keeps_nothing_on_a_mismatch(offline_dirs, tmp_path, monkeypatch):
    """torch.hub's download checks the known sha256 while the file arrives: a served file that is not the
    official one is refused in one line and nothing (not even a partial file) is left in the folder."""
    monkeypatch.delenv("DTVFX_OFFLINE")
    wdir = offline_dirs[0]
    src = tmp_path / "served.pth"
    _save_random_vits(src)
    with pytest.raises(WeightsError, match=r"does not match the official file's sha256 \(b938bf1bc15c\.\.\.\)") as e:
        wt.resolve("dinov2_vits14_pretrain.pth", src.as_uri())
    assert "\n" not in str(e.value) and src.as_uri() in str(e.value)
    assert list(wdir.iterdir()) == []
    # the same file under a hash that is its own: fetched, placed, loadable
    monkeypatch.setitem(wt.KNOWN_SHA256, "dinov2_vits14_pretrain.pth", wt.sha256_file(src))
    got = []
    p = wt.resolve("dinov2_vits14_pretrain.pth", src.as_uri(), progress=got.append)
    assert p == wdir / "dinov2_vits14_pretrain.pth" and p.read_bytes() == src.read_bytes()
    assert [(g.stage, g.done, g.total) for g in got] == [("weights", 0, 1), ("weights", p.stat().st_size,
                                                                             p.stat().st_size)]
    assert sorted(x.name for x in wdir.iterdir()) == ["dinov2_vits14_pretrain.pth"]
    with pytest.raises(WeightsError, match=r"dinov2_vitb14_pretrain.pth not found \(download failed: URLError\)"):
        wt.resolve("dinov2_vitb14_pretrain.pth", (tmp_path / "not-served.pth").as_uri())


def test_the_hub_cache_is_torch_hubs_own_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DTVFX_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # what torch.hub.set_dir does
    assert wt.hub_checkpoints_dir() == tmp_path / "hub" / "checkpoints"
    assert wt.search_dirs() == [tmp_path / "hub" / "checkpoints"]


def test_wrong_layout_and_non_tensor_pickles(tmp_path):
    bad = tmp_path / "bad.pth"
    sd = DinoV2("vits14").state_dict()
    del sd["blocks.5.ls1.gamma"]
    torch.save(sd, bad)
    with pytest.raises(WeightsError, match="missing 1 keys"):
        build_dinov2("vits14", weights=bad)
    evil = tmp_path / "evil.pth"
    torch.save({"x": _Obj()}, evil)
    with pytest.raises(WeightsError, match="cannot read weights"):
        build_dinov2("vits14", weights=evil)


class _Obj:  # not allowed by torch.load(weights_only=True)
    pass
