"""Quality on the real recordings of ../shared/data, through the real server and client.

Prints per-clip DER, global DER (one mapping over all clips), linking accuracy and speaker
counts for each folder, scored as ../shared/data/README.md defines (0.25 s collar, overlap
scored); for a folder with a truth.tsv (benchmarks/condition_sets.py), also per condition class.
With --enroll, the voices of each folder's enrollment.tsv are enrolled before it is diarized
(they stay for the folders after it), and every folder's naming is counted: people named
right, and people given a name that is not theirs (in an open set, any name); with --per-clip
as well, naming counted again with each clip diarized alone, as a single call would be.
--link-threshold sets the request's cosine floor for cross-clip links (default: the engine's).
Usage: python benchmarks/quality.py [--enroll [--per-clip]] [--link-threshold C] [FOLDER ...]
(default: libri-dev-linking, ami-train).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client  # noqa: E402
from speakerlink.evaluation import Turns, hypothesis_of, main_labels, read_rttm, read_uem, score  # noqa: E402
from speakerlink.v1 import speakerlink_pb2 as pb  # noqa: E402

from benchmarks._server import ROOT, server_process  # noqa: E402


def main(folders: list[Path], enroll: bool, link_threshold: float | None = None, per_clip: bool = False) -> None:
    enrolled: set[str] = set()
    with server_process("--max-clips", "64") as (_, address), Client(address) as client:
        for folder in folders:
            if enroll and (folder / "enrollment.tsv").is_file():
                for row in csv.DictReader((folder / "enrollment.tsv").open(), delimiter="\t"):
                    client.enroll(row["reader"], [folder / row["path"]], timeout=600)
                    enrolled.add(row["reader"])
            clips = sorted((folder / "audio").glob("*.wav"))
            started = time.monotonic()
            options = {} if link_threshold is None else {"link_threshold": link_threshold}
            result = client.diarize(clips, timeout=3600, **options)
            reference, hypothesis, uem = read_rttm(folder / "all.rttm"), hypothesis_of(result), read_uem(folder / "all.uem")
            report = score(reference, hypothesis, uem)
            report.audio_seconds = result.summary.audio_seconds
            report.processing_seconds = result.summary.processing_seconds
            report.wall_seconds = time.monotonic() - started
            print(f"== {folder.name}: {len(clips)} clips")
            print(report.table())
            if (folder / "truth.tsv").is_file():
                print(by_class(reference, hypothesis, uem, folder / "truth.tsv"))
            if enroll:
                print(naming(reference, result, enrolled))
            if enroll and per_clip:
                alone = [client.diarize([clip], timeout=600, **options) for clip in clips]
                print(naming(reference, alone, enrolled, "naming, clips alone"))


def naming(reference: Turns, result: pb.DiarizationResult | list[pb.DiarizationResult], enrolled: set[str],
           title: str = "naming") -> str:
    """How many (clip, person) items of enrolled people carry their name, and how many items
    carry a name that is not theirs; `result` may be one job of every clip or a job per clip."""
    labels, named = {}, []
    for job in result if isinstance(result, list) else [result]:
        names = {s.label: s.name for s in job.speakers}
        hypothesis = hypothesis_of(job)
        found = main_labels({c: turns for c, turns in reference.items() if c in hypothesis}, hypothesis)
        labels.update(found)
        named += [names.get(label or "", "") for label in found.values()]
    right = sum(name == who for (_, who), name in zip(labels, named, strict=True) if who in enrolled)
    wrong = sum(bool(name) and name != who for (_, who), name in zip(labels, named, strict=True))
    return (f"{title:<22} {right} of {sum(who in enrolled for _, who in labels)} items of enrolled people "
            f"named right; {wrong} of {len(labels)} items given a name not theirs")


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="folders with audio/, all.rttm and all.uem")
    parser.add_argument("--enroll", action="store_true", help="enroll each folder's enrollment.tsv and count naming")
    parser.add_argument("--per-clip", action="store_true", help="with --enroll, count naming with each clip alone too")
    parser.add_argument("--link-threshold", type=float, help="the requests' link cosine floor (default: the engine's)")
    args = parser.parse_args()
    shared = ROOT.parent / "shared" / "data"
    main(args.folders or [shared / "libri-dev-linking", shared / "ami-train"], args.enroll, args.link_threshold, args.per_clip)
