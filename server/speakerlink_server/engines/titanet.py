"""TitaNet speaker embeddings with NVIDIA NeMo, loaded once and kept resident on the device.

Weights come from a local .nemo file or a pretrained name (default
nvidia/speakerverification_en_titanet_large) found in the Hugging Face cache; nothing is
downloaded at start. Where they cannot be had, loading raises WeightsUnavailable with the
place it looked, before NeMo is imported, and the server goes on with CAM++.

Values taken from NVIDIA, since TitaNet's cosine scale is not CAM++'s:
- the link threshold 0.7: the default `threshold` of EncDecSpeakerLabelModel.verify_speakers,
  the cosine above which NeMo calls two utterances the same speaker.
- the clustering threshold 0.7: the same decision inside a clip, between cluster centroids.
- the margins over them (folding, linking, recognition): CAM++'s, chosen, not measured.
- calibration: a logistic through 0.5 at that cosine, rising from 0.18 to 0.82 over +-0.05.
  Not fitted: TitaNet's weights cannot be had here to measure its cosines on real speech.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import Calibration, Hook, Spans, noop_hook, unit_rows
from speakerlink_server.engines.batching import MicroBatcher
from speakerlink_server.engines.precision import choose_half
from speakerlink_server.engines.weights import WeightsUnavailable
from speakerlink_server.params import ClusteringParams, LinkingParams, PipelineParams, RecognitionParams, SpreadParams

log = logging.getLogger(__name__)

DEFAULT_MODEL = "nvidia/speakerverification_en_titanet_large"
# Mixed precision is used only where it keeps every warm-up embedding this close to fp32.
MIN_MIXED_PRECISION_COSINE = 0.999
# Default items per forward pass (--titanet-batch overrides): CPU throughput peaks at small
# batches (measured 8-16, benchmarks/titanet_speed.py); 256 is a guess for CUDA until measured.
BATCH = {"cuda": 256, "cpu": 8}
GROUP_ROWS = 256  # items one call hands to the batcher at a time: ~100 MB of 10 s audio
BUCKET_SAMPLES = SAMPLE_RATE // 2  # items are padded by repetition to a multiple of 0.5 s


def locate_weights(model: str) -> Path:
    """A local .nemo file, or the cached file of a pretrained name."""
    if importlib.util.find_spec("nemo") is None:
        raise WeightsUnavailable("nemo-toolkit is not installed (pip install 'speakerlink[titanet]')")
    path = Path(model).expanduser()
    if model.endswith(".nemo") or path.exists():
        if not path.is_file():
            raise WeightsUnavailable(f"no weights at {path}")
        return path
    from huggingface_hub import constants, try_to_load_from_cache

    filename = f"{model.rsplit('/', 1)[-1]}.nemo"
    cached = try_to_load_from_cache(model, filename, cache_dir=constants.HF_HUB_CACHE)
    if isinstance(cached, str):
        return Path(cached)
    # Never downloaded at start: an offline host would wait on the network and on importing
    # NeMo (25-31 s measured) only to fall back to CAM++.
    raise WeightsUnavailable(f"{model} is not in the Hugging Face cache ({hub_cache_dir(model)}); fetch it once with "
                             f"`huggingface-cli download {model}`, or give --titanet-model PATH.nemo")


def hub_cache_dir(model: str) -> Path:
    """Where the Hugging Face cache keeps a pretrained model's files."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{model.replace('/', '--')}"


PARAMETERS = PipelineParams(
    # group_fold_similarity: not measured for TitaNet, so small clusters fold as single windows do.
    clustering=ClusteringParams(threshold=0.7, fold_similarity=0.1, group_fold_similarity=0.1),
    # raw_margin: without a score space, the raw cosine is the score already. phone_margin: with
    # no narrowband compensation measured, no phone prints are taken (pipeline.matched_band).
    linking=LinkingParams(threshold=0.7, small_job_margin=0.06, sure_margin=0.14, raw_margin=0.0, phone_margin=0.0),
    recognition=RecognitionParams(threshold=0.75),
    spread=SpreadParams(reference=0.0, slope=0.0, lowest=0.7),  # not measured for TitaNet: the bar stays
)


class TitanetEmbedder:
    name = "titanet"
    calibration = Calibration(slope=30.0, offset=-21.0)
    narrowband = None  # not measured: no TitaNet weights to measure with
    space = None  # likewise: raw cosines

    def default_parameters(self) -> PipelineParams:
        return PARAMETERS

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", batch: int = 0) -> None:
        source = locate_weights(model)
        from nemo.collections.asr.models import EncDecSpeakerLabelModel
        from nemo.utils import logging as nemo_logging

        nemo_logging.setLevel(logging.ERROR)  # NeMo logs every layer of a restore at INFO
        try:
            loaded = EncDecSpeakerLabelModel.restore_from(str(source), map_location=torch.device(device))
        except Exception as exc:  # NeMo raises many kinds (format, config)
            raise WeightsUnavailable(f"no usable weights at {source}: {type(exc).__name__}: {exc}") from exc
        self.source = str(source)
        self.device = device
        self._model = loaded.to(device).eval()
        self.dim, self.mixed_precision = self._warm_up()
        self.batch = batch or BATCH["cuda" if device.startswith("cuda") else "cpu"]
        self._batcher = MicroBatcher(self._forward, self.batch, self.name)

    def close(self) -> None:
        self._batcher.close()

    def describe(self) -> str:
        precision = "fp16 autocast" if self.mixed_precision else "fp32"
        return f"NeMo TitaNet from {self.source}, {self.dim}-dim, on {self.device}, {precision}, batches of {self.batch}"

    def _warm_up(self) -> tuple[int, bool]:
        """Run the model once (allocations, kernels) and decide on mixed precision by measurement."""
        generator = torch.Generator().manual_seed(0)
        probe = 0.1 * torch.randn(4, int(1.5 * SAMPLE_RATE), generator=generator)
        dim = self._infer(probe, mixed=False).shape[1]
        return dim, self.device.startswith("cuda") and choose_half(self._infer, probe, self.name, MIN_MIXED_PRECISION_COSINE)

    def _forward(self, audio: np.ndarray) -> np.ndarray:
        return self._infer(torch.from_numpy(audio), self.mixed_precision).numpy()

    def _infer(self, audio: torch.Tensor, mixed: bool) -> torch.Tensor:
        audio = audio.to(self.device)
        lengths = torch.full((audio.shape[0],), audio.shape[1], dtype=torch.long, device=self.device)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.float16, enabled=mixed):
            _, embeddings = self._model.forward(input_signal=audio, input_signal_length=lengths)
        return embeddings.float().cpu()

    def embed(self, wav: np.ndarray, items: list[Spans], hook: Hook = noop_hook, step: str = "embed") -> np.ndarray:
        pieces = [np.concatenate([wav[a:b] for a, b in spans]) if spans else wav[:0] for spans in items]
        return unit_rows(self._batcher.run_ragged(pieces, BUCKET_SAMPLES, GROUP_ROWS, self.dim, hook, step))
