"""Load every engine once at server start and say which is active and why.

The segmenter (pyannote segmentation-3.0) is needed by every diarization: without its weights
the server does not start, and the error names the fix. The speech detector (Silero VAD) comes
with its package. Adding an embedder means one module
implementing engines.base.Embedder and one entry in EMBEDDERS; `auto` makes the first one in
EMBEDDERS that loads the active one. All that load stay resident, so a request may choose any
of them. The transcriber (AssemblyAI) is there when the configuration has an API key; requests
use it unless they turn transcription off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors
from speakerlink_server.config import ServerConfig
from speakerlink_server.engines import weights
from speakerlink_server.engines.assemblyai import AssemblyAiTranscriber
from speakerlink_server.engines.base import Embedder, Segmenter, SpeechDetector, Transcriber
from speakerlink_server.engines.campplus import CamppEmbedder
from speakerlink_server.engines.segmentation import Segmentation3
from speakerlink_server.engines.silero import SileroSpeech
from speakerlink_server.engines.titanet import TitanetEmbedder
from speakerlink_server.engines.weights import WeightsUnavailable

log = logging.getLogger(__name__)

def _titanet(config: ServerConfig, device: str) -> tuple[Embedder, str]:
    if not config.titanet_model:
        raise WeightsUnavailable("turned off (--titanet-model '')")
    embedder = TitanetEmbedder(config.titanet_model, device, config.titanet_batch)
    return embedder, embedder.describe()


def _campplus(config: ServerConfig, device: str) -> tuple[Embedder, str]:
    state, path = weights.load_state(weights.CAMPPLUS, config.campplus_model)
    embedder = CamppEmbedder(state, device)
    return embedder, f"3D-Speaker CAM++ from {path} (sha256 checked), {embedder.describe()}"


# In order of preference for `auto`: name -> factory returning the embedder and a description.
EMBEDDERS: dict[str, Callable[[ServerConfig, str], tuple[Embedder, str]]] = {
    "titanet": _titanet,
    "campplus": _campplus,
}


def _segmenter(config: ServerConfig, device: str) -> tuple[Segmenter, pb.EngineInfo]:
    checkpoint, path = weights.load_state(weights.SEGMENTATION, config.segmentation_model)
    segmenter = Segmentation3(checkpoint, device)
    reason = f"pyannote segmentation-3.0 from {path} (sha256 checked), {segmenter.describe()}"
    return segmenter, pb.EngineInfo(name=segmenter.name, kind="segmenter", available=True, active=True, reason=reason)


def _speech_detector() -> tuple[SpeechDetector, pb.EngineInfo]:
    speech = SileroSpeech()
    reason = f"{speech.describe()}: listens where the segmenter hears no one"
    return speech, pb.EngineInfo(name=speech.name, kind="speech detector", available=True, active=True, reason=reason)


@dataclass
class Engines:
    segmenter: Segmenter
    speech: SpeechDetector
    embedders: dict[str, Embedder]
    active: str
    device: str
    transcriber: Transcriber | None = None
    infos: list[pb.EngineInfo] = field(default_factory=list)

    def close(self) -> None:
        self.segmenter.close()
        self.speech.close()
        for embedder in self.embedders.values():
            embedder.close()

    def embedder(self, requested: str) -> Embedder:
        """The embedder a request asked for ('' or 'auto': the server's active one)."""
        name = requested or "auto"
        if name == "auto":
            return self.embedders[self.active]
        if name not in self.embedders:
            raise errors.unknown_engine(name, sorted(self.embedders))
        return self.embedders[name]

    def transcriber_for(self, options: pb.DiarizeOptions) -> Transcriber | None:
        """The transcriber a request gets: unset means on wherever one is configured."""
        wanted = options.transcribe if options.HasField("transcribe") else self.transcriber is not None
        if wanted and self.transcriber is None:
            raise errors.no_transcriber()
        return self.transcriber if wanted else None


def load_transcriber(config: ServerConfig) -> tuple[Transcriber | None, pb.EngineInfo]:
    info = pb.EngineInfo(name=AssemblyAiTranscriber.name, kind="transcriber")
    if not config.assemblyai_api_key:
        info.reason = "no API key (set ASSEMBLYAI_API_KEY or --assemblyai-api-key)"
        return None, info
    transcriber = AssemblyAiTranscriber(
        config.assemblyai_api_key, config.assemblyai_base_url, config.assemblyai_concurrency,
        config.assemblyai_poll_seconds, config.assemblyai_timeout_seconds,
        keep_transcripts=config.assemblyai_keep_transcripts,
    )
    info.available = info.active = True
    kept = "kept at AssemblyAI" if transcriber.keep_transcripts else "deleted at AssemblyAI once read"
    info.reason = (f"API key set; {transcriber.base_url}, {transcriber.concurrency} clips at once, transcripts {kept}; "
                   "used unless a request turns transcription off")
    return transcriber, info


def describe_device() -> str:
    if torch.cuda.is_available():
        return f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def load_engines(config: ServerConfig) -> Engines:
    """Load the segmenter and the embedders; config.engine is 'auto' or an embedder name to force.
    Raises WeightsUnavailable, naming the fix, when the segmenter or every embedder cannot load."""
    choice = config.engine
    if choice != "auto" and choice not in EMBEDDERS:
        raise ValueError(f"unknown engine {choice!r}; known: auto, {', '.join(EMBEDDERS)}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    segmenter, info = _segmenter(config, device)
    speech, speech_info = _speech_detector()
    infos = [info, speech_info]
    loaded: dict[str, Embedder] = {}
    reasons: dict[str, str] = {}
    for name, factory in EMBEDDERS.items():
        if choice not in ("auto", name):
            reasons[name] = f"not loaded: engine forced to {choice}"
            continue
        try:
            loaded[name], reasons[name] = factory(config, device)
        except WeightsUnavailable as exc:
            reasons[name] = str(exc)
        except Exception as exc:  # a broken model must not stop the server: report it in GetInfo
            log.exception("embedder %s did not load", name)
            reasons[name] = f"failed to load: {type(exc).__name__}: {exc}"
    if not loaded:
        segmenter.close()
        speech.close()
        raise WeightsUnavailable("no embedder could be loaded: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()))
    active = next(iter(loaded))
    for name in EMBEDDERS:
        if name == active:
            why = f"{reasons[name]}; active ({choice})"
        elif name not in loaded:
            why = f"{reasons[name]}; using {active}"
        else:
            why = reasons[name]
        log.info("embedder %s: %s", name, why)
        infos.append(pb.EngineInfo(name=name, kind="embedder", available=name in loaded, active=name == active, reason=why))
    transcriber, info = load_transcriber(config)
    log.info("transcriber %s: %s", info.name, info.reason)
    infos.append(info)
    return Engines(segmenter=segmenter, speech=speech, embedders=loaded, active=active, device=describe_device(), transcriber=transcriber, infos=infos)
