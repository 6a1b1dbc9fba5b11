"""TitaNet through NeMo's real loading path, on a small random TitaNet built and saved here.

Real TitaNet weights cannot be downloaded in CI, so the tests build a TitaNet-shaped model
from a config, save it as .nemo and load it back the way the server does: by path, and by
pretrained name from a Hugging Face cache laid out on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("nemo.collections.asr", reason="nemo-toolkit is not installed (pip install '.[titanet]')")

from conftest import ROOT, make_config  # noqa: E402
from speakerlink import Client  # noqa: E402
from speakerlink_server.engines import titanet  # noqa: E402
from speakerlink_server.main import start_server  # noqa: E402

from benchmarks.titanet_models import SIZES, build_titanet  # noqa: E402

EMB = SIZES["tiny"]["emb"]


@pytest.fixture(scope="module")
def tiny_nemo(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    path = tmp_path_factory.mktemp("titanet") / "tiny_titanet.nemo"
    return path, build_titanet("tiny", path)


@pytest.fixture(scope="module")
def speech(samples) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """The meeting sample and items to embed: 1.5 s windows, a short one, and one of two spans."""
    wav, rate = sf.read(samples["meeting.wav"], dtype="float32")
    assert rate == 16000
    windows = [[(start, start + 24000)] for start in range(8000, 96000 - 24000, 12000)]
    return wav, [*windows, [(112000, 124800)], [(8000, 16000), (40000, 48000)]]


def test_loads_by_path_and_embeds(tiny_nemo, speech) -> None:
    path, original = tiny_nemo
    wav, windows = speech
    embedder = titanet.TitanetEmbedder(str(path), "cpu")
    assert embedder.dim == EMB and not embedder.mixed_precision
    vectors = embedder.embed(wav, windows)
    assert vectors.shape == (len(windows), EMB) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, embedder.embed(wav, windows)), "embeddings must repeat exactly"
    # The restored model is the saved one: same embedding as the model that wrote the file.
    [(start, end)] = windows[0]
    audio = torch.from_numpy(wav[start:end])[None]
    with torch.inference_mode():
        _, expected = original.forward(input_signal=audio, input_signal_length=torch.tensor([end - start]))
    expected = expected[0].numpy() / np.linalg.norm(expected[0].numpy())
    assert np.allclose(vectors[0], expected, atol=1e-5)
    assert embedder.embed(wav, []).shape == (0, EMB)
    # The batch size is a speed setting only: the same windows in batches of 3 embed the same.
    assert np.allclose(titanet.TitanetEmbedder(str(path), "cpu", batch=3).embed(wav, windows), vectors, atol=1e-5)


def test_pretrained_name_resolves_from_the_hugging_face_cache(tiny_nemo, tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(titanet.WeightsUnavailable, match="not in the Hugging Face cache .*models--nvidia--speakerv"):
        titanet.locate_weights(titanet.DEFAULT_MODEL)
    repo = tmp_path / "models--nvidia--speakerverification_en_titanet_large"
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    cached = snapshot / "speakerverification_en_titanet_large.nemo"
    cached.write_bytes(tiny_nemo[0].read_bytes())
    assert titanet.locate_weights(titanet.DEFAULT_MODEL) == cached
    assert titanet.TitanetEmbedder(titanet.DEFAULT_MODEL, "cpu").dim == EMB


def test_an_uncached_pretrained_name_is_passed_over_without_importing_nemo(tmp_path) -> None:
    """A server start must not wait on NeMo's import or a download only to fall back to CAM++."""
    code = (
        "import sys\n"
        "from speakerlink_server.engines import titanet\n"
        "try:\n    titanet.locate_weights(titanet.DEFAULT_MODEL)\n"
        "except titanet.WeightsUnavailable as exc:\n    print(exc)\n"
        "print('nemo imported:', 'nemo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=os.environ | {"HF_HOME": str(tmp_path)}, cwd=ROOT)
    assert "is not in the Hugging Face cache" in out.stdout and "huggingface-cli download" in out.stdout
    assert out.stdout.strip().endswith("nemo imported: False"), out.stdout + out.stderr


def test_server_prefers_titanet_and_requests_may_choose(tiny_nemo, samples, tmp_path) -> None:
    running = start_server(make_config(tmp_path, titanet_model=str(tiny_nemo[0]), titanet_batch=3))
    try:
        with Client(running.config.address) as client:
            engines = {e.name: e for e in client.info().engines}
            assert engines["titanet"].active and str(tiny_nemo[0]) in engines["titanet"].reason
            assert "batches of 3" in engines["titanet"].reason
            assert engines["campplus"].available and not engines["campplus"].active
            clips = [samples["meeting.wav"], samples["call.mp3"]]
            assert "titanet" in client.diarize(clips).summary.engines
            assert "campplus" in client.diarize(clips, engine="campplus").summary.engines
    finally:
        running.stop(grace=0.5)


def test_missing_weights_fall_back_to_campplus(tmp_path) -> None:
    missing = tmp_path / "absent.nemo"
    running = start_server(make_config(tmp_path, titanet_model=str(missing)))
    try:
        with Client(running.config.address) as client:
            engines = {e.name: e for e in client.info().engines}
        assert not engines["titanet"].available
        assert engines["titanet"].reason == f"no weights at {missing}; using campplus"
        assert engines["campplus"].active
    finally:
        running.stop(grace=0.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu(tiny_nemo, speech) -> None:
    wav, windows = speech
    on_cpu = titanet.TitanetEmbedder(str(tiny_nemo[0]), "cpu").embed(wav, windows)
    on_gpu = titanet.TitanetEmbedder(str(tiny_nemo[0]), "cuda").embed(wav, windows)
    assert np.min(np.sum(on_cpu * on_gpu, axis=1)) >= 0.999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_memory_stays_flat_over_100_jobs(tmp_path, speech) -> None:
    """After warm-up, a resident model must not grow GPU memory job after job."""
    path = tmp_path / "large.nemo"
    build_titanet("large", path)
    embedder = titanet.TitanetEmbedder(str(path), "cuda")
    wav, _ = speech
    rng = np.random.default_rng(0)

    def job() -> None:
        count = int(rng.integers(5, 200))
        starts = rng.integers(0, wav.size - 24000, count)
        embedder.embed(wav, [[(int(s), int(s) + 24000)] for s in starts] + [[(0, 12000)]])

    for _ in range(3):
        job()
    torch.cuda.synchronize()
    settled = torch.cuda.memory_allocated()
    peak = []
    for _ in range(100):
        job()
        peak.append(torch.cuda.memory_allocated())
    embedder.close()
    assert max(peak) <= settled + 1024 * 1024, f"grew from {settled} to {max(peak)} bytes"
