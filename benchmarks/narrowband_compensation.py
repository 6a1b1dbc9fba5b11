"""Measure what narrowband channels do to CAM++ embeddings, and write it where the server reads
it: server/speakerlink_server/engines/campplus_narrowband.npz (pipeline.channel).

The readers are apart from every dev set: librispeech-train-clean-100 readers that are neither
in libri-dev-linking nor drawn into any condition set (benchmarks/condition_sets.default_readers).
Each utterance is cut into 1.5 s windows (the pipeline's window length) and heard
clean and through each narrowband channel below, with the product's condition simulator; an
utterance the detector in pipeline.channel misjudges in any of them is left out, so the
measurement comes from audio the server would compensate. Then:

- shift: the mean unit embedding over the narrowband channels less the clean one;
- nuisance: the top principal directions of each window's embeddings across the channels
  (after the shift) about their own mean: where channels differ for one and the same speech.

    python benchmarks/narrowband_compensation.py [--data ../shared/data] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "client"), str(ROOT / "server"), str(ROOT / "benchmarks")]
import condition_sets  # noqa: E402
from speakerlink import conditions  # noqa: E402
from speakerlink.condition_spec import parse  # noqa: E402
from speakerlink_server.engines import weights  # noqa: E402
from speakerlink_server.engines.base import ChannelCompensation, unit_rows  # noqa: E402
from speakerlink_server.engines.campplus import NARROWBAND_FILE, CamppEmbedder  # noqa: E402
from speakerlink_server.params import WindowParams  # noqa: E402
from speakerlink_server.pipeline import channel  # noqa: E402

FULL_BAND = "clean"
# Phone lines at the standard's 300-3400 Hz and at narrower and wider pass bands (a steep
# 3.4 kHz edge and a line open to 3.85 kHz pull the embeddings differently), and VoIP at the
# bit rates where Opus drops the upper band.
NARROWBAND = (
    "phone-ulaw", "phone-alaw", "phone-gsm",
    "phone-ulaw:low=100,high=3850", "phone-gsm:low=100,high=3850",
    "phone-ulaw:low=400,high=3200", "phone-gsm:low=200,high=3600",
    "voip-opus:kbps=6", "voip-opus:kbps=8",
)
# Two directions: on the folders of benchmarks/QUALITY.md, one leaves some Opus clips merged and
# four cost a meeting through GSM a point, with the rest alike.
NUISANCE_DIRECTIONS = 2
SEED = condition_sets.SEED  # the channels' draws (the shipped file was measured with it)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=NARROWBAND_FILE)
    args = parser.parse_args(argv)
    started = time.monotonic()
    readers = condition_sets.default_readers(args.data).unused
    libri = args.data / "librispeech-train-clean-100"
    embedder = CamppEmbedder(weights.load_state(weights.CAMPPLUS)[0], "cpu")
    windows: dict[str, list[np.ndarray]] = {spec: [] for spec in (FULL_BAND, *NARROWBAND)}
    step = int(WindowParams.seconds * conditions.RATE)
    try:
        for row in readers:
            heard = _heard(row["utt_id"], conditions.load(libri / row["path"]))
            if heard is None:
                continue
            items = [[(start, start + step)] for start in range(0, heard[FULL_BAND].size - step + 1, step)]
            for spec, audio in heard.items():
                if items:
                    windows[spec].append(embedder.embed(audio, items))
    finally:
        embedder.close()
    kept = len(windows[FULL_BAND])
    print(f"{len(readers)} readers in no dev set; {kept} judged right in every channel "
          f"({sum(len(w) for w in windows[FULL_BAND])} windows of 1.5 s)")
    full_band = np.concatenate(windows[FULL_BAND])
    narrow = np.stack([np.concatenate(windows[spec]) for spec in NARROWBAND])  # (channels, windows, dim)
    shift = narrow.mean(axis=(0, 1)) - full_band.mean(axis=0)
    moved = unit_rows((narrow - shift).reshape(-1, narrow.shape[-1])).reshape(narrow.shape)
    _, spread, directions = np.linalg.svd((moved - moved.mean(axis=0)).reshape(-1, narrow.shape[-1]), full_matrices=False)
    share = spread**2 / np.sum(spread**2)
    print(f"mean length: full band {np.linalg.norm(full_band.mean(axis=0)):.3f}; through each channel "
          + ", ".join(f"{spec} {np.linalg.norm(narrow[i].mean(axis=0)):.3f}" for i, spec in enumerate(NARROWBAND)))
    print(f"shift length {np.linalg.norm(shift):.3f}; the top directions of the channels' differences hold "
          + ", ".join(f"{100 * s:.1f} %" for s in share[:4]) + " of them")
    ChannelCompensation(shift, directions[:NUISANCE_DIRECTIONS]).save(args.out)
    print(f"-> {args.out} ({time.monotonic() - started:.0f} s)")
    return 0


def _heard(name: str, clean: np.ndarray) -> dict[str, np.ndarray] | None:
    """The utterance through every channel, or None where the detector misjudges one of them."""
    heard = {spec: conditions.apply(parse(spec), clean, clip=name, seed=SEED).audio for spec in (FULL_BAND, *NARROWBAND)}
    if any(channel.is_narrowband(audio) != (spec != FULL_BAND) for spec, audio in heard.items()):
        print(f"  {name}: the detector misjudges a channel; left out")
        return None
    return heard


if __name__ == "__main__":
    raise SystemExit(main())
