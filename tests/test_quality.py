"""Quality on real recordings (../shared/data), through the real server and client."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_config, shared_folder
from speakerlink import Client
from speakerlink_server.main import start_server

from benchmarks.scoring import read_rttm, read_uem, score


def diarize_folder(server, folder: Path):
    clips = sorted((folder / "audio").glob("*.wav"))
    with Client(server.config.address) as client:
        result = client.diarize(clips, timeout=900)
    hypothesis = {Path(c.name).stem: [(s.start, s.end, s.speaker) for s in c.segments] for c in result.clips}
    return score(read_rttm(folder / "all.rttm"), hypothesis, read_uem(folder / "all.uem"))


@pytest.fixture(scope="module")
def quality_server(tmp_path_factory):
    """All 16 clips go in one request, so that linking sees them together."""
    running = start_server(make_config(tmp_path_factory.mktemp("quality"), max_clips=16))
    yield running
    running.stop(grace=1.0)


def test_libri_dev_linking(quality_server) -> None:
    scores = diarize_folder(quality_server, shared_folder("libri-dev-linking"))
    print("\n".join(["libri-dev-linking:", *scores.lines()]))
    assert scores.hyp_speakers == scores.ref_speakers == 32
    assert scores.linking_accuracy >= 0.95
    assert scores.global_der <= 0.05


def test_ami_meetings_do_not_regress(quality_server) -> None:
    """Real meetings are the hard case; this guards the current level (37.4% global DER)."""
    scores = diarize_folder(quality_server, shared_folder("ami-train"))
    print("\n".join(["ami-train:", *scores.lines()]))
    assert scores.global_der <= 0.42
    assert scores.mean_clip_der <= 0.36
