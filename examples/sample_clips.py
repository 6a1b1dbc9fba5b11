"""The project's own speech: espeak-ng conversations with a known answer.

Diarization needs audio where who-spoke-when is known exactly, and the tests, the demo and
the benchmarks must run offline without downloading anyone's recordings. Synthetic voices
give both: every turn's boundaries come from the synthesis itself, and the same voice spec
always yields the same "person", so linking speakers across clips has a ground truth too.

Needs espeak-ng, sox and ffmpeg on PATH, and numpy.

    python examples/sample_clips.py OUT_DIR   # meeting.wav, call.mp3, interview.flac, reference.rttm
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.float32]
Turn = tuple[str, str]  # (voice spec, text)
Segment = tuple[float, float, str]  # (start s, end s, speaker name)

SAMPLE_RATE = 16000

# Picked by measurement with Resemblyzer's GE2E VoiceEncoder (embed_utterance, 16 kHz) from 59
# espeak-ng voices/variants (+m1..+m7, +f1..+f5, +klatt..+klatt4, named variants, -p/-s changes).
# The +mN/+fN/+klattN families sound distinct to a person but sit at cosine 0.93-0.98 from one
# another for the encoder, so the cast uses named variants with their own formant tables.
# For these five, 11 sentences per voice (3 used to choose, 8 held out), turns as built below:
#   whole utterances:  min same-voice 0.881 > max cross-voice 0.676 (margin 0.20)
#   1.5 s windows (the diarization unit, hop 0.5 s, 326 windows): 1st-percentile same-voice
#     0.746 > 99th-percentile cross-voice 0.658, but the extremes overlap (min same 0.693 vs
#     max cross 0.717, steph/anika); every window is still nearer its own voice's centroid than
#     any other (0 errors, min margin 0.22), which is what clustering relies on.
# The best sixth voice found (en+f3 -p 85 -s 170) kept the utterance margin but widened the
# window overlap, so the cast stops at five.
VOICES: tuple[str, ...] = (
    "en+steph",  # alice, female
    "en-us+edward",  # bob, male (klatt)
    "en+anika -p 60",  # carol, female
    "en-us+Lee",  # dave, male
    "en-us+norbert",  # eric, male
)
SPEAKER_NAMES: tuple[str, ...] = ("alice", "bob", "carol", "dave", "eric")

_NAME_OF_VOICE = dict(zip(VOICES, SPEAKER_NAMES, strict=True))
_VOICE_OF_NAME = dict(zip(SPEAKER_NAMES, VOICES, strict=True))

# espeak-ng options a voice spec may carry after the voice name: pitch, speed, amplitude, word gap.
_SPEC_OPTIONS = frozenset({"-p", "-s", "-a", "-g"})

# Every turn is scaled to the same peak so no speaker clips or dominates by loudness alone.
_TURN_PEAK = 0.5
# White noise under the whole clip: real recordings never contain digital silence, and some
# VADs and resamplers behave differently on exact zeros.
_NOISE_RMS = 10 ** (-60 / 20)
# espeak pads each utterance with near-silence; anything below this is not part of the turn,
# so reference boundaries sit where speech rises above the noise floor.
_TRIM_LEVEL = 10 ** (-50 / 20)

# Three scenes with a shared cast, so the same person turns up in several clips and formats.
# Each (speaker, text) is one turn, in the order of the reference RTTM's lines for the clip.
SCRIPTS: dict[str, tuple[tuple[str, str], ...]] = {
    "meeting.wav": (
        ("alice", "Okay, let's get started, there's a lot to cover."),
        ("bob", "Did everyone get the updated schedule?"),
        ("carol", "Yes, the launch moved to the second week of May."),
        ("alice", "Because the printer needed more time."),
        ("bob", "Which gives us two extra weeks for testing."),
        ("carol", "Good, the app still crashes on older phones."),
        ("alice", "How many users does that affect?"),
        ("carol", "About one in twenty, mostly on tablets."),
        ("bob", "I'll ask the platform team to look at it tomorrow."),
        ("alice", "Please do, and keep an eye on the numbers."),
        ("carol", "I'll draft the announcement for the newsletter."),
        ("bob", "Send it to me first, I want to check the prices."),
        ("alice", "Great, same time next Tuesday, then?"),
        ("carol", "Works for me. I'll book the small room."),
    ),
    "call.mp3": (
        ("dave", "Hello, this is Dave speaking."),
        ("bob", "Hi Dave, it's Bob from the bike shop."),
        ("dave", "Oh, hi. Is my bicycle ready already?"),
        ("bob", "Almost. The chain is new, but the rear wheel is bent."),
        ("dave", "That doesn't surprise me, I hit a pothole last week."),
        ("bob", "A new wheel would cost about eighty dollars."),
        ("dave", "Eighty dollars? That's more than I paid for the bike."),
        ("bob", "We could try straightening the old one first."),
        ("dave", "Let's do that, I only ride it to the station."),
        ("bob", "Then it should be ready on Thursday afternoon."),
        ("dave", "Perfect, I'll pick it up on my way home."),
        ("bob", "Great, see you Thursday, have a nice evening."),
    ),
    "interview.flac": (
        ("alice", "Today we're talking about community gardens."),
        ("eric", "Thanks for having us, it's great to be here."),
        ("alice", "So, how did the garden on River Road start?"),
        ("eric", "With an empty parking lot and a few neighbors."),
        ("dave", "We asked the city for a lease, and they said yes."),
        ("alice", "And what do you grow there these days?"),
        ("eric", "Tomatoes, beans, and far too many zucchini."),
        ("dave", "The school children look after the strawberries."),
        ("alice", "Lovely. What has been the hardest part?"),
        ("eric", "Water. The summers keep getting drier."),
        ("dave", "So last spring we installed a rain tank."),
        ("alice", "How can our listeners get involved?"),
        ("eric", "Come by on a Saturday, we always need help."),
        ("dave", "And bring a hat, there is hardly any shade."),
    ),
}

# All the distinct sentences, for callers that want speech of their own arrangement.
SENTENCES: tuple[str, ...] = tuple(text for script in SCRIPTS.values() for _, text in script)

# Lossless formats at 16 bit like most recordings; mp3 at a speech bitrate, so lossy decoding is exercised too.
_FFMPEG_CODECS: dict[str, list[str]] = {
    ".wav": ["-c:a", "pcm_s16le"],
    ".flac": ["-c:a", "flac", "-sample_fmt", "s16"],
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
}


def _espeak_args(voice: str) -> list[str]:
    """Turn a spec like 'en+anika -p 60' into espeak-ng arguments, refusing anything else,
    since the spec ends up on a command line."""
    name, *options = voice.split()
    if len(options) % 2:
        raise ValueError(f"voice spec {voice!r}: options come in pairs like '-p 60'")
    args = ["-v", name]
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag not in _SPEC_OPTIONS or not value.isdigit():
            raise ValueError(f"voice spec {voice!r}: only {sorted(_SPEC_OPTIONS)} with an integer are allowed")
        args += [flag, value]
    return args


def _run(cmd: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run a tool, turning a missing binary or a failure into an error that says which one."""
    try:
        done = subprocess.run(list(cmd), input=stdin, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{cmd[0]} is not installed; sample_clips needs espeak-ng, sox and ffmpeg") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def synthesize(text: str, voice: str, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Speak one utterance, untrimmed, at the rate the pipeline works in.

    espeak-ng writes at its own rate (22.05 kHz for these voices); sox resamples rather than
    numpy so the result is properly band-limited. The text goes through a file, never argv, so it cannot be read as
    an option.
    """
    with tempfile.TemporaryDirectory(prefix="sample_clips-") as tmp:
        text_path, wav_path = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
        text_path.write_text(text, encoding="utf-8")
        _run(["espeak-ng", *_espeak_args(voice), "-f", str(text_path), "-w", str(wav_path)])
        as_float32 = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(sample_rate)]
        raw = _run(["sox", "-V1", str(wav_path), *as_float32, "-"])
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _turn_audio(text: str, voice: str) -> Audio:
    """A turn as it goes into a conversation: level-matched and cut to the speech itself."""
    audio = synthesize(text, voice)
    peak = float(np.max(np.abs(audio), initial=0.0))
    if peak == 0.0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r} with voice {voice!r}")
    loud = np.flatnonzero(np.abs(audio) > _TRIM_LEVEL * peak / _TURN_PEAK)
    trimmed: Audio = audio[loud[0] : loud[-1] + 1] * np.float32(_TURN_PEAK / peak)
    return trimmed


def speaker_name(voice: str) -> str:
    """The stable person name for a voice in VOICES, shared by every clip and the RTTM."""
    try:
        return _NAME_OF_VOICE[voice]
    except KeyError:
        raise ValueError(f"unknown voice {voice!r}; use one of {VOICES}") from None


def make_conversation(turns: list[Turn], gap_s: float = 0.4, seed: int = 0) -> tuple[Audio, list[Segment]]:
    """Join (voice, text) turns into one 16 kHz clip and say exactly who speaks when.

    Turns never overlap; each is separated (and the clip opened and closed) by gap_s of
    near-silence. ``seed`` fixes the noise floor, so the same call gives the same samples.
    """
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    if gap_s < 0:
        raise ValueError("gap_s must be >= 0")
    gap = np.zeros(round(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces: list[Audio] = [gap]
    segments: list[Segment] = []
    position = len(gap)
    for voice, text in turns:
        name = speaker_name(voice)
        speech = _turn_audio(text, voice)
        segments.append((position / SAMPLE_RATE, (position + len(speech)) / SAMPLE_RATE, name))
        pieces += [speech, gap]
        position += len(speech) + len(gap)
    audio = np.concatenate(pieces)
    noise = np.random.default_rng(seed).normal(0.0, _NOISE_RMS, len(audio))
    return (audio + noise).astype(np.float32), segments


def _encode(audio: Audio, path: Path) -> None:
    """Write a clip in the format its suffix names, through ffmpeg like real uploads would be."""
    try:
        codec = _FFMPEG_CODECS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path.name}: no encoder set up for {path.suffix!r}") from None
    source = ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "pipe:0"]
    # No encoder version tags or metadata, so the same inputs give byte-identical files.
    reproducible = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    ffmpeg = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    _run([*ffmpeg, *source, *codec, *reproducible, str(path)], stdin=audio.astype("<f4").tobytes())


def _rttm_lines(stem: str, segments: list[Segment]) -> list[str]:
    return [
        f"SPEAKER {stem} 1 {start:.3f} {end - start:.3f} <NA> <NA> {name} <NA> <NA>" for start, end, name in segments
    ]


def write_sample_set(out_dir: Path) -> list[Path]:
    """Write the demo set: three clips sharing a cast, in three formats, plus reference.rttm.

    meeting.wav has alice, bob and carol; call.mp3 bob and dave; interview.flac alice, dave
    and eric. Returns the clip paths, then the RTTM's. Same output bytes on every run.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    rttm: list[str] = []
    for seed, (filename, script) in enumerate(SCRIPTS.items()):
        audio, segments = make_conversation([(_VOICE_OF_NAME[who], text) for who, text in script], seed=seed)
        path = out_dir / filename
        _encode(audio, path)
        paths.append(path)
        rttm += _rttm_lines(path.stem, segments)
    rttm_path = out_dir / "reference.rttm"
    rttm_path.write_text("\n".join(rttm) + "\n", encoding="utf-8")
    return [*paths, rttm_path]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the speakerlink demo clips and their reference RTTM.")
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    args = parser.parse_args(argv)
    for path in write_sample_set(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
