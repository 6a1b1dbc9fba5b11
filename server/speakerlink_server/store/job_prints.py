"""Each finished job's speaker embeddings, by global label, so that a job's speaker can be
enrolled later (EnrollFromJob) without its audio; they go with their job (a foreign key)."""

from __future__ import annotations

from speakerlink_server.database import Database
from speakerlink_server.pipeline.linking import Voiceprint
from speakerlink_server.store.encoding import blob, vector


class JobVoiceprints:
    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, job_id: str, engine: str, prints: dict[str, Voiceprint]) -> None:
        """Each global speaker's voiceprint of a finished job, by label."""
        self._db.executemany(
            "INSERT INTO job_prints (job_id, label, engine, embedding, speech_seconds, phone_embedding)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, label) DO UPDATE SET engine = excluded.engine,"
            " embedding = excluded.embedding, speech_seconds = excluded.speech_seconds,"
            " phone_embedding = excluded.phone_embedding",
            [(job_id, label, engine, blob(p.embedding), p.speech_seconds, None if p.phone is None else blob(p.phone))
             for label, p in prints.items()],
        )

    def get(self, job_id: str, label: str) -> tuple[str, Voiceprint] | None:
        """(engine, voiceprint) of one of a job's speakers."""
        row = self._db.execute("SELECT engine, embedding, speech_seconds, phone_embedding FROM job_prints"
                               " WHERE job_id = ? AND label = ?", (job_id, label)).fetchone()
        if row is None:
            return None
        engine, embedding, speech, phone = row
        return engine, Voiceprint(vector(embedding), speech, phone=None if phone is None else vector(phone))
