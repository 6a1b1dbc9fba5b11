"""Shared fixtures: the project's own speech, and real servers on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

from speakerlink import Client  # noqa: E402
from speakerlink_server.config import ServerConfig  # noqa: E402
from speakerlink_server.main import RunningServer, start_server  # noqa: E402


def make_config(data_dir: Path, **overrides) -> ServerConfig:
    """A server on a free loopback port; TitaNet is off unless a test gives it weights."""
    base = ServerConfig(host="127.0.0.1", port=0, data_dir=data_dir, grace_seconds=2.0, titanet_model="")
    return replace(base, **overrides)


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo set: three clips with a shared cast, in wav, mp3 and flac, plus reference.rttm."""
    import sample_clips

    out = tmp_path_factory.mktemp("samples")
    paths = sample_clips.write_sample_set(out)
    return {p.name: p for p in paths} | {"reference.rttm": out / "reference.rttm"}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(make_config(tmp_path_factory.mktemp("server-data"), max_file_bytes=8 * 1024 * 1024, max_clips=4))
    yield running
    running.stop(grace=1.0)


@pytest.fixture()
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.config.address, timeout=30) as c:
        yield c


def shared_folder(name: str) -> Path:
    folder = SHARED_DATA / name
    if not (folder / "all.rttm").is_file():
        pytest.skip(f"{folder} is absent: real-recording checks need ../shared/data beside the checkout")
    return folder
