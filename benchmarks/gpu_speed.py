"""Whole-job seconds per hour of audio on a GPU, peak GPU memory, and fp16 agreement.

Runs the embedded default (segmentation-3.0 + CAM++) in-process on one hour of real speech
(../shared/data laid end to end, or a prepared `--audio` file of any format ffmpeg reads, or an
.npz of 16 kHz int16 samples, tiled to an hour), as one job of one file: decode (ffmpeg) -> segmentation -> CAM++ -> clustering ->
linking of the 10-minute chunks. Prints the time of each step (pipeline.hooks.TimingHook) and the whole job, as seconds
per hour of audio, with torch's peak allocated GPU memory. Where ffmpeg is missing (a bare
GPU box), the audio is handed over decoded and the figure says that decoding is left out.
Also prints how close fp16 stays to fp32 on real speech for both models and, on a GPU, what
replaying forward passes from CUDA graphs changes (time per CAM++ pass by batch, and outputs). `--groups 64:256,256:1024`
also times the job with other numbers of segmentation windows and CAM++ items per call to the
device (the engines' GROUP), to choose them.

    python benchmarks/gpu_speed.py [--seconds 3600] [--audio speech.opus] [--groups SEG:EMB,...]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "client")]
from speakerlink_server.audio_format import SAMPLE_RATE  # noqa: E402
from speakerlink_server.engines import weights  # noqa: E402
from speakerlink_server.engines.base import ClipPart, CountBounds  # noqa: E402
from speakerlink_server.engines.campplus import CamppEmbedder  # noqa: E402
from speakerlink_server.engines.models.fbank import kaldi_fbank  # noqa: E402
from speakerlink_server.engines.segmentation import Segmentation3  # noqa: E402
from speakerlink_server.engines.silero import SileroSpeech  # noqa: E402
from speakerlink_server.pipeline import clip, run  # noqa: E402
from speakerlink_server.pipeline.audio import decode  # noqa: E402
from speakerlink_server.pipeline.chunks import join_chunks  # noqa: E402
from speakerlink_server.pipeline.hooks import TimingHook  # noqa: E402


def real_speech(audio: str | None) -> np.ndarray:
    if audio and audio.endswith(".npz"):
        return np.load(audio)["samples"].astype(np.float32) / 32768
    if audio:
        return decode(Path(audio), 0, Path(audio).name)
    import soundfile as sf

    shared = ROOT.parent / "shared" / "data"
    files = sorted((shared / "libri-dev-linking" / "audio").glob("*.wav")) + sorted((shared / "ami-train" / "audio").glob("*.wav"))
    return np.concatenate([sf.read(f, dtype="float32")[0] for f in files])


def whole_job(path: Path, segmenter, detector, embedder) -> tuple[float, TimingHook]:
    timing = TimingHook()
    started = time.perf_counter()
    pipeline = run.DiarizationPipeline(segmenter, detector, embedder, chunk_seconds=600.0, max_clip_seconds=math.inf)
    pipeline.run([clip.ClipInput(0, path.name, path, 1.0)], pipeline.default_request(), timing)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, timing


def decoded_job(audio: np.ndarray, segmenter, detector, embedder) -> tuple[float, TimingHook]:
    """The same steps from samples already in memory, chunk by chunk as the server does."""
    timing = TimingHook()
    started = time.perf_counter()
    chunk = 600 * SAMPLE_RATE
    chunks = []
    params = embedder.default_parameters()
    parts = -(-audio.size // chunk)
    for first in range(0, audio.size, chunk):
        part = ClipPart(0, "hour", first // chunk, parts)
        chunks.append(clip.analyse_chunk(audio[first : first + chunk], first / SAMPLE_RATE, "hour", CountBounds(),
                                        segmenter, detector, embedder, timing, params, part))
    timing("link")
    joined = join_chunks(0, chunks, params.linking, embedder.calibration, embedder.space, CountBounds())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    timing("link", joined)
    return time.perf_counter() - started, timing


def fp16_agreement(audio: np.ndarray, segmenter, embedder) -> None:
    windows = torch.from_numpy(np.stack([audio[i * 160000 : (i + 1) * 160000] for i in range(32)]))[:, None]
    full = segmenter._infer(windows, False).exp().flatten(1)  # fp16 measured, though the engine keeps fp32
    half = segmenter._infer(windows, True).exp().flatten(1)
    cos = torch.nn.functional.cosine_similarity(full, half, dim=1)
    agree = (segmenter._infer(windows, False).argmax(-1) == segmenter._infer(windows, True).argmax(-1)).float().mean()
    print(f"segmentation fp16 vs fp32 on 32 real 10 s windows: min cosine {cos.min():.6f}, frame classes agree {agree:.4%}; "
          "the engine keeps fp32")
    with torch.inference_mode():
        feats = kaldi_fbank(torch.from_numpy(np.stack([audio[i * 24000 : (i + 1) * 24000] for i in range(256)])).to(embedder.device))
    feats = (feats - feats.mean(dim=1, keepdim=True)).cpu()
    cos = torch.nn.functional.cosine_similarity(embedder._infer(feats, False), embedder._infer(feats, True), dim=1)
    print(f"CAM++ fp16 vs fp32 on 256 real 1.5 s windows: min cosine {cos.min():.7f}, mean {cos.mean():.7f}; "
          f"engine uses {'fp16' if embedder.half else 'fp32'}")


def graph_costs(audio: np.ndarray, segmenter, embedder) -> None:
    """What replaying forward passes from CUDA graphs changes: time per CAM++ pass by batch, and the outputs."""
    if embedder.device != "cuda":
        return
    feats = kaldi_fbank(torch.from_numpy(np.stack([audio[i * 24000 : (i + 1) * 24000] for i in range(256)])).to("cuda"))
    feats = (feats - feats.mean(dim=1, keepdim=True)).cpu()
    graphed = torch.from_numpy(embedder._forward(feats.numpy()))
    cos = torch.nn.functional.cosine_similarity(graphed, embedder._infer(feats, embedder.half), dim=1)
    windows = np.stack([audio[i * 160000 : (i + 1) * 160000] for i in range(64)])[:, None]
    same = np.abs(segmenter._forward(windows) - segmenter._infer(torch.from_numpy(windows), False).numpy()).max()
    print(f"graphed against eager on real speech: CAM++ min cosine {cos.min():.7f}; segmentation max difference {same:.2g}")
    for rows in (1, 16, 256, 1024):
        batch = np.tile(feats.numpy(), (rows // 256 + 1, 1, 1))[:rows]
        costs = []
        for graphed in (False, True):
            for attempt in range(6):  # the first makes the graph or the cuDNN plans
                if attempt == 1:
                    torch.cuda.synchronize()
                    started = time.perf_counter()
                embedder._forward(batch) if graphed else embedder._infer(torch.from_numpy(batch), embedder.half)
            torch.cuda.synchronize()
            costs.append((time.perf_counter() - started) / 5 * 1000)
        print(f"CAM++ pass of {rows} windows of 1.5 s: eager {costs[0]:.1f} ms, from a CUDA graph {costs[1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--audio", help="real speech: an audio file, or an .npz with `samples`, 16 kHz mono int16")
    parser.add_argument("--groups", default="", help="SEG:EMB,... items per call to the device to time besides the engines' own")
    parser.add_argument("--profile", action="store_true", help="also profile one more job and print where its time went")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    speech = real_speech(args.audio)
    audio = np.tile(speech, int(np.ceil(args.seconds * SAMPLE_RATE / speech.size)))[: args.seconds * SAMPLE_RATE]
    started = time.perf_counter()
    segmenter = Segmentation3(weights.load_state(weights.SEGMENTATION, _configured("SEGMENTATION"))[0], device)
    embedder = CamppEmbedder(weights.load_state(weights.CAMPPLUS, _configured("CAMPPLUS"))[0], device)
    detector = SileroSpeech()
    print(f"device: {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'}; models loaded and warmed in "
          f"{time.perf_counter() - started:.1f} s; segmenter {segmenter.describe()}; CAM++ {embedder.describe()}")
    fp16_agreement(speech, segmenter, embedder)
    graph_costs(speech, segmenter, embedder)
    hours = args.seconds / 3600
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hour.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        if shutil.which("ffmpeg") and shutil.which("ffprobe"):
            job, what = (lambda: whole_job(path, segmenter, detector, embedder)), "whole job from a 16-bit WAV, decoding included"
        else:
            job, what = (lambda: decoded_job(audio, segmenter, detector, embedder)), "whole job from decoded samples (no ffmpeg here)"
        groups = [(segmenter._group, embedder._group)]
        groups += [tuple(int(n) for n in pair.split(":")) for pair in args.groups.split(",") if pair]
        for segmenter._group, embedder._group in groups:
            decoded_job(speech[: 60 * SAMPLE_RATE], segmenter, detector, embedder)  # warm-up: kernels, cudnn plans, allocator
            for attempt in range(2):
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                seconds, timing = job()
                peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
                stages = ", ".join(f"{k} {v / hours:.2f}" for k, v in timing.seconds.items())
                print(f"groups {segmenter._group}:{embedder._group}, run {attempt + 1}: "
                      f"{what}: {seconds:.2f} s for {args.seconds} s of audio = {seconds / hours:.2f} s per hour "
                      f"(RTF {seconds / args.seconds:.5f}); per hour by step: {stages}; "
                      f"peak GPU memory allocated {peak:.0f} MiB", flush=True)
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(decoded_job, audio, segmenter, detector, embedder)  # from Python 3.12 it sees every thread
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def _configured(name: str) -> str:
    import os

    return os.environ.get(f"SPEAKERLINK_{name}_MODEL", "")


if __name__ == "__main__":
    main()
