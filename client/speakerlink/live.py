"""Audio for a live stream: the requests of StreamDiarize, and 16-bit PCM frames from a file at
its own pace (or faster) or from the machine's microphone, both through the ffmpeg program
(a PCM WAV file needs none). Nothing here imports more than the standard library.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import wave
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from speakerlink.v1 import speakerlink_pb2 as pb

FRAME_SECONDS = 0.1  # audio per message: a capture callback's usual size
RATE = 16000  # what ffmpeg decodes files and the microphone to


@dataclass
class PcmSource:
    """16-bit PCM frames and what they are."""

    sample_rate: int
    channels: int
    frames: Iterator[bytes]


def live_requests(config: pb.StreamConfig, frames: Iterable[bytes]) -> Iterator[pb.StreamRequest]:
    yield pb.StreamRequest(config=config)
    for frame in frames:
        if frame:
            yield pb.StreamRequest(audio=frame)


async def live_requests_async(config: pb.StreamConfig,
                              frames: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[pb.StreamRequest]:
    """live_requests for the asyncio client: frames from a web socket, a telephony bridge or a list."""
    yield pb.StreamRequest(config=config)
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            if frame:
                yield pb.StreamRequest(audio=frame)
    else:
        for frame in frames:
            if frame:
                yield pb.StreamRequest(audio=frame)


def file_source(path: Path) -> PcmSource:
    """A file's audio as PCM frames of FRAME_SECONDS: decoded by ffmpeg to 16 kHz mono, or read
    as it is from a 16-bit PCM WAV file where there is no ffmpeg."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if shutil.which("ffmpeg"):
        return _ffmpeg(["-i", str(path)], f"ffmpeg could not decode {path}")
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path}: without ffmpeg on PATH only 16-bit PCM WAV files can be streamed ({err})") from None
    if width != 2:
        raise ValueError(f"{path}: without ffmpeg on PATH only 16-bit PCM WAV files can be streamed")
    return PcmSource(rate, channels, _wav_frames(path, int(rate * FRAME_SECONDS)))


def microphone_source() -> PcmSource:
    """The machine's default input through ffmpeg (PulseAudio or ALSA on Linux, AVFoundation on
    macOS, DirectShow's first device on Windows); raises OSError saying why where there is none."""
    if not shutil.which("ffmpeg"):
        raise OSError("live --mic captures through ffmpeg, and there is no ffmpeg on PATH; install it, "
                           "or stream a file instead")
    if sys.platform == "darwin":
        inputs = [["-f", "avfoundation", "-i", ":0"]]
    elif sys.platform == "win32":
        inputs = [["-f", "dshow", "-i", "audio=default"]]
    else:
        inputs = [["-f", "pulse", "-i", "default"], ["-f", "alsa", "-i", "default"]]
    reasons = []
    for args in inputs:
        try:
            return _ffmpeg(args, "ffmpeg could not open the microphone", probe=True)
        except OSError as err:
            reasons.append(f"{args[1]}: {err}")
    raise OSError("this machine has no microphone ffmpeg can open (" + "; ".join(reasons) + ")")


def paced(frames: Iterable[bytes], bytes_per_second: int, speed: float, stop: threading.Event) -> Iterator[bytes]:
    """Frames no faster than `speed` times real time (0: as fast as they come), until `stop` is set."""
    started, sent = time.monotonic(), 0
    for frame in frames:
        if stop.is_set():
            return
        if speed > 0:
            time.sleep(max(0.0, started + sent / bytes_per_second / speed - time.monotonic()))
        yield frame
        sent += len(frame)


def _wav_frames(path: Path, samples: int) -> Iterator[bytes]:
    with wave.open(str(path), "rb") as wav:
        while frame := wav.readframes(samples):
            yield frame


def _ffmpeg(inputs: list[str], failure: str, probe: bool = False) -> PcmSource:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *inputs,
               "-f", "s16le", "-ac", "1", "-ar", str(RATE), "pipe:1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    size = int(RATE * FRAME_SECONDS) * 2
    first = process.stdout.read(size) if probe else b""
    if probe and not first:
        reason = process.stderr.read().decode(errors="replace").strip().splitlines()
        process.wait()
        raise OSError(reason[-1] if reason else failure)
    return PcmSource(RATE, 1, _frames(process, first, size, failure))


def _frames(process: subprocess.Popen, first: bytes, size: int, failure: str) -> Iterator[bytes]:
    try:
        if first:
            yield first
        while frame := process.stdout.read(size):
            yield frame
        if process.wait() != 0:
            reason = process.stderr.read().decode(errors="replace").strip().splitlines()
            raise ValueError(f"{failure}: {reason[-1]}" if reason else failure)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
