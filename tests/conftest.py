"""Shared fixtures: the project's own speech, and real servers on free loopback ports that share
one load of the models."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

from postgres import Cluster, throwaway_cluster  # noqa: E402
from speakerlink import Client  # noqa: E402
from speakerlink_server import main  # noqa: E402
from speakerlink_server.config import ServerConfig  # noqa: E402
from speakerlink_server.engines.registry import Engines, load_engines, load_transcriber  # noqa: E402
from speakerlink_server.main import RunningServer  # noqa: E402

# What load_engines reads from a configuration for its models; the transcriber is built for each
# configuration, since tests give it their own key, fake service and timings.
MODEL_SETTINGS = ("engine", "segmentation_model", "campplus_model", "titanet_model", "titanet_batch", "torch_threads")


def make_config(data_dir: Path, **overrides) -> ServerConfig:
    """A server on a free loopback port; TitaNet is off unless a test gives it weights."""
    base = ServerConfig(host="127.0.0.1", port=0, data_dir=data_dir, grace_seconds=2.0, titanet_model="")
    return replace(base, **overrides)


class SharedModels:
    """The segmenter and embedders, loaded at the first server that needs them and lent to every
    test server whose configuration loads the same models (loading and checksumming them takes
    seconds). A server with other model settings loads its own, as do tests of loading itself,
    which call speakerlink_server.main.start_server."""

    def __init__(self) -> None:
        self._defaults = make_config(Path())
        self._loaded: Engines | None = None

    def for_config(self, config: ServerConfig) -> Engines | None:
        """The shared models with this configuration's transcriber, or None where it loads others."""
        if any(getattr(config, name) != getattr(self._defaults, name) for name in MODEL_SETTINGS):
            return None
        if self._loaded is None:
            self._loaded = load_engines(self._defaults)
        transcriber, info = load_transcriber(config)
        infos = [info if i.kind == "transcriber" else i for i in self._loaded.infos]
        return replace(self._loaded, transcriber=transcriber, infos=infos)

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded.close()


SHARED_MODELS = SharedModels()


@pytest.fixture(scope="session", autouse=True)
def shared_models() -> Iterator[SharedModels]:
    """One load of the models for the whole run, closed at its end."""
    yield SHARED_MODELS
    SHARED_MODELS.close()


def start_server(config: ServerConfig) -> RunningServer:
    """The product's start_server, on the run's shared models where the configuration loads the same ones."""
    return main.start_server(config, SHARED_MODELS.for_config(config))


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo set: three clips with a shared cast, in wav, mp3 and flac, plus reference.rttm."""
    import sample_clips

    out = tmp_path_factory.mktemp("samples")
    paths = sample_clips.write_sample_set(out)
    return {p.name: p for p in paths} | {"reference.rttm": out / "reference.rttm"}


@pytest.fixture(scope="session")
def long_clip(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About two minutes of the sample conversation: a job that takes a few seconds."""
    wav, rate = sf.read(samples["meeting.wav"], dtype="float32")
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.tile(wav, 4), rate)
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(make_config(tmp_path_factory.mktemp("server-data"), max_file_bytes=8 * 1024 * 1024, max_clips=4))
    yield running
    running.stop(grace=1.0)


@pytest.fixture()
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.config.address, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster (tests/postgres.py) for the whole run."""
    with throwaway_cluster() as running:
        yield running


@pytest.fixture()
def postgres(cluster: Cluster) -> str:
    """A fresh database of the cluster for each test."""
    import psycopg

    name = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return cluster.dsn.rsplit("/", 1)[0] + f"/{name}"


def shared_folder(name: str) -> Path:
    folder = SHARED_DATA / name
    if not (folder / "all.rttm").is_file():
        pytest.skip(f"{folder} is absent: real-recording checks need ../shared/data beside the checkout")
    return folder


LINES = (
    "The morning train was late again, so I walked along the river instead.",
    "We should look at the budget before the meeting on Thursday afternoon.",
    "My sister keeps bees in the garden and sells the honey at the market.",
    "Please send me the report when you have finished the last chapter.",
)


def one_voice(folder: Path, voice: str, lines: tuple[str, ...] = LINES) -> Path:
    """A recording of one espeak-ng voice alone."""
    import sample_clips

    audio, _ = sample_clips.make_conversation([(voice, line) for line in lines])
    path = folder / f"{sample_clips.speaker_name(voice)}-{len(lines)}.wav"
    sf.write(path, audio, sample_clips.SAMPLE_RATE)
    return path


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Recordings of one voice alone, for the voice library: alice's, bob's (the sample cast),
    one too short to enroll, silence, and alice then bob."""
    import sample_clips

    folder = tmp_path_factory.mktemp("voices")
    alice, bob = sample_clips.VOICES[0], sample_clips.VOICES[1]
    return {
        "alice": one_voice(folder, alice),
        "bob": one_voice(folder, bob),
        "short": one_voice(folder, alice, ("Good morning.",)),
        "silence": _silence(folder / "silence.wav"),
        "both": _joined(folder / "both.wav", one_voice(folder, alice, LINES[:2]), one_voice(folder, bob, LINES[2:])),
    }


def excerpt(clip: Path, seconds: float, out: Path) -> Path:
    """The first `seconds` of a clip, as a wav file at `out`: for tests whose point needs no more audio."""
    audio, rate = sf.read(clip, dtype="float32")
    sf.write(out, audio[: int(seconds * rate)], rate)
    return out


def _silence(path: Path) -> Path:
    sf.write(path, np.random.default_rng(0).normal(0, 1e-4, 16000 * 8).astype(np.float32), 16000)
    return path


def _joined(path: Path, *parts: Path) -> Path:
    sf.write(path, np.concatenate([sf.read(p, dtype="float32")[0] for p in parts]), 16000)
    return path
