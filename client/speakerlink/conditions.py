"""Recording conditions applied to clips: rooms, noise, phone lines, VoIP and MP3 codecs, gain.

So a user can stress their own reference data with what real recordings go through
(`speakerlink eval clips/*.wav -r ref.rttm --condition far-room`), and the project can build
dev sets in which one person is heard through different conditions (benchmarks/condition_sets.py).
The spec language and the per-clip seeds are in speakerlink.condition_spec.

Needs the [eval] extra (numpy, scipy, pyroomacoustics) and ffmpeg on PATH for the codecs.
Every condition keeps the clip's length and timing: the reference RTTM stays right (codec and
room delays are taken out, to within a sample), and the output is 16 kHz mono 16-bit WAV.

    python -m speakerlink.conditions far-room+phone-gsm clips/*.wav -r ref.rttm -o out/ --seed 7
"""

from __future__ import annotations

import argparse
import random
import sys
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal

from speakerlink import codecs
from speakerlink.codecs import RATE, Audio
from speakerlink.condition_spec import Chain, parse, step_seed
from speakerlink.evaluation import Turns, clip_id, read_rttm

SPEED_OF_SOUND = 343.0
# Rooms: image sources up to this order give the early reflections (complete for the first
# ~100 ms in rooms of 2.6 m and up); the late tail is exponentially decaying noise at the drawn
# RT60, joined where the images are still complete. Full image-source orders for RT60 1 s run
# to 100+ (millions of images), and pyroomacoustics' ray tracer is not seedable.
IMAGE_ORDER = 12
TAIL_START_S = 0.06  # after the direct sound
FADE_S = 0.02  # masks that split a clip into its speakers ramp over this much


@dataclass
class Context:
    """What a clip's conditions may use besides its audio."""

    turns: list[tuple[float, float, str]] = field(default_factory=list)  # the reference's turns, if any
    babble: list[Audio] = field(default_factory=list)  # recordings of other people, for babble


@dataclass
class Conditioned:
    audio: Audio
    drawn: list[tuple[str, dict[str, float]]]  # each step's name and the values this clip drew

    def describe(self) -> str:
        """`far-room(rt60=0.83,distance=3.10)+phone-gsm`: what this clip went through."""
        return "+".join(name + (f"({','.join(f'{k}={v:.2f}' for k, v in drawn.items())})" if drawn else "")
                        for name, drawn in self.drawn)


def apply(chain: Chain, audio: Audio, *, clip: str, seed: int, context: Context | None = None) -> Conditioned:
    """The clip through every step of the chain, seeded by (seed, clip, step)."""
    context = context or Context()
    drawn = []
    for index, step in enumerate(chain.steps):
        clip_seed = step_seed(seed, clip, index)
        params = step.draw(random.Random(clip_seed))
        audio = _CONDITIONS[step.name](audio, params, np.random.default_rng(clip_seed), context)
        drawn.append((step.name, params))
    return Conditioned(np.clip(audio, -1.0, 1.0).astype(np.float32), drawn)


def condition_files(chain: Chain, files: Sequence[Path], out: Path, *, seed: int,
                    reference: Turns | None = None) -> list[Path]:
    """Each file through the chain into `out` as `<name>.wav`. Babble for a clip is made of
    the other clips, preferring those that share no reference speaker with it."""
    out.mkdir(parents=True, exist_ok=True)
    clips = {clip_id(p.name): load(p) for p in files}
    if len(clips) < len(files):
        raise ValueError("two input files have the same name without extension: their clip ids clash")
    reference = reference or {}
    written = []
    for name, audio in clips.items():
        people = {w for *_, w in reference.get(name, [])}
        others = [n for n in clips if n != name]
        apart = [n for n in others if not people & {w for *_, w in reference.get(n, [])}]
        context = Context(reference.get(name, []), [clips[n] for n in (apart or others)])
        path = out / f"{name}.wav"
        write_wav(path, apply(chain, audio, clip=name, seed=seed, context=context).audio)
        written.append(path)
    return written


def load(path: Path) -> Audio:
    """Any audio ffmpeg reads, as 16 kHz mono float32."""
    return codecs.decode(["-i", str(path)], b"", "-ar", str(RATE), "-ac", "1")


def write_wav(path: Path, audio: Audio) -> None:
    """16 kHz mono 16-bit PCM, what the conditions output."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


# --- rooms -------------------------------------------------------------------------------


def _room(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    """A shoebox room: each reference speaker, and the rest of the clip, from their own position
    at the drawn distance from one microphone. Where speakers overlap, each gets an equal share
    of the mixture, so the parts sum back to the clip before the room."""
    import pyroomacoustics as pra

    distance, rt60 = params["distance"], params["rt60"]
    masks = _speaker_masks(len(audio), context.turns)
    dims = np.array([rng.uniform(max(5.0, distance + 2.0), max(8.0, distance + 5.0)),
                     rng.uniform(max(4.0, distance + 0.8), max(6.0, distance + 2.0)), rng.uniform(2.6, 3.4)])
    mic = np.array([rng.uniform(0.5, dims[0] - 0.5), rng.uniform(0.5, dims[1] - 0.5), rng.uniform(0.8, 1.3)])
    absorption, _ = pra.inverse_sabine(rt60, dims)
    out = np.zeros(len(audio))
    for mask in masks:
        source = _position(rng, dims, mic, distance)
        room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=IMAGE_ORDER,
                           air_absorption=False)
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        direct = round(np.linalg.norm(source - mic) / SPEED_OF_SOUND * RATE) + (pra.constants.get("frac_delay_length") - 1) // 2
        rir = _with_tail(np.asarray(room.rir[0][0]), direct, rt60, rng)
        wet = signal.fftconvolve(audio * mask, rir)
        out += wet[direct: direct + len(audio)]
    return _same_level(out, audio)


def _speaker_masks(n: int, turns: list[tuple[float, float, str]]) -> list[npt.NDArray[np.float64]]:
    """Weights that split a clip into its speakers and the rest; they sum to one everywhere."""
    people = sorted({w for *_, w in turns})
    active = np.zeros((len(people) + 1, n))
    for start, end, who in turns:
        active[people.index(who), max(0, int(start * RATE)): min(n, int(end * RATE))] = 1.0
    talking = active[:-1].sum(axis=0)
    active[:-1] /= np.maximum(talking, 1.0)
    active[-1] = talking == 0
    kernel = np.ones(int(FADE_S * RATE)) / int(FADE_S * RATE)
    masks = [np.convolve(row, kernel, mode="same") for row in active]
    return [m for m in masks if m.any()]


def _position(rng: np.random.Generator, dims: npt.NDArray[np.float64], mic: npt.NDArray[np.float64],
              distance: float) -> npt.NDArray[np.float64]:
    """A talker's mouth at `distance` from the microphone, inside the room, 1.1-1.8 m high."""
    for _ in range(1000):
        height = rng.uniform(1.1, 1.8)
        flat = distance**2 - (height - mic[2]) ** 2
        if flat <= 0:
            continue
        angle = rng.uniform(0, 2 * np.pi)
        point = mic + np.array([np.sqrt(flat) * np.cos(angle), np.sqrt(flat) * np.sin(angle), height - mic[2]])
        if np.all(point[:2] > 0.3) and np.all(point[:2] < dims[:2] - 0.3):
            return point
    raise ValueError(f"no place in a {dims[0]:.1f} x {dims[1]:.1f} m room is {distance:.1f} m from the microphone")


def _with_tail(rir: npt.NDArray[np.float64], direct: int, rt60: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """The image-source response up to TAIL_START_S after the direct sound, then noise decaying
    60 dB in rt60 seconds, at the level the images have where it starts."""
    start = direct + int(TAIL_START_S * RATE)
    length = start + int(1.2 * rt60 * RATE)
    early = np.zeros(length)
    early[: min(len(rir), length)] = rir[:length]
    window = early[start - int(0.02 * RATE): start]
    decay = np.exp(-6.9 * np.arange(length - start) / (rt60 * RATE))  # 60 dB amplitude decay
    tail = rng.standard_normal(length - start) * decay * np.sqrt(np.mean(window**2))
    early[start:] = tail
    return early


def _same_level(out: npt.NDArray[np.float64], original: Audio) -> Audio:
    """`out` at the loudness (RMS) of `original`, held below full scale."""
    gain = _rms(original) / max(_rms(out), 1e-12)
    return _below_full_scale(out * gain)


# --- noise -------------------------------------------------------------------------------


def _add_at_snr(audio: Audio, noise: npt.NDArray[np.float64], snr_db: float) -> Audio:
    """SNR is the whole clip's power over the noise's."""
    scale = _rms(audio) / max(_rms(noise), 1e-12) / 10 ** (snr_db / 20)
    return _below_full_scale(audio + scale * noise)


def _babble(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    """Several other people talking at once: recordings from the context (each at a random
    offset, looped to length, at equal level), or this clip itself shifted when there are none."""
    pool = context.babble or [audio]
    talkers = max(1, int(params["talkers"]))
    noise = np.zeros(len(audio))
    for _ in range(talkers):
        other = pool[int(rng.integers(len(pool)))]
        other = np.tile(other, int(np.ceil(len(audio) / max(len(other), 1))) + 1)
        shift = int(rng.integers(len(other) - len(audio) + 1))
        part = other[shift: shift + len(audio)]
        noise += part / max(_rms(part), 1e-12)
    return _add_at_snr(audio, noise, params["snr"])


def _coloured(exponent: float) -> Callable:
    """Stationary noise with power falling as 1/f**exponent: white 0, pink 1, brown 2."""

    def condition(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
        spectrum = np.fft.rfft(rng.standard_normal(len(audio)))
        freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
        spectrum *= 1 / np.maximum(freqs, 20.0) ** (exponent / 2)
        return _add_at_snr(audio, np.fft.irfft(spectrum, len(audio)), params["snr"])

    return condition


# --- codecs (speakerlink.codecs) ---------------------------------------------------------


def _phone(codec: str, fmt: str) -> Callable:
    """A narrowband phone line: its pass band (300-3400 Hz unless drawn otherwise), 8 kHz, then
    the codec, back at 16 kHz."""

    def condition(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
        return codecs.phone_line(audio, codec, fmt, params["low"], params["high"], params.get("kbps"))

    return condition


def _opus(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    return codecs.opus(audio, params["kbps"])


def _mp3(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    return codecs.mp3(audio, params["kbps"])


# --- level -------------------------------------------------------------------------------


def _gain(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    """Louder or quieter; above full scale the 16-bit output clips, as a recorder would."""
    return (audio * 10 ** (params["db"] / 20)).astype(np.float32)


def _clipping(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    """Hard clipping of the loudest `percent` of samples, at the clip's loudness before."""
    level = np.quantile(np.abs(audio), 1 - params["percent"] / 100)
    clipped = np.clip(audio, -level, level)
    return _same_level(clipped, audio)


def _clean(audio: Audio, params: dict[str, float], rng: np.random.Generator, context: Context) -> Audio:
    return audio


def _below_full_scale(audio: npt.NDArray[np.float64]) -> Audio:
    """Scaled down only if it went past full scale."""
    peak = np.max(np.abs(audio), initial=0.0)
    return (audio / peak * 0.99 if peak > 0.99 else audio).astype(np.float32)


def _rms(audio: npt.NDArray[np.floating]) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


_CONDITIONS: dict[str, Callable[[Audio, dict[str, float], np.random.Generator, Context], Audio]] = {
    "clean": _clean,
    "room": _room,
    "near-room": _room,
    "far-room": _room,
    "noise-babble": _babble,
    "noise-white": _coloured(0.0),
    "noise-pink": _coloured(1.0),
    "noise-brown": _coloured(2.0),
    "phone-ulaw": _phone("pcm_mulaw", "wav"),
    "phone-alaw": _phone("pcm_alaw", "wav"),
    "phone-gsm": _phone("libgsm", "gsm"),
    "phone-amr": _phone("libopencore_amrnb", "amr"),
    "voip-opus": _opus,
    "mp3": _mp3,
    "gain": _gain,
    "clipping": _clipping,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakerlink.conditions",
                                     description="write clips through a recording condition (see speakerlink.condition_spec)")
    parser.add_argument("spec", help="e.g. far-room, phone-gsm, noise-babble:snr=5..15+mp3:kbps=24")
    parser.add_argument("files", nargs="+", type=Path, help="clips to condition")
    parser.add_argument("-r", "--reference", type=Path, help="reference RTTM: rooms place each of its speakers apart")
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder for <clip>.wav")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same output (default 0)")
    args = parser.parse_args(argv)
    try:
        chain = parse(args.spec)
        reference = read_rttm(args.reference) if args.reference else None
        for path in condition_files(chain, args.files, args.out, seed=args.seed, reference=reference):
            print(path)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
