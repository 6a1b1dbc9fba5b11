"""Decode any supported file to 16 kHz mono float32 with ffmpeg, and catch damaged files.

ffmpeg decodes what it can of a damaged file and often exits 0, so a truncated file would
silently become a shorter clip. Three checks catch it:
- the decoded length against the length the container declares (ffprobe; for WAV, the RIFF
  header, since ffprobe derives WAV length from the size);
- the warnings ffmpeg gives where a stream stops mid-packet (AAC, FLAC, Matroska/WebM), for
  containers that declare no length or one taken from what is there;
- for Ogg (Opus, Vorbis), whose length ffprobe reads from the last page present, that the file
  ends with a whole page marked end-of-stream.
"""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speakerlink_server import errors
from speakerlink_server.audio_format import SAMPLE_RATE

# Decoded audio may fall this far short of the declared length before we call it truncated:
# encoders pad and round frame counts, and headers of streamed files can be loose.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_RATIO = 0.02
# Sample rates recordings use, from narrowband telephony to studio masters. A header outside
# them is damaged or crafted: 1 Hz makes a 36 KB WAV declare ten hours.
LOWEST_RATE, HIGHEST_RATE = 8000, 384000
# What ffmpeg says (at warning level) when a stream stops mid-packet; clean files of every
# supported format decode without any of them.
CUT_SHORT = ("File ended prematurely", "Packet corrupt", "Input buffer exhausted", "decode_frame() failed",
             "invalid residual")
OGG_MAX_PAGE = 27 + 255 + 255 * 255  # header, segment table, body
# ffmpeg prefixes its messages with the component and its heap address ("[wav @ 0x55...]"):
# the address tells a client about the server's memory and nothing about the file.
HEAP_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+\]")


@dataclass(frozen=True)
class Probe:
    codec: str
    declared_seconds: float | None


WAV_HEAD_BYTES = 4096  # where a WAV's data chunk begins, past any metadata chunks before it
UNSET_SIZE = 0xFFFFFFFF


def probe(path: Path, index: int, name: str) -> Probe:
    """Check that the file has an audio stream ffmpeg can read at a sample rate recordings use;
    raises NOT_AUDIO or UNSUPPORTED_SAMPLE_RATE otherwise."""
    proc = subprocess.run(
        ["ffprobe", "-v", "warning", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,duration,sample_rate:format=duration,format_name", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0:
        raise errors.not_audio(index, name, _complaint(proc.stderr, path, name) or "ffprobe failed")
    info = json.loads(proc.stdout or "{}")
    streams = info.get("streams") or []
    if not streams:
        raise errors.not_audio(index, name, "no audio stream")
    rate = _float(streams[0].get("sample_rate"))
    if rate == 0:  # ffprobe guessed a format from a few bytes and found no frame of it
        raise errors.not_audio(index, name, "ffmpeg finds no audio frame it can decode")
    if rate is not None and not LOWEST_RATE <= rate <= HIGHEST_RATE:
        raise errors.unsupported_sample_rate(index, name, int(rate), LOWEST_RATE, HIGHEST_RATE)
    if "ogg" in info.get("format", {}).get("format_name", "").split(",") and not _ogg_ends_whole(path):
        raise errors.truncated_audio(index, name, "its last Ogg page is cut short or not marked end-of-stream")
    declared = _float(streams[0].get("duration")) or _float(info.get("format", {}).get("duration"))
    if "Estimating duration from bitrate" in proc.stderr:
        declared = None  # a guess from the file's size (raw AAC, some MP3), not a length the file declares
    riff = _riff_declared_fraction(path)
    if riff == math.inf:
        raise errors.truncated_audio(index, name, "its data chunk declares audio but holds none")
    if riff is not None and declared is not None:
        declared = declared * riff
    return Probe(codec=streams[0].get("codec_name", ""), declared_seconds=declared)


def length(path: Path, index: int, name: str, info: Probe) -> float:
    """The clip's seconds, for the limits and quotas: the length it declares, or, where it
    declares none (an MP3 without a Xing header, raw AAC), the end of its last packet, which is
    what decoding gives. ffmpeg reads the packets without decoding them: about a second for
    three hours of MP3."""
    if info.declared_seconds is not None:
        return info.declared_seconds
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1", "-i", str(path), "-map", "0:a:0",
         "-c", "copy", "-f", "null", "-"],
        capture_output=True, text=True, timeout=600,
    )
    ends = [line.partition("=")[2] for line in proc.stdout.splitlines() if line.startswith("out_time_us=")]
    if proc.returncode != 0 or not ends or not ends[-1].lstrip("-").isdigit():
        raise errors.not_audio(index, name, _complaint(proc.stderr, path, name) or "ffmpeg cannot read its packets")
    return max(0, int(ends[-1])) / 1e6


def decode(path: Path, index: int, name: str) -> np.ndarray:
    """The whole file as 16 kHz mono float32 in [-1, 1]."""
    chunks = [chunk for _, chunk in stream(path, index, name, chunk_seconds=None)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def stream(
    path: Path, index: int, name: str, chunk_seconds: float | None, info: Probe | None = None,
    max_seconds: float = math.inf,
) -> Iterator[tuple[float, np.ndarray]]:
    """(offset seconds, samples) chunks of chunk_seconds (None: one chunk), decoded as they are
    read, so a long recording never sits in memory whole. Decoding stops with AUDIO_TOO_LONG
    past max_seconds, whatever the header said. The truncation check runs at the end."""
    info = info or probe(path, index, name)
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "warning", "-i", str(path), "-map", "0:a:0",
         "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # ffmpeg's complaints are drained on the side, so a chatty decoder cannot block on a full pipe.
    complaints: list[bytes] = []
    drain = threading.Thread(target=lambda: complaints.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    step = None if chunk_seconds is None else int(chunk_seconds * SAMPLE_RATE) * 4
    total = 0
    try:
        while data := proc.stdout.read(step if step is not None else -1):
            usable = len(data) - len(data) % 4
            samples = np.frombuffer(data[:usable], dtype=np.float32).copy()  # writable, for torch
            if (total + samples.size) / SAMPLE_RATE > max_seconds:
                raise errors.audio_too_long(index, name, (total + samples.size) / SAMPLE_RATE, max_seconds)
            if samples.size:
                yield total / SAMPLE_RATE, samples
            total += samples.size
            if step is None:
                break
    finally:
        proc.stdout.close()
        returncode = proc.wait()
        drain.join()
    if returncode != 0 and total == 0:
        raise errors.not_audio(index, name, _complaint(b"".join(complaints).decode(errors="replace"), path, name)
                               or "ffmpeg failed")
    decoded = total / SAMPLE_RATE
    declared = info.declared_seconds
    if declared is not None and decoded < declared - max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_RATIO * declared):
        raise errors.truncated_audio(index, name, f"{decoded:.2f} s decoded of the {declared:.2f} s its header declares")
    said = b"".join(complaints).decode(errors="replace")
    cut = next((line for line in said.splitlines() if any(marker in line for marker in CUT_SHORT)), None)
    if cut is not None:
        raise errors.truncated_audio(index, name, f"{decoded:.2f} s decoded, then ffmpeg: {_complaint(cut, path, name)}")


def _ogg_ends_whole(path: Path) -> bool:
    """Whether the file's last bytes are one whole Ogg page with the end-of-stream flag."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - OGG_MAX_PAGE))
        tail = fh.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        count = tail[at + 26] if at + 26 < len(tail) else -1
        segments = tail[at + 27 : at + 27 + count]
        if len(segments) == count and at + 27 + count + sum(segments) == len(tail):
            return bool(tail[at + 5] & 0x04)
        at = tail.rfind(b"OggS", 0, at)
    return False


def _riff_declared_fraction(path: Path) -> float | None:
    """For a RIFF/WAVE file, declared size / actual size (> 1 when the file was cut short), of
    the whole file or of its data chunk, whichever is more; inf for a data chunk that declares
    audio and holds none (a file cut right after its header, whose length ffprobe cannot tell)."""
    with path.open("rb") as fh:
        head = fh.read(WAV_HEAD_BYTES)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    actual = path.stat().st_size
    fractions = [1.0]
    declared_bytes = struct.unpack("<I", head[4:8])[0] + 8
    if declared_bytes not in (8, UNSET_SIZE + 8):  # streamed WAVs leave the sizes unset
        fractions.append(declared_bytes / actual)
    at = 12
    while at + 8 <= len(head):
        chunk, size = head[at : at + 4], struct.unpack("<I", head[at + 4 : at + 8])[0]
        if chunk == b"data":
            held = actual - (at + 8)
            if size not in (0, UNSET_SIZE):
                fractions.append(size / held if held > 0 else math.inf)
            break
        at += 8 + size + size % 2
    return max(fractions)


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _complaint(text: str, path: Path, name: str) -> str:
    """ffmpeg's last line of complaint, with the clip's name where it names the server's file,
    and without heap addresses."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return HEAP_ADDRESS.sub("]", lines[-1].replace(str(path), name)) if lines else ""
