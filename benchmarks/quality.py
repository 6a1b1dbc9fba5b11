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
from speakerlink.evaluation import Turns, hypothesis_of, read_rttm, read_uem, score  # noqa: E402

from benchmarks._server import ROOT, server_process  # noqa: E402


def main(folders: list[Path]) -> None:
    with server_process("--max-clips", "64") as (_, address), Client(address) as client:
        for folder in folders:
            clips = sorted((folder / "audio").glob("*.wav"))
            started = time.monotonic()
            result = client.diarize(clips, timeout=3600)
            reference, hypothesis, uem = read_rttm(folder / "all.rttm"), hypothesis_of(result), read_uem(folder / "all.uem")
            report = score(reference, hypothesis, uem)
            report.audio_seconds = result.summary.audio_seconds
            report.processing_seconds = result.summary.processing_seconds
            report.wall_seconds = time.monotonic() - started
            print(f"== {folder.name}: {len(clips)} clips")
            print(report.table())
            if (folder / "truth.tsv").is_file():
                print(by_class(reference, hypothesis, uem, folder / "truth.tsv"))


def by_class(reference: Turns, hypothesis: Turns, uem: dict[str, tuple[float, float]], truth: Path) -> str:
    """Each condition class of truth.tsv scored on its own clips: pooled and mean per-clip DER,
    exact speaker counts."""
    classes = defaultdict(dict)
    for row in csv.DictReader(truth.open(), delimiter="\t"):
        classes[row["class"]][row["clip"]] = uem[row["clip"]]
    rows = [f"{'class':<12}  clips  per-clip DER (pooled, mean)  exact count"]
    for cls, spans in classes.items():
        report = score(reference, hypothesis, spans)
        mean = sum(c.der for c in report.clips) / len(report.clips)
        rows.append(f"{cls:<12}  {len(spans):>5}  {100 * report.clip_der:12.1f}% {100 * mean:7.1f}%       "
                    f"{report.exact_count_clips} of {len(spans)}")
    return "\n".join(rows)


if __name__ == "__main__":
    shared = ROOT.parent / "shared" / "data"
    args = [Path(a) for a in sys.argv[1:]] or [shared / "libri-dev-linking", shared / "ami-train"]
    main(args)
