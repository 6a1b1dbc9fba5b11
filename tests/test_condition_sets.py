"""The dev-set builder (benchmarks/condition_sets.py) on a tiny set from ../shared/data."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from speakerlink import conditions
from speakerlink.evaluation import read_rttm, read_uem

from benchmarks import condition_sets

CLASSES = {"clean": "clean", "phone-gsm": "phone-gsm"}
TINY = {"classes": CLASSES, "clips_per_class": 1, "open_per_class": 1, "real_clips": 1, "babble_readers": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not all((SHARED_DATA / name).is_dir() for name in ("librispeech-train-clean-100", "libri-dev-linking", "ami-train")):
        pytest.skip(f"{SHARED_DATA} is absent: the dev sets are built from ../shared/data beside the checkout")
    out = tmp_path_factory.mktemp("sets") / "condition-sets"
    condition_sets.build(SHARED_DATA, out, seed=5, **TINY)
    return out


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(), delimiter="\t"))


def test_linked_readers_are_heard_through_two_classes_and_enrolled_from_other_audio(built: Path) -> None:
    folder = built / "linking"
    classes = defaultdict(list)
    for row in rows(folder / "truth.tsv"):
        for reader in row["speakers"].split(","):
            classes[reader].append(row["class"])
    assert len(classes) >= 2 and all(sorted(c) == sorted(CLASSES) for c in classes.values())
    enrolled = {row["reader"]: row for row in rows(folder / "enrollment.tsv")}
    assert set(enrolled) == set(classes)
    used = defaultdict(list)
    for row in rows(folder / "sources.tsv"):
        used[row["speaker_id"]].append((float(row["src_start_s"]), float(row["src_end_s"])))
    for reader, row in enrolled.items():
        start, end = float(row["src_start_s"]), float(row["src_end_s"])
        assert all(e <= start or s >= end for s, e in used[reader])  # no audio shared with the clips
        assert len(conditions.load(folder / row["path"])) / conditions.RATE >= condition_sets.ENROLL_SPEECH_S
    check_folder(folder)


def test_open_voices_are_one_time_and_nobody_else(built: Path) -> None:
    clips_of = defaultdict(list)
    for row in rows(built / "open" / "truth.tsv"):
        for reader in row["speakers"].split(","):
            clips_of[reader].append(row["clip"])
    assert all(len(clips) == 1 for clips in clips_of.values())
    linked = {row["reader"] for row in rows(built / "linking" / "enrollment.tsv")}
    held_out = {w for turns in read_rttm(SHARED_DATA / "libri-dev-linking" / "all.rttm").values() for *_, w in turns}
    assert not set(clips_of) & (linked | held_out)
    assert {row["class"] for row in rows(built / "open" / "truth.tsv")} == set(CLASSES)
    check_folder(built / "open")


@pytest.mark.parametrize(("name", "source", "clip"), [("ami", "ami-train", "trn00"), ("libri", "libri-dev-linking", "dlk00")])
def test_real_folders_through_each_class_keep_their_reference(built: Path, name: str, source: str, clip: str) -> None:
    assert sorted(p.name for p in (built / name).iterdir()) == sorted([*CLASSES, "mixed"])
    original = read_rttm(SHARED_DATA / source / "all.rttm")
    for folder in (built / name).iterdir():
        reference = read_rttm(folder / "all.rttm")
        assert list(reference) == [clip] and reference[clip] == original[clip]
        check_folder(folder)


def test_the_same_seed_builds_the_same_sets(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    condition_sets.build(SHARED_DATA, again, seed=5, **TINY)
    files = sorted(p.relative_to(built) for p in built.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((built / f).read_bytes() == (again / f).read_bytes() for f in files)


def check_folder(folder: Path) -> None:
    """Every clip has its reference, its scored span is the clip, and every turn lies inside it."""
    clips = {p.stem: len(conditions.load(p)) / conditions.RATE for p in (folder / "audio").glob("*.wav")}
    reference, uem = read_rttm(folder / "all.rttm"), read_uem(folder / "all.uem")
    assert set(reference) == set(uem) == set(clips) == {row["clip"] for row in rows(folder / "truth.tsv")}
    for clip, seconds in clips.items():
        assert uem[clip][0] == 0.0 and abs(uem[clip][1] - seconds) < 0.01
        assert all(0 <= s < e <= seconds for s, e, _ in reference[clip])
