"""Keyword options of diarize() and live() turned into their messages, checked early."""

from __future__ import annotations

from speakerlink.v1 import speakerlink_pb2 as pb


def diarize_options(
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    link_threshold: float | None = None,
    engine: str = "",
    language: str = "",
    transcribe: bool | None = None,
    recognize: bool = True,
) -> pb.DiarizeOptions:
    """Build options; the server validates them again, this only catches mistakes before upload.

    transcribe=None leaves the choice to the server: on wherever it has a transcriber.
    recognize=False leaves speakers unnamed even where they match an enrolled voice."""
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        raise ValueError("give either num_speakers or min_speakers/max_speakers, not both")
    for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise ValueError(f"min_speakers ({min_speakers}) is greater than max_speakers ({max_speakers})")
    options = pb.DiarizeOptions(
        speakers=pb.SpeakerCount(exact=num_speakers or 0, min=min_speakers or 0, max=max_speakers or 0),
        engine=engine,
        language=language,
    )
    if transcribe is not None:
        options.transcribe = transcribe
    if not recognize:
        options.recognize = False
    if link_threshold is not None:
        options.link_threshold = link_threshold
    return options


ENCODINGS: dict[str, int] = {
    "pcm_s16le": pb.AUDIO_ENCODING_PCM_S16LE,
    "mulaw": pb.AUDIO_ENCODING_MULAW,
    "alaw": pb.AUDIO_ENCODING_ALAW,
    "container": pb.AUDIO_ENCODING_CONTAINER,
}


def live_config(
    *,
    encoding: str = "pcm_s16le",
    sample_rate: int = 16000,
    channels: int = 1,
    latency: float = 2.0,
    max_speakers: int | None = None,
    recognize: bool = True,
    engine: str = "",
    name: str = "",
) -> pb.StreamConfig:
    """The StreamConfig of a live stream; the server checks it again."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    if not 0.5 <= latency <= 5.0:
        raise ValueError(f"latency must be 0.5-5 seconds, got {latency}")
    if encoding != "container" and not 8000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be 8000-48000 Hz, got {sample_rate}")
    if not 1 <= channels <= 8:
        raise ValueError(f"channels must be 1-8, got {channels}")
    if max_speakers is not None and max_speakers < 1:
        raise ValueError(f"max_speakers must be at least 1, got {max_speakers}")
    config = pb.StreamConfig(
        latency_seconds=latency, speakers=pb.SpeakerCount(max=max_speakers or 0), engine=engine,
        encoding=ENCODINGS[encoding], sample_rate=0 if encoding == "container" else sample_rate,
        channels=0 if encoding == "container" else channels, name=name,
    )
    if not recognize:
        config.recognize = False
    return config


EXPORT_FORMATS: dict[str, int] = {
    "json": pb.EXPORT_FORMAT_JSON,
    "csv": pb.EXPORT_FORMAT_CSV,
    "text": pb.EXPORT_FORMAT_TEXT,
    "rttm": pb.EXPORT_FORMAT_RTTM,
    "srt": pb.EXPORT_FORMAT_SRT,
    "vtt": pb.EXPORT_FORMAT_VTT,
}


def export_request(job_id: str, name: str, clip_index: int | None = None) -> pb.ExportRequest:
    """The Export request for a format name such as "rttm", for one clip or (None) all."""
    try:
        fmt = EXPORT_FORMATS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}; choose one of {', '.join(EXPORT_FORMATS)}") from None
    request = pb.ExportRequest(job_id=job_id, format=fmt)
    if clip_index is not None:
        request.clip_index = clip_index
    return request
