"""Load every engine once at server start and say which is active and why.

Adding an embedder means one module implementing engines.base.Embedder and one entry in
EMBEDDERS; `auto` takes the first one in EMBEDDERS that loads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors
from speakerlink_server.engines.base import Embedder, VoiceActivityDetector
from speakerlink_server.engines.ge2e import Ge2eEmbedder
from speakerlink_server.engines.silero import SileroVad

log = logging.getLogger(__name__)

# name -> (factory taking the device, why it is there)
EMBEDDERS: dict[str, tuple[Callable[[str], Embedder], str]] = {
    "ge2e": (Ge2eEmbedder, "Resemblyzer GE2E, weights from the resemblyzer package"),
}


@dataclass
class Engines:
    vad: VoiceActivityDetector
    embedders: dict[str, Embedder]
    active: str
    device: str
    infos: list[pb.EngineInfo] = field(default_factory=list)

    def embedder(self, requested: str) -> Embedder:
        """The embedder a request asked for ('' or 'auto': the server's active one)."""
        name = requested or "auto"
        if name == "auto":
            return self.embedders[self.active]
        if name not in self.embedders:
            raise errors.unknown_engine(name, sorted(self.embedders))
        return self.embedders[name]


def describe_device() -> str:
    if torch.cuda.is_available():
        return f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def load_engines(choice: str = "auto") -> Engines:
    """Load the VAD and the embedders; `choice` is 'auto' or an embedder name to force."""
    if choice != "auto" and choice not in EMBEDDERS:
        raise ValueError(f"unknown engine {choice!r}; known: auto, {', '.join(EMBEDDERS)}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vad = SileroVad()
    infos = [pb.EngineInfo(name=vad.name, kind="vad", available=True, active=True,
                           reason="Silero VAD, ONNX weights from the silero-vad package")]
    loaded: dict[str, Embedder] = {}
    reasons: dict[str, str] = {}
    for name, (factory, origin) in EMBEDDERS.items():
        if choice not in ("auto", name):
            reasons[name] = f"not loaded: engine forced to {choice}"
            continue
        try:
            loaded[name] = factory(device)
            reasons[name] = origin
        except Exception as exc:  # a missing model must not stop the server: report it in GetInfo
            log.warning("embedder %s did not load: %s", name, exc)
            reasons[name] = f"failed to load: {exc}"
    if not loaded:
        raise RuntimeError("no embedder could be loaded: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()))
    active = next(iter(loaded))
    for name in EMBEDDERS:
        why = reasons[name] + (f"; active ({choice})" if name == active else "")
        infos.append(pb.EngineInfo(name=name, kind="embedder", available=name in loaded, active=name == active, reason=why))
    return Engines(vad=vad, embedders=loaded, active=active, device=describe_device(), infos=infos)
