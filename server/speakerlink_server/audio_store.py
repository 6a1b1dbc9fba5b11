"""Where uploaded clips wait for a worker: the server's own data dir, or the shared database.

Uploads are written to the job's folder in the data dir, whatever the store. A lone server
runs them from there (FolderAudio). Servers sharing PostgreSQL copy them into the database in
CHUNK_BYTES rows (DatabaseAudio), so that whichever worker claims the job can write them back
to its own folder; both ways go a chunk at a time, so memory stays bounded by a chunk whatever
the clips' size.
"""

from __future__ import annotations

import abc
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.database import Database

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# Chunks with no job this long after they were written are left from a server killed between
# storing an upload and its job: far longer than storing one takes.
ORPHAN_SECONDS = 3600.0


class AudioStore(abc.ABC):
    def __init__(self, jobs_dir: Path) -> None:
        self._jobs_dir = jobs_dir

    def folder(self, job_id: str) -> Path:
        """Where the job's clips are received, and where its worker reads them."""
        return self._jobs_dir / job_id / "audio"

    @abc.abstractmethod
    def keep(self, job_id: str, files: Sequence[Path]) -> None:
        """Make the received files (in clip order) readable by every worker."""

    @abc.abstractmethod
    def fetch(self, job_id: str, files: Sequence[Path]) -> bool:
        """Put the job's clips at `files` on this machine; False if its audio is gone."""

    @abc.abstractmethod
    def put_down(self, job_id: str) -> None:
        """This worker is done with the job's files, though the job may run again."""

    def drop(self, job_id: str) -> None:
        """The job ended or was deleted: remove its audio everywhere."""
        shutil.rmtree(self._jobs_dir / job_id, ignore_errors=True)

    @abc.abstractmethod
    def forget_orphans(self) -> None:
        """Remove stored audio that no job will read: a server killed while storing an upload
        leaves some behind."""

    def sweep(self, keep: Iterable[str]) -> None:
        """At start: remove what a server killed outright left in the jobs folder (uploads cut
        short, audio of jobs that had just ended, folders half deleted), except `keep`'s."""
        kept = set(keep)
        for entry in self._jobs_dir.iterdir():
            if entry.name in kept:
                continue
            log.info("removing %r, left by the previous run", entry.name)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


class FolderAudio(AudioStore):
    """The clips stay where they were received, until their job ends."""

    def keep(self, job_id: str, files: Sequence[Path]) -> None:
        pass

    def fetch(self, job_id: str, files: Sequence[Path]) -> bool:
        return all(path.is_file() for path in files)

    def put_down(self, job_id: str) -> None:
        pass  # the files stay for the job's next run

    def forget_orphans(self) -> None:
        pass  # only this server writes here, and its start's sweep removes what a crash left


class DatabaseAudio(AudioStore):
    """The clips live in the database's audio_chunks table; folders here are scratch copies."""

    def __init__(self, jobs_dir: Path, database: Database) -> None:
        super().__init__(jobs_dir)
        self._db = database

    def keep(self, job_id: str, files: Sequence[Path]) -> None:
        now = time.time()
        for clip, path in enumerate(files):
            with open(path, "rb") as source:
                seq = 0
                while chunk := source.read(CHUNK_BYTES):
                    self._db.execute("INSERT INTO audio_chunks (job_id, clip, seq, data, created_at) VALUES (?, ?, ?, ?, ?)",
                                     (job_id, clip, seq, chunk, now))
                    seq += 1
        shutil.rmtree(self._jobs_dir / job_id, ignore_errors=True)

    def fetch(self, job_id: str, files: Sequence[Path]) -> bool:
        for clip, path in enumerate(files):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                seq = 0
                while row := self._db.execute("SELECT data FROM audio_chunks WHERE job_id = ? AND clip = ? AND seq = ?",
                                              (job_id, clip, seq)).fetchone():
                    out.write(row[0])
                    seq += 1
            if seq == 0:
                return False
        return True

    def put_down(self, job_id: str) -> None:
        shutil.rmtree(self._jobs_dir / job_id, ignore_errors=True)

    def drop(self, job_id: str) -> None:
        super().drop(job_id)  # first: the files here go even while the database is away (orphaned chunks expire)
        self._db.execute("DELETE FROM audio_chunks WHERE job_id = ?", (job_id,))

    def sweep(self, keep: Iterable[str]) -> None:
        super().sweep(())  # every folder here is a scratch copy
        self.forget_orphans()

    def forget_orphans(self) -> None:
        self._db.execute(
            "DELETE FROM audio_chunks WHERE created_at < ? AND job_id NOT IN (SELECT id FROM jobs WHERE state IN (?, ?))",
            (time.time() - ORPHAN_SECONDS, pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING),
        )
