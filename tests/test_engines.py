"""The embedded default's engines: weights found and checked, fp16 where it agrees, overlap found."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sample_clips
import soundfile as sf
import torch
from conftest import ROOT, SharedModels, make_config
from speakerlink_server.engines import campplus, titanet, weights
from speakerlink_server.engines.base import ClipPart, CountBounds, SpeechDetector, noop_hook
from speakerlink_server.engines.campplus import CamppEmbedder
from speakerlink_server.engines.models.fbank import kaldi_fbank
from speakerlink_server.engines.segmentation import Segmentation3
from speakerlink_server.main import start_server
from speakerlink_server.params import ClusteringParams, LinkingParams, RecognitionParams
from speakerlink_server.pipeline.clip import analyse_chunk


@pytest.fixture(scope="module")
def engines(shared_models: SharedModels) -> tuple[Segmentation3, SpeechDetector, CamppEmbedder]:
    """The run's shared models: these tests run them directly, without a server."""
    loaded = shared_models.for_config(make_config(Path()))
    return loaded.segmenter, loaded.speech, loaded.embedders["campplus"]


def test_weights_with_a_wrong_sha256_are_refused(tmp_path) -> None:
    damaged = tmp_path / "segmentation.pt"
    data = bytearray(weights.locate(weights.SEGMENTATION).read_bytes())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsUnavailable, match=f"{damaged} has sha256 [0-9a-f]{{64}}, expected {weights.SEGMENTATION.sha256}"):
        weights.load_state(weights.SEGMENTATION, str(damaged))
    with pytest.raises(weights.WeightsUnavailable, match="--segmentation-model"):
        start_server(make_config(tmp_path / "data", segmentation_model=str(damaged)))
    served = subprocess.run(
        [sys.executable, "-m", "speakerlink_server", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--campplus-model", str(damaged), "--titanet-model", ""],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert served.returncode == 2
    assert "cannot start" in served.stderr and "has sha256" in served.stderr and "--campplus-model" in served.stderr


def test_missing_weights_name_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPEAKERLINK_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(weights.WeightsUnavailable, match=r"speakerlink fetch-models.*--campplus-model PATH"):
        weights.locate(weights.CAMPPLUS)
    with pytest.raises(weights.WeightsUnavailable, match="no file at"):
        weights.locate(weights.CAMPPLUS, str(tmp_path / "absent.pt"))


def two_voices(overlap_s: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Voice A, then voice B starting `overlap_s` before A ends; and the mixed stretch."""
    a = sample_clips.synthesize(" ".join(sample_clips.SENTENCES[0:6:2]), sample_clips.VOICES[0])
    b = sample_clips.synthesize(" ".join(sample_clips.SENTENCES[1:7:2]), sample_clips.VOICES[1])
    a, b = (x[np.flatnonzero(np.abs(x) > 0.01)[0] : np.flatnonzero(np.abs(x) > 0.01)[-1]] for x in (a, b))
    a, b = a / np.abs(a).max() * 0.5, b / np.abs(b).max() * 0.5
    start = a.size - int(overlap_s * 16000)
    mix = np.zeros(start + b.size + 8000, dtype=np.float32)
    mix[: a.size] += a
    mix[start : start + b.size] += b
    return mix, (start / 16000, a.size / 16000)


def test_a_mixed_stretch_of_two_voices_comes_out_with_both(engines) -> None:
    mix, (first, last) = two_voices(overlap_s=2.5)
    chunk = analyse_chunk(mix, 0.0, "mix", CountBounds(), *engines, noop_hook, engines[2].default_parameters(),
                          ClipPart(0, "mix"))
    assert len(chunk.speakers) == 2
    middle = (first + last) / 2
    speaking = {t.speaker for t in chunk.turns if t.start <= middle - 0.5 and t.end >= middle + 0.5}
    assert speaking == {0, 1}, chunk.turns


def test_engines_let_a_cancel_in_about_every_second_of_work(engines) -> None:
    """The job's hook checks for a cancel: the engines call it after every small group of work,
    not once per 10-minute chunk (a cancel took up to 4.7 s in embedding, 2.5 s in segmentation)."""
    segmenter, _, embedder = engines
    wav = np.random.default_rng(0).standard_normal(16000 * 200).astype(np.float32) * 0.1
    calls: list[tuple[int, int]] = []

    def hook(step: str, artifact: object = None, *, completed: int | None = None, total: int | None = None,
             **_: object) -> None:
        assert completed is not None and total is not None and artifact is None
        calls.append((completed, total))

    segmenter.segment(wav, 5.0, hook)
    assert len(calls) >= 39 // 16 + 1 and all(b - a <= 16 for (a, _), (b, _) in zip(calls, calls[1:], strict=False))
    calls.clear()
    windows = [[(s, s + 24000)] for s in range(0, wav.size - 24000, 12000)]  # 1.5 s every 0.75 s
    embedder.embed(wav, windows, hook)
    blocks = [c for c in calls if c == (0, 0)]
    assert len(blocks) == 4  # one per 60 s block of the filterbank
    progress = [done for done, total in calls if total]
    assert all(b - a <= 32 for a, b in zip(progress, progress[1:], strict=False)) and progress[-1] == len(windows)


@pytest.fixture()
def on_cuda(samples) -> Iterator[tuple[Segmentation3, CamppEmbedder, np.ndarray, torch.Tensor]]:
    """Both engines on the GPU, with 10 s windows every second of speech and mean-normalised
    filterbanks of 1.5 s windows every 0.5 s."""
    wav, _ = sf.read(samples["meeting.wav"], dtype="float32")
    segmenter = Segmentation3(weights.load_state(weights.SEGMENTATION)[0], "cuda")
    embedder = CamppEmbedder(weights.load_state(weights.CAMPPLUS)[0], "cuda")
    windows = np.stack([wav[i : i + 160000] for i in range(0, wav.size - 160000, 16000)])[:, None]
    feats = kaldi_fbank(torch.from_numpy(np.stack([wav[i : i + 24000] for i in range(0, wav.size - 24000, 8000)])))
    try:
        yield segmenter, embedder, windows, feats - feats.mean(dim=1, keepdim=True)
    finally:
        segmenter.close()
        embedder.close()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_passes_replayed_from_cuda_graphs_give_what_eager_ones_give(on_cuda) -> None:
    segmenter, embedder, windows, feats = on_cuda
    eager = segmenter._infer(torch.from_numpy(windows), False).numpy()
    for _ in range(2):  # captured, then replayed
        assert np.allclose(segmenter._forward(windows), eager, atol=1e-4)
    eager = embedder._infer(feats, embedder.half)
    for _ in range(2):
        graphed = torch.from_numpy(embedder._forward(feats.numpy()))
        assert torch.nn.functional.cosine_similarity(graphed, eager).min() >= 0.99999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_is_used_where_it_stays_within_cosine_0_9999_of_fp32(on_cuda) -> None:
    segmenter, embedder, windows, feats = on_cuda
    # The segmenter stays in fp32: its fp16 frame classes agree, but not to cosine 0.9999.
    full, half = segmenter._infer(torch.from_numpy(windows), False), segmenter._infer(torch.from_numpy(windows), True)
    assert (full.argmax(-1) == half.argmax(-1)).float().mean() >= 0.999
    cosine = torch.nn.functional.cosine_similarity(embedder._infer(feats, False), embedder._infer(feats, True))
    assert cosine.min() >= 0.9999
    assert embedder.half and "fp32" in segmenter.describe()


def test_each_embedder_states_every_parameter_on_its_cosine_scale() -> None:
    """A cosine means different things on CAM++'s scale and TitaNet's: no such parameter has a
    default one engine could inherit from another's measurements."""
    cosine_fields = {"ClusteringParams": {"threshold", "fold_similarity", "group_fold_similarity"},
                     "LinkingParams": {"threshold", "small_job_margin", "sure_margin", "raw_margin", "phone_margin"},
                     "RecognitionParams": {"threshold"}}
    for params in (ClusteringParams, LinkingParams, RecognitionParams):
        required = {f.name for f in dataclasses.fields(params) if f.default is dataclasses.MISSING}
        assert required == cosine_fields[params.__name__]
    for params, thresholds in ((campplus.PARAMETERS, (0.35, 0.52, 0.6)), (titanet.PARAMETERS, (0.7, 0.7, 0.75))):
        assert (params.clustering.threshold, params.linking.threshold, params.recognition.threshold) == thresholds
