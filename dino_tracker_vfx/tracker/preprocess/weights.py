"""Find, fetch and verify model weight files (DINOv2 backbones, torchvision RAFT).

Official file names: ``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth`` and torchvision's
``raft_small_C_T_V2-01064c6d.pth`` / ``raft_large_C_T_SKHT_V2-ff5fadd5.pth``.

Resolution order (:func:`resolve`): an explicit path > ``$DTVFX_WEIGHTS/<file>`` > the torch hub cache
(``torch.hub.get_dir()/checkpoints/<file>``: ``$TORCH_HOME/hub`` or ``~/.cache/torch/hub``) > a download
from the official URL into the first of those folders (skipped when ``$DTVFX_OFFLINE`` is set or the
network is unreachable) by ``torch.hub.download_url_to_file`` (a temp file beside the target, moved into
place only complete and with the expected hash).

Integrity: files with a known sha256 (table below, or the 8-hex prefix torchvision puts in its file
names) are checked against it (a download while it arrives); other files get a ``<file>.sha256`` sidecar
on first use and are checked against that afterwards. Loading uses ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import urllib.error
from pathlib import Path

from ...errors import WeightsError
from ...progress import Progress, ProgressFn

DINOV2_ARCHS = ("vits14", "vitb14", "vitl14", "vitg14")
RAFT_FILES = {"raft_small": "raft_small_C_T_V2-01064c6d.pth", "raft_large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth"}
RAFT_URL = "https://download.pytorch.org/models/{file}"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_{arch}/{file}"

# sha256 of official files as published by other projects that pin them (public code, see docs).
KNOWN_SHA256 = {
    "dinov2_vits14_pretrain.pth": "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9",
    "dinov2_vitb14_pretrain.pth": "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",
    "dinov2_vitl14_pretrain.pth": "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
    "dinov2_vitg14_pretrain.pth": "baf8467e50af277596bbbafa06887c177ee899ab46033649c383577d7e9309d3",
    "raft_large_C_T_SKHT_V2-ff5fadd5.pth": "ff5fadd56d26b40647388883af1547351ea17868b765c05b27231e72dd16a322",
}
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.pth$")


def dinov2_filename(arch: str = "vitl14", registers: bool = False) -> str:
    if arch not in DINOV2_ARCHS:
        raise WeightsError(f"unknown DINOv2 model {arch!r}; one of {', '.join(DINOV2_ARCHS)}", where="backbone")
    return f"dinov2_{arch}{'_reg4' if registers else ''}_pretrain.pth"


def dinov2_url(arch: str = "vitl14", registers: bool = False) -> str:
    return DINOV2_URL.format(arch=arch, file=dinov2_filename(arch, registers))


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint folder (``torch.hub.get_dir()``: ``$TORCH_HOME/hub``, ``~/.cache/torch/hub``
    or what ``torch.hub.set_dir`` chose), where torchvision and torch.hub keep their weights too."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs() -> list[Path]:
    """Folders searched for a weights file, in order."""
    dirs = []
    if os.environ.get("DTVFX_WEIGHTS"):
        dirs.append(Path(os.environ["DTVFX_WEIGHTS"]).expanduser())
    dirs.append(hub_checkpoints_dir())
    return dirs


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def expected_sha256(filename: str) -> str | None:
    """Full hash if known, else the hex prefix torchvision file names carry, else None."""
    if filename in KNOWN_SHA256:
        return KNOWN_SHA256[filename]
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def verify(path: Path, filename: str | None = None) -> str:
    """Check ``path`` against the known hash of ``filename`` (default: its own name) or its sidecar.

    Returns the sha256. Raises WeightsError on a mismatch. Writes the sidecar when there is none.
    """
    path = Path(path)
    filename = filename or path.name
    digest = sha256_file(path)
    sidecar = path.with_name(path.name + ".sha256")
    expected = expected_sha256(filename)
    source = "the official file"
    if expected is None and sidecar.is_file():
        expected = sidecar.read_text().split()[0].strip().lower() if sidecar.read_text().strip() else None
        source = f"its record {sidecar.name}"
    if expected is not None and not digest.startswith(expected):
        raise WeightsError(f"sha256 {digest[:12]}... does not match {source} ({expected[:12]}...); the file is "
                           "corrupt or not the expected model - delete it and fetch it again", where=str(path))
    if not sidecar.exists():
        try:
            sidecar.write_text(f"{digest}  {path.name}\n")
        except OSError:
            pass  # read-only folder: nothing to record
    return digest


def _missing(filename: str, url: str | None, why: str) -> WeightsError:
    where = ", ".join(str(d) for d in search_dirs())
    fetch = f" (download: {url})" if url else ""
    return WeightsError(f"{filename} not found ({why}); put it in $DTVFX_WEIGHTS or {where}{fetch}, "
                        "pass its path, or use `backbone: none` for the weight-free mode", where="weights")


def download(url: str, dest: Path, progress: ProgressFn | None = None, timeout: float = 30.0,
             hash_prefix: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with ``torch.hub.download_url_to_file``: written beside ``dest`` and
    moved into place only complete, with its sha256 starting with ``hash_prefix`` when given (else
    :class:`WeightsError`; the partial file is removed). Stage ``weights`` (bytes) is reported to ``progress``
    when the download starts and ends; torch's byte bar is drawn on stderr when it is a terminal. ``timeout``:
    seconds a connection or read may stall."""
    import torch.hub

    dest.parent.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress(Progress("weights", 0, 1, message=dest.name))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torch.hub's urlopen takes no timeout of its own
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix,
                                       progress=hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise
        raise WeightsError(f"the download from {url} does not match the official file's sha256 "
                           f"({hash_prefix[:12]}...); not kept", where=str(dest)) from None
    finally:
        socket.setdefaulttimeout(old)
    size = dest.stat().st_size
    if progress is not None:
        progress(Progress("weights", size, size, message=dest.name))
    return dest


def resolve(filename: str, url: str | None = None, explicit: str | os.PathLike | None = None,
            allow_download: bool | None = None, progress: ProgressFn | None = None) -> Path:
    """Locate (or fetch) a weights file and verify it; see the module docstring for the order."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if p.is_dir():
            p = p / filename
        if not p.is_file():
            raise WeightsError("weights file does not exist", where=str(p))
        verify(p, filename if p.name == filename else p.name)
        return p
    for d in search_dirs():
        p = d / filename
        if p.is_file():
            verify(p, filename)
            return p
    if allow_download is None:
        allow_download = not os.environ.get("DTVFX_OFFLINE")
    if not allow_download or url is None:
        raise _missing(filename, url, "offline" if url else "no download address")
    dest = search_dirs()[0] / filename
    expected = expected_sha256(filename)
    try:
        download(url, dest, progress, hash_prefix=expected)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise _missing(filename, url, f"download failed: {type(exc).__name__}") from None
    if expected is None:
        verify(dest, filename)  # no known hash: record the sidecar the next use checks against
    return dest


def load_state_dict(path: Path) -> dict:
    """``torch.load(weights_only=True)`` on CPU; a plain ``{name: tensor}`` dict (unwraps 'model'/'state_dict')."""
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused / truncated file
        raise WeightsError(f"cannot read weights ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                           where=str(path)) from None
    for key in ("model", "state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsError("not a state dict", where=str(path))
    return sd


def load_into(model, sd: dict, path, assign: bool = False) -> None:
    """Strict ``load_state_dict`` with a one-line WeightsError naming missing/unexpected keys
    (``assign=True`` for a model built on the meta device)."""
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]})")
        if bad:
            parts.append(f"wrong shape for {bad[0]}: {tuple(sd[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}")
        raise WeightsError("layout does not fit the model: " + "; ".join(parts), where=str(path))
    model.load_state_dict(sd, strict=True, assign=assign)


def load_raft(method: str, weights=None, progress: ProgressFn | None = None):
    """torchvision RAFT (``raft_small`` / ``raft_large``) in eval mode with resolved, verified weights."""
    from torchvision.models import optical_flow as of

    if method not in RAFT_FILES:
        raise WeightsError(f"unknown RAFT model {method!r}; one of {', '.join(RAFT_FILES)}", where="flow.method")
    file = RAFT_FILES[method]
    path = resolve(file, RAFT_URL.format(file=file), explicit=weights, progress=progress)
    model = getattr(of, method)(weights=None, progress=False)
    load_into(model, load_state_dict(path), path)
    return model.eval()


def resolve_dinov2(arch: str = "vitl14", registers: bool = False, weights=None,
                   progress: ProgressFn | None = None) -> Path:
    """Path of the verified official DINOv2 checkpoint for ``arch`` (see :func:`resolve`)."""
    file = dinov2_filename(arch, registers)
    return resolve(file, dinov2_url(arch, registers), explicit=weights, progress=progress)


__all__ = ["resolve", "resolve_dinov2", "load_raft", "load_state_dict", "load_into", "verify", "sha256_file",
           "dinov2_filename", "dinov2_url", "search_dirs", "hub_checkpoints_dir", "RAFT_FILES", "KNOWN_SHA256"]
