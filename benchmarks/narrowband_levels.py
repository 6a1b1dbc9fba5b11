"""The narrowband detector's level (pipeline.channel.upper_band_level) through each condition.

Sources: ami-train and libri-dev-linking clips, and the librispeech-train-clean-100 utterances
of the readers in no dev set (those benchmarks/narrowband_compensation.py measures on). Each is
passed through full-band conditions (clean, rooms, noise, Opus and MP3 at their higher rates) and
narrowband ones (G.711, GSM, Opus at 6-8 kbps); the table gives each condition's lowest and
highest level per source and how many the bar calls narrowband, and the detector's own time.

    python benchmarks/narrowband_levels.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "client"), str(ROOT / "server"), str(ROOT / "benchmarks")]
import condition_sets  # noqa: E402
from speakerlink import conditions  # noqa: E402
from speakerlink.condition_spec import parse  # noqa: E402
from speakerlink_server.pipeline import channel  # noqa: E402

FULL_BAND = ("clean", "near-room", "far-room", "noise-pink:snr=5", "voip-opus:kbps=12", "voip-opus:kbps=16",
             "mp3:kbps=24", "mp3:kbps=16")
NARROWBAND = ("phone-ulaw", "phone-alaw", "phone-gsm", "voip-opus:kbps=6", "voip-opus:kbps=8")
SEED = condition_sets.SEED  # the channels' draws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    libri = args.data / "librispeech-train-clean-100"
    readers = condition_sets.default_readers(args.data).unused
    sources = {
        "librispeech": [(r["utt_id"], conditions.load(libri / r["path"])) for r in readers],
        "ami-train": [(p.stem, conditions.load(p)) for p in sorted((args.data / "ami-train" / "audio").glob("*.wav"))],
        "libri-dev-linking": [(p.stem, conditions.load(p)) for p in sorted((args.data / "libri-dev-linking" / "audio").glob("*.wav"))],
    }
    print(f"bar: narrowband below {channel.NARROWBAND_BELOW_DB:.1f} dB; " + ", ".join(f"{k} {len(v)}" for k, v in sources.items()))
    print(f"{'condition':20s}" + "".join(f"{name:>32s}" for name in sources))
    detector_seconds = audio_seconds = 0.0
    for spec in (*FULL_BAND, *NARROWBAND):
        cells = []
        for clips in sources.values():
            levels = []
            for name, clean in clips:
                audio = conditions.apply(parse(spec), clean, clip=name, seed=SEED).audio
                started = time.perf_counter()
                levels.append(channel.upper_band_level(audio))
                detector_seconds += time.perf_counter() - started
                audio_seconds += audio.size / conditions.RATE
            known = [level for level in levels if level is not None]
            narrow = sum(level < channel.NARROWBAND_BELOW_DB for level in known)
            cells.append(f"{min(known):6.1f} .. {max(known):5.1f} dB, {narrow:3d} narrow")
        print(f"{spec:20s}" + "".join(f"{cell:>32s}" for cell in cells), flush=True)
    print(f"detector: {detector_seconds:.2f} s for {audio_seconds:.0f} s of audio "
          f"({600 * detector_seconds / audio_seconds:.3f} s per 10 minutes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
