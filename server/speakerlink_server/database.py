"""The database under the store: SQLite in the data dir (the default), or PostgreSQL (F16).

The store's SQL is written once, with `?` placeholders, for both; what differs (column
types, placeholders, string aggregation, how a transaction starts) stays in here. One
connection behind a lock is plenty for the write rate of a diarization service (a few
progress updates per second).

The schema is an ordered list of migrations; `schema_version` records how many have run, so
a start runs the rest, and refuses a database that a newer speakerlink has migrated further.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Each step's DDL, with the column types that differ between the two as {blob} and {real}.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        state       INTEGER NOT NULL,
        created_at  {real} NOT NULL,
        updated_at  {real} NOT NULL,
        expires_at  {real} NOT NULL,
        config      {blob} NOT NULL,
        progress    {blob} NOT NULL,
        result      {blob},
        error       {blob}
    );
    CREATE INDEX jobs_expires_at ON jobs (expires_at);
    """,
    # Tenants (F15): a job from before them belongs to no tenant ('').
    """
    ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
    CREATE INDEX jobs_tenant_created ON jobs (tenant, created_at);
    """,
    # Audio each tenant's accepted jobs declared, for the daily quota (quotas.py): kept apart
    # from the jobs, so that deleting a job gives none of it back.
    """
    CREATE TABLE usage (
        tenant         TEXT NOT NULL,
        at             {real} NOT NULL,
        audio_seconds  {real} NOT NULL
    );
    CREATE INDEX usage_tenant_at ON usage (tenant, at);
    """,
    # The voice library (F13): each tenant's named voices, as embeddings from each enrollment
    # (never audio), and each finished job's speaker embeddings, so that a job's speaker can be
    # enrolled later; those go with their job.
    """
    CREATE TABLE voices (
        tenant      TEXT NOT NULL,
        name        TEXT NOT NULL,
        created_at  {real} NOT NULL,
        updated_at  {real} NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    CREATE TABLE voiceprints (
        tenant          TEXT NOT NULL,
        name            TEXT NOT NULL,
        engine          TEXT NOT NULL,
        embedding       {blob} NOT NULL,
        speech_seconds  {real} NOT NULL,
        created_at      {real} NOT NULL,
        FOREIGN KEY (tenant, name) REFERENCES voices (tenant, name) ON UPDATE CASCADE ON DELETE CASCADE
    );
    CREATE INDEX voiceprints_voice ON voiceprints (tenant, name);
    CREATE TABLE job_prints (
        job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        label           TEXT NOT NULL,
        engine          TEXT NOT NULL,
        embedding       {blob} NOT NULL,
        speech_seconds  {real} NOT NULL,
        PRIMARY KEY (job_id, label)
    );
    """,
    # Scale-out (F16): any worker claims a job under a lease it renews (`lease_owner` names
    # the process, `lease_until` is when another may take the job over); a cancel asked for at
    # any front end waits in `cancel_requested` for the job's worker. Uploaded audio lives in
    # the database in chunks where workers share it (audio_store.py), keyed by job before
    # the job's row exists, so no foreign key: the job's end or the janitor removes it.
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until {real};
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_state_created ON jobs (state, created_at);
    CREATE TABLE audio_chunks (
        job_id      TEXT NOT NULL,
        clip        INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        data        {blob} NOT NULL,
        created_at  {real} NOT NULL,
        PRIMARY KEY (job_id, clip, seq)
    );
    """,
    # A job's TTL counts from its end (store/jobs.py): when it ended, NULL while it waits or runs;
    # jobs that ended before this column took their last update as their end.
    """
    ALTER TABLE jobs ADD COLUMN finished_at {real};
    UPDATE jobs SET finished_at = updated_at WHERE state IN (3, 4, 5);
    """,
    # A voice as phone lines carry it, so that one enrolled in full band is also known through a
    # phone line (pipeline.recognize): each enrollment's line prints (enrollment.line_prints, rows
    # of the embedding's size), and each job speaker's phone print (pipeline.matched_band). NULL
    # where none was taken (enrollments from before these columns, most full-band job speakers).
    """
    ALTER TABLE voiceprints ADD COLUMN line_prints {blob};
    ALTER TABLE job_prints ADD COLUMN phone_embedding {blob};
    """,
)


MIGRATION_LOCK = 0x5EA4E9  # the advisory lock PostgreSQL servers take to migrate, one at a time


class SchemaTooNew(Exception):
    """The database was migrated by a newer speakerlink than this one."""


class Conflict(Exception):
    """A write broke a uniqueness rule (a name already taken)."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached now. It carries no driver text (which names the
    database's address): the server logs that, and callers answer with a typed error."""

    def __init__(self) -> None:
        super().__init__("the database is unreachable")


@dataclass(frozen=True)
class Rows:
    rows: list[tuple]
    rowcount: int

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple]:
        return self.rows


class Database(abc.ABC):
    """One connection, used by one thread at a time; `transaction()` holds it for several statements."""

    types = {"blob": "BLOB", "real": "REAL"}
    # Appended to the SELECT that picks a job to claim: PostgreSQL's row locks let workers
    # claim side by side, each skipping rows another is taking; SQLite has one writer at a time.
    skip_locked = ""
    shared = False  # whether servers other than this one may use the database

    def __init__(self, conflicts: tuple[type[Exception], ...]) -> None:
        self._lock = threading.RLock()
        self._conflicts = conflicts  # the driver's errors for a broken uniqueness rule
        self._depth = 0  # transactions open, one inside another
        self._caller = threading.local()  # .fast: this thread fails at once while the database is away

    @contextlib.contextmanager
    def failing_fast(self) -> Iterator[None]:
        """Inside, a database that is away raises DatabaseUnavailable at once on this thread,
        rather than being waited for: a client's call answers UNAVAILABLE instead of hanging."""
        before = getattr(self._caller, "fast", False)
        self._caller.fast = True
        try:
            yield
        finally:
            self._caller.fast = before

    def _fast(self) -> bool:
        return getattr(self._caller, "fast", False)

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The connection's lock."""
        with self._lock:
            yield

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows:
        with self._held():
            try:
                return self._execute(sql, params)
            except self._conflicts as exc:
                raise Conflict(str(exc)) from None

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self.transaction():
            for params in rows:
                self.execute(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside, from this thread, commit together; one inside another joins it."""
        with self._held():
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._execute("ROLLBACK", ())
                raise
            self._depth = 0
            self._execute("COMMIT", ())

    @abc.abstractmethod
    def lock(self, key: str) -> None:
        """Inside a transaction: wait until no other transaction holds `key`, and hold it to the end."""

    def group_concat(self, expression: str) -> str:
        """SQL joining the distinct values of `expression` with commas."""
        return f"GROUP_CONCAT(DISTINCT {expression})"

    def migrate(self) -> None:
        """Run the migrations this database has not had yet, each in its own transaction."""
        with self._lock:
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", ())
            row = self._execute("SELECT MAX(version) FROM schema_version", ()).fetchone()
            done = row[0] if row and row[0] is not None else self._unversioned()
            if done > len(MIGRATIONS):
                raise SchemaTooNew(f"the database is at schema version {done}; this speakerlink knows "
                                   f"{len(MIGRATIONS)}: run the newer speakerlink, or give another database")
            for version in range(done + 1, len(MIGRATIONS) + 1):
                with self.transaction():
                    for statement in MIGRATIONS[version - 1].format(**self.types).split(";"):
                        if statement.strip():
                            self._execute(statement, ())
                    self._execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _unversioned(self) -> int:
        """Migrations run before versions were recorded: none, or a first jobs table."""
        return 0

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[object]) -> Rows: ...

    @abc.abstractmethod
    def _begin(self) -> None: ...


class SQLiteDatabase(Database):
    def __init__(self, path: Path) -> None:
        super().__init__((sqlite3.IntegrityError,))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def _execute(self, sql: str, params: Sequence[object]) -> Rows:
        cursor = self._db.execute(sql, tuple(params))
        return Rows(cursor.fetchall(), cursor.rowcount)

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def lock(self, key: str) -> None:
        pass  # a transaction here holds the database's one write lock from its start (BEGIN IMMEDIATE)

    def _unversioned(self) -> int:
        # A data dir from before versions has the first schema's jobs table alone.
        found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
        return 1 if found else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresDatabase(Database):
    """A lost connection (the database restarting, a failover) is opened again and the
    statement sent again, unless it was inside a transaction, which the database has then
    rolled back; so a job goes on across a database restart. A statement whose answer was lost
    may so run twice: the store's writes either set values or insert rows under a key, which a
    second run repeats or refuses.

    While the database is away, a thread waits for it up to `reconnect_seconds` from the
    moment it went away, trying every RECONNECT_PAUSE_S; a thread `failing_fast` (a client's
    call) tries at most once per pause and waits for no other. Past that, DatabaseUnavailable."""

    types = {"blob": "BYTEA", "real": "DOUBLE PRECISION"}
    skip_locked = " FOR UPDATE SKIP LOCKED"
    shared = True
    RECONNECT_PAUSE_S = 0.5
    CONNECT_TIMEOUT_S = 5  # a host that does not answer at all is given up after this long
    LOCK_POLL_S = 0.05  # how often a thread failing fast, waiting for the connection, checks it is not away

    def __init__(self, url: str, reconnect_seconds: float = 60.0) -> None:
        try:
            import psycopg
        except ImportError as err:
            raise RuntimeError(f"a PostgreSQL database needs psycopg ({err}): pip install 'speakerlink[postgres]'") from None
        super().__init__((psycopg.errors.IntegrityError,))
        self._psycopg, self._url = psycopg, url
        self._reconnect_seconds = reconnect_seconds
        self._db = self._connect()
        self._in_transaction = False
        self._away_since: float | None = None  # time.monotonic() when the database went away
        self._tried = 0.0  # time.monotonic() of the last attempt to connect

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        if not self._fast():
            with self._lock:
                yield
            return
        while not self._lock.acquire(timeout=self.LOCK_POLL_S):
            if self._away_since is not None:  # another thread is waiting for the database
                raise DatabaseUnavailable()
        try:
            yield
        finally:
            self._lock.release()

    def _connect(self):  # -> psycopg.Connection
        return self._psycopg.connect(self._url, autocommit=True, connect_timeout=self.CONNECT_TIMEOUT_S)

    def _execute(self, sql: str, params: Sequence[object]) -> Rows:
        try:
            rows = self._send(sql, params)
        except self._psycopg.OperationalError as exc:
            if not self._db.broken:
                self._in_transaction = False
                raise
            if sql == "ROLLBACK":  # the database rolled the transaction back as the connection broke
                return Rows([], 0)
            if self._in_transaction:
                self._in_transaction = False
                log.warning("the database connection broke inside a transaction: %s", exc)
                raise DatabaseUnavailable() from None
            self._reconnect()
            rows = self._send(sql, params)
        if sql in ("COMMIT", "ROLLBACK"):
            self._in_transaction = False
        return rows

    def _send(self, sql: str, params: Sequence[object]) -> Rows:
        # The store's SQL has no literal ? or %: every ? is a placeholder.
        cursor = self._db.execute(sql.replace("?", "%s"), tuple(params))
        rows = cursor.fetchall() if cursor.description is not None else []
        return Rows([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows], cursor.rowcount)

    def _reconnect(self) -> None:
        while True:
            now = time.monotonic()
            if self._away_since is None or now - self._tried >= self.RECONNECT_PAUSE_S or not self._fast():
                self._tried = now
                try:
                    self._db = self._connect()
                except self._psycopg.OperationalError as exc:
                    if self._away_since is None:
                        self._away_since = now
                        log.error("the database is unreachable; jobs wait for it: %s", exc)
                else:
                    log.warning("reconnected to the database%s", "" if self._away_since is None else
                                f", back after {time.monotonic() - self._away_since:.1f} s")
                    self._away_since = None
                    return
            if self._fast() or time.monotonic() >= self._away_since + self._reconnect_seconds:
                raise DatabaseUnavailable()
            time.sleep(self.RECONNECT_PAUSE_S)

    def _begin(self) -> None:
        self._execute("BEGIN", ())
        self._in_transaction = True

    def group_concat(self, expression: str) -> str:
        return f"string_agg(DISTINCT {expression}, ',')"

    def lock(self, key: str) -> None:
        self._execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    def migrate(self) -> None:
        """Under a lock of the whole database: replicas starting together migrate it once."""
        with self._lock:
            self._execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK,))
            try:
                super().migrate()
            finally:
                self._execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_database(url: str, default_path: Path, reconnect_seconds: float = 60.0) -> Database:
    """`url` "" is SQLite at `default_path`; postgresql://… is that PostgreSQL database, which
    is waited for up to `reconnect_seconds` when it goes away."""
    if url.startswith(("postgresql://", "postgres://")):
        database: Database = PostgresDatabase(url, reconnect_seconds)
    elif not url:
        database = SQLiteDatabase(default_path)
    else:
        raise ValueError(f"database must be a postgresql:// URL, or empty for SQLite in the data dir; got {url[:40]!r}")
    database.migrate()
    return database
