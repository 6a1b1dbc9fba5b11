"""Speaker embeddings with 3D-Speaker's CAM++, loaded once and kept resident on the device.

CAM++ reads 80-bin Kaldi log-fbank frames (25 ms every 10 ms), mean-normalised over the
stretch it embeds, and gives a 192-dim vector. The filterbank of a whole clip is computed once
on the device (engines/models/fbank.py); each item to embed is the frames whose centres lie in
its spans, joined. So a local speaker's voice is embedded from exactly the frames where they
speak alone, without the seams of cutting and gluing audio, and overlapping windows share
their filterbank.

Items of different lengths are batched by rounding each up to a multiple of BUCKET_FRAMES and
repeating its own frames to fill the rest (MicroBatcher.run_ragged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speakerlink_server.engines.base import Calibration, ChannelCompensation, Hook, ScoreSpace, Spans, noop_hook, unit_rows
from speakerlink_server.engines.batching import MicroBatcher
from speakerlink_server.engines.graphs import device_forward
from speakerlink_server.engines.models.campplus import CamPlusPlus
from speakerlink_server.engines.models.fbank import FRAME_LENGTH as FRAME
from speakerlink_server.engines.models.fbank import FRAME_SHIFT as SHIFT
from speakerlink_server.engines.models.fbank import kaldi_fbank
from speakerlink_server.engines.precision import choose_half, voiced_probe
from speakerlink_server.params import ClusteringParams, LinkingParams, PipelineParams, RecognitionParams, SpreadParams

BLOCK_FRAMES = 6000  # 60 s of frames per filterbank pass
BUCKET_FRAMES = 50  # 0.5 s: items are padded by repetition to a multiple of this
# Items per forward pass. On a CPU, 573 windows of 1.5 s took 15.2 / 10.6 / 9.9 s in batches of
# 4 / 8 / 16, while the dense blocks' activations held 110 / ~220 / 430 MB; 8 is the balance.
# A GPU takes thousands of items in one pass.
BATCH = {"cuda": 1024, "cpu": 8}
# Items one call hands to the batcher at a time; progress and cancellation are checked between
# groups, so on a CPU a group is about a second of work.
GROUP = {"cuda": 256, "cpu": 32}
# What a narrowband channel does to these weights' embeddings, measured on LibriSpeech readers
# apart from every dev set by benchmarks/narrowband_compensation.py, which writes the file.
NARROWBAND_FILE = Path(__file__).with_name("campplus_narrowband.npz")
# Where these weights' voiceprints are compared across recordings, measured on readers apart
# from every dev set heard through every condition class by benchmarks/score_space.py.
SPACE_FILE = Path(__file__).with_name("campplus_space.npz")
# Calibrated on ../shared/data (benchmarks/QUALITY.md).
PARAMETERS = PipelineParams(
    clustering=ClusteringParams(
        # The average cosine between two groups of 1.5 s windows above which they are one
        # speaker: libri-dev-linking keeps every speaker from 0.30 to 0.45; AMI is best low in that range.
        threshold=0.35,
        # Against folding every small cluster: 0.1 gives ami-train 21.7 % against 22.1 % per
        # clip; 0.2-0.3 give 20.4 %, but one of the open set's 4-reader clips then comes out
        # with 5. libri-dev-linking is unchanged by all of them.
        fold_similarity=0.1,
        # Two windows that cluster together and sit under 0.34 to every larger cluster are most
        # often a person with 2-4 s of speech (a room or a codec spreads their windows): folding
        # them merged readers in far and near rooms and through phone lines and AMI's trn04, while
        # those folded right sat at 0.36 or more. 0.30 leaves a merge each in the far room and
        # linking/; 0.38 splits a one-time voice of open/ (benchmarks/QUALITY.md).
        group_fold_similarity=0.34,
    ),
    linking=LinkingParams(
        # The centroid cosine floor for a cross-clip link, in the score space (SPACE_FILE). On
        # the dev sets of benchmarks/condition_sets.py and ../shared/data, 0.52 links the most
        # same-person pairs with no false merge in any folder; at 0.51 the open set merges two
        # one-time voices (benchmarks/QUALITY.md).
        threshold=0.52,
        # A job too small for AS-norm links at 0.58: above every different-person pair of the
        # dev sets in the score space (0.55 at most, two narrowband voices).
        small_job_margin=0.06,
        # 0.66 with the default floor: in the score space, different readers of
        # libri-dev-linking reach 0.42 at most, the one-time voices of open/ 0.51.
        sure_margin=0.14,
        # Raw cosine 0.60, the floor before the score space, still links: the space brings a
        # voice heard through two conditions together but pulls some pairs heard through one
        # down by 0.1 (readers 27 and 412 of libri-dev-linking through one far room: 0.62 and
        # 0.60 raw, 0.50 and 0.49 in the space), and no folder of benchmarks/QUALITY.md merges
        # two people at either floor.
        raw_margin=0.08,
        # A pair across bands also links on its phone prints (pipeline.matched_band) at the floor
        # plus this, 0.55 by default: on the mixed-band dev sets (linking/, libri/mixed,
        # ami/mixed, open/ and libri-dev-linking with every other clip through GSM) same-person
        # pairs linked 64 -> 72 of 91 at 0.02-0.03, with no false merge; at 0 two one-time
        # voices of open/ merge (benchmarks/QUALITY.md).
        phone_margin=0.03,
    ),
    # libri-dev-linking through a far room: one voice's neighbouring windows agree at a median
    # cosine of 0.60-0.76 per clip, different people's windows stay at medians of 0.04-0.15
    # (clean: 0.76-0.85 and 0.02-0.16).
    # Below 0.70 the bar drops 1.5 times as much, to 0.25 at least: that far room 10.60 -> 8.47 %
    # per clip, the open set 2.67 -> 1.66 % with 18 of 18 counts, ami-train through a far room
    # 35.80 -> 31.81 %, and no folder of benchmarks/condition_sets.py worse. At 0.20 at least,
    # a far-room clip merged two readers and its links a third (benchmarks/QUALITY.md).
    spread=SpreadParams(reference=0.70, slope=1.5, lowest=0.25),
    # In the score space, the 40 readers of the dev set linking/ enrolled from clean audio and
    # looked up in its conversations through every condition class: 60 of 80 items named at
    # 0.60, none wrongly, and no voice of open/ or libri/mixed (not enrolled) named; at 0.55, 62
    # named, but one speaker of linking/ and one of libri/mixed take an enrolled reader's name;
    # at 0.65, 52 (benchmarks/QUALITY.md, with benchmarks/recognition.py's halves).
    # A phone line's speaker scores against an enrolled voice's line prints at 0.03 under their
    # cosine, as a pair across bands links (benchmarks/QUALITY.md).
    recognition=RecognitionParams(threshold=0.6, phone_margin=0.03),
)


class CamppEmbedder:
    name = "campplus"
    dim = 192
    # Logistic regression at even odds (each class weighted to half) on the scores linking gives
    # (pipeline.linking.scores) the local speakers the pipeline finds: 97 same-person pairs of
    # different clips (mean 0.624; libri-dev-linking, ami-train and the cross-condition dev sets
    # linking/, libri/mixed and ami/mixed) and 7,188 different-person pairs (those and open/:
    # mean 0.035). P = 0.5 at 0.269, 0.949 at 0.4, 0.994 at 0.5; of the pairs at 0.4-0.5, 11
    # were one person and 22 two.
    calibration = Calibration(slope=22.2, offset=-6.0)
    narrowband = ChannelCompensation.load(NARROWBAND_FILE)
    space = ScoreSpace.load(SPACE_FILE)

    def default_parameters(self) -> PipelineParams:
        return PARAMETERS

    def __init__(self, state: dict, device: str = "cpu", batch: int = 0) -> None:
        self.device = device
        self._model = CamPlusPlus()
        self._model.load_state_dict(state, strict=True)
        self._model.to(device).eval()
        probe = kaldi_fbank(voiced_probe(4, 3.0))
        probe = probe - probe.mean(dim=1, keepdim=True)
        cuda = device.startswith("cuda")
        self.half = cuda and choose_half(self._infer, probe, self.name)
        self._forward = device_forward(lambda x: self._run(x, self.half), device, self.name)
        self.batch, self._group = batch or BATCH["cuda" if cuda else "cpu"], GROUP["cuda" if cuda else "cpu"]
        self._batcher = MicroBatcher(self._forward, self.batch, self.name, steady=cuda)

    def describe(self) -> str:
        precision = "fp16" if self.half else "fp32"
        return f"{self.dim}-dim, on {self.device}, {precision}, batches of {self.batch}"

    def close(self) -> None:
        self._batcher.close()

    def _infer(self, features: torch.Tensor, half: bool) -> torch.Tensor:
        return self._run(features.to(self.device), half).cpu()

    def _run(self, features: torch.Tensor, half: bool) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(features.device.type, dtype=torch.float16, enabled=half):
            return self._model(features).float()

    def features(self, wav: np.ndarray, hook: Hook = noop_hook, step: str = "embed") -> np.ndarray:
        """Log-fbank frames of the whole clip, shape (frames, 80); frame j covers samples j*160 .. j*160+400.

        Computed a block of frames at a time: each frame depends on its own 400 samples only,
        so blocks give the same frames as one pass, and a 10-minute chunk's spectra never sit
        in memory at once (they would take some 400 MB). hook(step, completed=0, total=0) after each block lets a
        cancel stop it."""
        frames = max(0, (wav.size - FRAME) // SHIFT + 1)
        out = np.zeros((frames, 80), dtype=np.float32)
        with torch.inference_mode():
            for first in range(0, frames, BLOCK_FRAMES):
                last = min(frames, first + BLOCK_FRAMES)
                piece = torch.from_numpy(wav[first * SHIFT : (last - 1) * SHIFT + FRAME]).to(self.device)
                out[first:last] = kaldi_fbank(piece).cpu().numpy()
                hook(step, completed=0, total=0)
        return out

    def embed(self, wav: np.ndarray, items: list[Spans], hook: Hook = noop_hook, step: str = "embed") -> np.ndarray:
        feats = self.features(wav, hook, step)
        rows = [_frames(feats, spans) for spans in items]
        return unit_rows(self._batcher.run_ragged(rows, BUCKET_FRAMES, self._group, self.dim, hook, step))


def _frames(feats: np.ndarray, spans: Spans) -> np.ndarray:
    """The frames whose centres lie in the sample spans, joined and mean-normalised."""
    picked = []
    for start, end in spans:
        first = max(0, -(-(start - FRAME // 2) // SHIFT))
        last = min(len(feats), (end - FRAME // 2 - 1) // SHIFT + 1)
        if last > first:
            picked.append(feats[first:last])
    if not picked:
        return np.zeros((0, feats.shape[1]), dtype=np.float32)
    frames = np.concatenate(picked)
    return frames - frames.mean(axis=0, keepdims=True)
