"""The job's hook, run in-process on the run's shared models: timing and artifact hooks see every
step of a real job, and a hook that raises stops it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SharedModels, excerpt, make_config
from speakerlink_server.engines.base import ClipPart
from speakerlink_server.pipeline.clip import ClipInput
from speakerlink_server.pipeline.hooks import ArtifactHook, Hooks, TimingHook
from speakerlink_server.pipeline.run import DiarizationPipeline

STEPS = ["decode", "segment", "embed", "cluster", "turns", "link"]


class Recorder:
    """Every call a hook gets, as (step, clip index or None, kind)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, str]] = []

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        kind = "batch" if completed is not None else "end" if artifact is not None else "begin"
        self.calls.append((step, None if clip is None else clip.index, kind))


@pytest.fixture(scope="module")
def pipeline(shared_models: SharedModels) -> DiarizationPipeline:
    engines = shared_models.for_config(make_config(Path()))
    return DiarizationPipeline(engines.segmenter, engines.speech, engines.embedder("auto"), chunk_seconds=600.0, max_clip_seconds=600.0)


@pytest.fixture(scope="module")
def clips(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[ClipInput]:
    """Two short clips of the sample conversations, 12 s each."""
    folder = tmp_path_factory.mktemp("hooks")
    paths = [excerpt(samples[name], 12.0, folder / f"{Path(name).stem}.wav") for name in ("meeting.wav", "call.mp3")]
    return [ClipInput(i, path.name, path, 1.0) for i, path in enumerate(paths)]


@pytest.fixture(scope="module")
def followed(pipeline, clips, tmp_path_factory: pytest.TempPathFactory):
    """One job followed by a timing, an artifact and a recording hook at once."""
    timing, recorder, folder = TimingHook(), Recorder(), tmp_path_factory.mktemp("artifacts")
    diarized = pipeline.run(clips, pipeline.default_request(), Hooks(timing, ArtifactHook(folder), recorder))
    return timing, folder, recorder, diarized


def test_a_timing_hook_sees_every_step_take_time(followed) -> None:
    timing, _, recorder, _ = followed
    assert sorted(timing.seconds, key=STEPS.index) == STEPS
    assert all(seconds > 0 for seconds in timing.seconds.values()), timing.seconds
    for index in (0, 1):  # each clip's steps begin and end in the algorithm's order, batches within them
        steps = [(step, kind) for step, clip, kind in recorder.calls if clip == index and kind != "batch"]
        assert steps == [(step, kind) for step in STEPS[:-1] for kind in ("begin", "end")]
    assert [call for call in recorder.calls if call[1] is None] == [("link", None, "begin"), ("link", None, "end")]
    assert {step for step, _, kind in recorder.calls if kind == "batch"} >= {"segment", "embed"}


def test_an_artifact_hook_keeps_what_each_step_produced(followed, pipeline, clips) -> None:
    _, folder, _, diarized = followed
    dim = pipeline.embedder.dim
    local = 0
    for clip, result in zip(clips, diarized.result.clips, strict=True):
        saved = {step: np.load(folder / clip.name / f"{step}.npz") for step in ("segment", "embed", "cluster", "turns")}
        windows, frames, classes = saved["segment"]["log_probs"].shape
        assert saved["segment"]["starts"].shape == (windows,) and saved["segment"]["powerset"].shape[0] == classes
        embeddings = saved["embed"]["embed"]
        assert embeddings.ndim == 2 and embeddings.shape[1] == dim and len(embeddings) > 0
        assert saved["cluster"]["labels"].shape == (len(embeddings),)
        assert saved["cluster"]["centroids"].shape[1] == dim and len(saved["cluster"]["centroids"]) >= len(result.speakers)
        turns = saved["turns"]
        assert turns["start"].shape == turns["end"].shape == turns["speaker"].shape == (len(result.segments),)
        assert np.allclose(turns["start"], [s.start for s in result.segments], atol=1e-3)
        local += len(result.speakers)
    link = np.load(folder / "link.npz")
    assert link["clip_index"].tolist() == sorted(link["clip_index"].tolist()) and len(link["clip_index"]) == local
    assert set(link["speaker"].tolist()) == set(range(diarized.result.summary.unique_speakers))
    assert link["confidence"].shape == (local,) and sorted(p.name for p in folder.iterdir()) == sorted(
        [c.name for c in clips] + ["link.npz"])


class Cancelled(Exception):
    pass


def test_a_hook_that_raises_stops_the_job(pipeline, clips) -> None:
    """The first embedding batch of clip 0 raises: the job raises that, the clip goes no further,
    and nothing is linked."""
    recorder = Recorder()

    def cancel_in_embedding(step: str, artifact: object = None, *, completed: int | None = None,
                            total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        if step == "embed" and completed and clip is not None and clip.index == 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        pipeline.run(clips, pipeline.default_request(), Hooks(recorder, cancel_in_embedding))
    mine = [call for call in recorder.calls if call[1] == 0]
    assert mine[-1] == ("embed", 0, "batch") and ("embed", 0, "begin") in mine
    assert not any(step == "link" for step, _, _ in recorder.calls)
