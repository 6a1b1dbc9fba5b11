"""What the server keeps in its database (database.py: SQLite in the data dir, or PostgreSQL),
so that it outlives connections and restarts: one small class per aggregate, all over one
`Database`, so that one's transaction takes in another's writes (quotas.py admits a job and
counts its audio together; a result and its speakers' embeddings land together).

- jobs.py: `Jobs`, job records and results, and the queue's counts;
- leases.py: `Leases`, workers' claims on jobs and what a worker writes while it holds one;
- ledger.py: `AudioLedger`, each tenant's audio, for the daily quota;
- voices.py: `VoiceLibrary`, each tenant's named voices;
- job_prints.py: `JobVoiceprints`, finished jobs' speaker embeddings, to enroll from later.
"""

from __future__ import annotations

from dataclasses import dataclass

from speakerlink_server.database import Database
from speakerlink_server.store.job_prints import JobVoiceprints
from speakerlink_server.store.jobs import Jobs
from speakerlink_server.store.leases import Leases
from speakerlink_server.store.ledger import AudioLedger
from speakerlink_server.store.voices import VoiceLibrary


@dataclass(frozen=True)
class Store:
    database: Database
    jobs: Jobs
    leases: Leases
    ledger: AudioLedger
    voices: VoiceLibrary
    prints: JobVoiceprints

    @classmethod
    def over(cls, database: Database) -> Store:
        """Every aggregate over `database`, the one connection their transactions share."""
        jobs, prints = Jobs(database), JobVoiceprints(database)
        return cls(database, jobs, Leases(database, jobs, prints), AudioLedger(database), VoiceLibrary(database), prints)

    def close(self) -> None:
        self.database.close()
