"""Audio through the codecs real recordings go through (telephone lines, VoIP, MP3) and back,
with ffmpeg on PATH: the conditions the evaluation tools simulate (speakerlink.conditions),
and the lines an enrolled voice is also heard through (the server's pipeline.matched_band).

Every function takes and returns 16 kHz mono float32 of the same length and timing: the
codec's delay and padding are taken out, to within a sample.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np
import numpy.typing as npt
from scipy import signal

Audio = npt.NDArray[np.float32]
RATE = 16000
PHONE_RATE = 8000
MAX_CODEC_LAG_S = 0.1  # codec delays searched within this
AMR_NB_KBPS = (4.75, 5.15, 5.9, 6.7, 7.4, 7.95, 10.2, 12.2)


@functools.cache
def encoders() -> frozenset[str]:
    """The audio encoders of the ffmpeg on PATH."""
    listing = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True).stdout
    return frozenset(line.split()[1] for line in listing.splitlines() if line.startswith(" A"))


def phone_line(audio: Audio, codec: str, fmt: str, low: float = 300.0, high: float = 3400.0,
               kbps: float | None = None) -> Audio:
    """A narrowband phone line: its pass band, 8 kHz, then the codec (ffmpeg's encoder name and
    container: pcm_mulaw/wav, libgsm/gsm, libopencore_amrnb/amr at the nearest AMR-NB rate to `kbps`)."""
    if not 0 < low < high < PHONE_RATE / 2:
        raise ValueError(f"a phone line's band must lie within 0-{PHONE_RATE // 2} Hz, low below high: "
                         f"got low={low:.0f}, high={high:.0f}")
    band = signal.sosfiltfilt(signal.butter(4, [low, high], btype="bandpass", fs=RATE, output="sos"), audio)
    narrow = signal.resample_poly(band, 1, 2)
    extra = [] if kbps is None else ["-b:a", f"{min(AMR_NB_KBPS, key=lambda r: abs(r - kbps)) * 1000:.0f}"]
    decoded = round_trip(narrow, PHONE_RATE, ["-c:a", codec, *extra, "-f", fmt])
    return signal.resample_poly(aligned(narrow, decoded), 2, 1)[: len(audio)].astype(np.float32)


def opus(audio: Audio, kbps: float) -> Audio:
    """VoIP: Opus at `kbps`, in its voice mode."""
    encode = ["-c:a", "libopus", "-b:a", f"{kbps * 1000:.0f}", "-application", "voip", "-f", "ogg"]
    return aligned(audio, round_trip(audio, RATE, encode))


def mp3(audio: Audio, kbps: float) -> Audio:
    """MP3 at 16 kHz, at `kbps` rounded to a rate MPEG-2 allows (multiples of 8 kbps)."""
    rounded = max(8, 8 * round(kbps / 8))
    return aligned(audio, round_trip(audio, RATE, ["-c:a", "libmp3lame", "-b:a", f"{rounded}k", "-f", "mp3"]))


def round_trip(audio: npt.NDArray[np.floating], rate: int, encode: list[str]) -> Audio:
    """Encoded and decoded again by ffmpeg, at `rate`."""
    codec = encode[encode.index("-c:a") + 1]
    if codec not in encoders():
        raise ValueError(f"this ffmpeg has no {codec} encoder (`ffmpeg -encoders` lists what it has)")
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
    raw = ["-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
    encoded = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *raw, *encode, "pipe:1"],
                             input=pcm, capture_output=True)
    if encoded.returncode != 0:
        raise ValueError(f"ffmpeg could not encode with {' '.join(encode)}: {encoded.stderr.decode(errors='replace').strip()}")
    return decode(["-i", "pipe:0"], encoded.stdout, "-ar", str(rate), "-ac", "1")


def aligned(original: npt.NDArray[np.floating], decoded: npt.NDArray[np.floating]) -> Audio:
    """`decoded` shifted by the lag (within MAX_CODEC_LAG_S) that best matches `original`,
    cut or padded to its length: codecs add delay and padding."""
    n = len(original)
    lag_max = int(MAX_CODEC_LAG_S * RATE)
    corr = signal.correlate(decoded, original, mode="full", method="fft")
    lags = np.arange(-n + 1, len(decoded))
    inside = np.abs(lags) <= lag_max
    lag = int(lags[inside][np.argmax(corr[inside])])
    shifted = decoded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag), decoded])
    return np.pad(shifted[:n], (0, max(0, n - len(shifted)))).astype(np.float32)


def decode(inputs: list[str], data: bytes, *output: str) -> Audio:
    """What ffmpeg makes of `inputs` (reading `data` on stdin), as float32 samples."""
    if shutil.which("ffmpeg") is None:
        raise ValueError("codecs need ffmpeg on PATH")
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *inputs, *output, "-f", "f32le", "pipe:1"],
                          input=data, capture_output=True)
    if proc.returncode != 0:
        raise ValueError(f"ffmpeg failed: {proc.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
