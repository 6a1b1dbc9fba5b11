"""Quality on the real recordings of ../shared/data, through the real server and client.

Prints per-clip DER, global DER (one mapping over all clips), linking accuracy and speaker
counts for each folder, scored as ../shared/data/README.md defines (0.25 s collar, overlap
scored); for a folder with a truth.tsv (benchmarks/condition_sets.py), also per condition class.
Usage: python benchmarks/quality.py [FOLDER ...] (default: libri-dev-linking, ami-train).
"""

from __future__ import annotations

import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client  # noqa: E402
from speakerlink.evaluation import Report, hypothesis_of, read_rttm, read_uem, score  # noqa: E402

from benchmarks._server import ROOT, server_process  # noqa: E402


def main(folders: list[Path]) -> None:
    with server_process("--max-clips", "64") as (_, address), Client(address) as client:
        for folder in folders:
            clips = sorted((folder / "audio").glob("*.wav"))
            started = time.monotonic()
            result = client.diarize(clips, timeout=3600)
            report = score(read_rttm(folder / "all.rttm"), hypothesis_of(result), read_uem(folder / "all.uem"))
            report.audio_seconds = result.summary.audio_seconds
            report.processing_seconds = result.summary.processing_seconds
            report.wall_seconds = time.monotonic() - started
            print(f"== {folder.name}: {len(clips)} clips")
            print(report.table())
            if (folder / "truth.tsv").is_file():
                print(by_class(report, folder / "truth.tsv"))


def by_class(report: Report, truth: Path) -> str:
    """Mean per-clip DER and exact speaker counts for each condition class of truth.tsv."""
    classes = {row["clip"]: row["class"] for row in csv.DictReader(truth.open(), delimiter="\t")}
    groups = defaultdict(list)
    for clip in report.clips:
        groups[classes.get(clip.clip, "?")].append(clip)
    rows = [f"{'class':<12}  clips  mean DER  exact count"]
    rows += [f"{cls:<12}  {len(clips):>5}  {100 * sum(c.der for c in clips) / len(clips):7.1f}%  "
             f"{sum(c.ref_speakers == c.hyp_speakers for c in clips)} of {len(clips)}"
             for cls, clips in groups.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    shared = ROOT.parent / "shared" / "data"
    args = [Path(a) for a in sys.argv[1:]] or [shared / "libri-dev-linking", shared / "ami-train"]
    main(args)
