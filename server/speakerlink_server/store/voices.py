"""Each tenant's voice library (F13): named voices, kept as the embeddings of each enrollment
(never audio), from whichever engine embedded it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.database import Conflict, Database
from speakerlink_server.pipeline.linking import Voiceprint, pooled
from speakerlink_server.pipeline.recognize import Voice
from speakerlink_server.store.encoding import blob, timestamp, vector


class NameTaken(Exception):
    """Another voice of the tenant already has the name."""


@dataclass(frozen=True)
class VoiceRecord:
    name: str
    created_at: float
    updated_at: float
    speech_seconds: float
    enrollments: int
    engines: tuple[str, ...]

    def message(self) -> pb.Voice:
        voice = pb.Voice(name=self.name, speech_seconds=self.speech_seconds, enrollments=self.enrollments,
                         engines=self.engines)
        voice.created_at.CopyFrom(timestamp(self.created_at))
        voice.updated_at.CopyFrom(timestamp(self.updated_at))
        return voice


class VoiceLibrary:
    def __init__(self, database: Database) -> None:
        self._db = database

    def enroll(self, tenant: str, name: str, engine: str, voice: Voiceprint, lines: np.ndarray | None = None) -> VoiceRecord:
        """Add an enrollment to the voice `name`, creating it if new; `lines`, its line prints
        (enrollment.line_prints), shape (lines, dim)."""
        now = time.time()
        with self._db.transaction():
            self._db.execute("INSERT INTO voices (tenant, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
                             " ON CONFLICT (tenant, name) DO UPDATE SET updated_at = excluded.updated_at",
                             (tenant, name, now, now))
            self._db.execute("INSERT INTO voiceprints (tenant, name, engine, embedding, speech_seconds, line_prints,"
                             " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (tenant, name, engine, blob(voice.embedding), voice.speech_seconds,
                              blob(lines) if lines is not None and len(lines) else None, now))
        return self.get(tenant, name)

    def get(self, tenant: str, name: str) -> VoiceRecord | None:
        found = self.records(tenant, name)
        return found[0] if found else None

    def records(self, tenant: str, name: str | None = None) -> list[VoiceRecord]:
        """The tenant's voices by name (or the one called `name`)."""
        only = "AND v.name = ?" if name is not None else ""
        rows = self._db.execute(
            "SELECT v.name, v.created_at, v.updated_at, COALESCE(SUM(p.speech_seconds), 0), COUNT(p.created_at),"
            f" {self._db.group_concat('p.engine')} FROM voices v LEFT JOIN voiceprints p"
            " ON p.tenant = v.tenant AND p.name = v.name"
            f" WHERE v.tenant = ? {only} GROUP BY v.tenant, v.name ORDER BY v.name",
            (tenant, *(() if name is None else (name,))),
        ).fetchall()
        return [VoiceRecord(n, c, u, speech, count, tuple(sorted((engines or "").split(",")) if engines else ()))
                for n, c, u, speech, count, engines in rows]

    def voiceprints(self, tenant: str, engine: str) -> list[Voice]:
        """Each of the tenant's voices as one embedding from `engine`, pooled from its
        enrollments (pipeline.linking.pooled), so that more audio added to a name steadies its
        voice, with every line print of every enrollment."""
        rows = self._db.execute("SELECT name, embedding, speech_seconds, line_prints FROM voiceprints"
                                " WHERE tenant = ? AND engine = ? ORDER BY name", (tenant, engine)).fetchall()
        enrollments: dict[str, list[Voiceprint]] = {}
        lines: dict[str, list[np.ndarray]] = {}
        for name, embedding, speech, rows_of_lines in rows:
            heard = vector(embedding)
            enrollments.setdefault(name, []).append(Voiceprint(heard, speech))
            if rows_of_lines is not None:
                lines.setdefault(name, []).append(vector(rows_of_lines).reshape(-1, heard.size))
        voices = {name: pooled(prints) for name, prints in enrollments.items()}
        return [Voice(name, v.embedding, v.speech_seconds, np.concatenate(lines[name]) if name in lines else None)
                for name, v in voices.items()]

    def rename(self, tenant: str, name: str, new_name: str) -> bool:
        """False when there is no voice `name`; raises NameTaken when `new_name` is."""
        try:
            return self._db.execute("UPDATE voices SET name = ?, updated_at = ? WHERE tenant = ? AND name = ?",
                                    (new_name, time.time(), tenant, name)).rowcount > 0
        except Conflict:
            raise NameTaken(new_name) from None

    def delete(self, tenant: str, name: str) -> bool:
        """Removes the voice and every embedding of it."""
        return self._db.execute("DELETE FROM voices WHERE tenant = ? AND name = ?", (tenant, name)).rowcount > 0
