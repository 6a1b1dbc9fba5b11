"""Each finished job's speaker embeddings, by global label, so that a job's speaker can be
enrolled later (EnrollFromJob) without its audio; they go with their job (a foreign key)."""

from __future__ import annotations

import numpy as np

from speakerlink_server.database import Database
from speakerlink_server.store.encoding import blob, vector


class JobVoiceprints:
    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, job_id: str, engine: str, prints: dict[str, tuple[np.ndarray, float]]) -> None:
        """Each global speaker's (embedding, speech seconds) of a finished job, by label."""
        self._db.executemany(
            "INSERT INTO job_prints (job_id, label, engine, embedding, speech_seconds) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (job_id, label) DO UPDATE SET engine = excluded.engine, embedding = excluded.embedding,"
            " speech_seconds = excluded.speech_seconds",
            [(job_id, label, engine, blob(embedding), speech) for label, (embedding, speech) in prints.items()],
        )

    def get(self, job_id: str, label: str) -> tuple[str, np.ndarray, float] | None:
        """(engine, embedding, speech seconds) of one of a job's speakers."""
        row = self._db.execute("SELECT engine, embedding, speech_seconds FROM job_prints WHERE job_id = ? AND label = ?",
                               (job_id, label)).fetchone()
        return None if row is None else (row[0], vector(row[1]), row[2])
