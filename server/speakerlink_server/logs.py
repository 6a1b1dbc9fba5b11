"""The server's log: text for people, or JSON for a log pipeline (one object per line).

A job's worker runs inside `job_context`, so every line logged while it runs carries the job
id, its tenant and the stage it is in, without each call passing them; a line about a job
logged elsewhere passes them through `extra=`. Tokens never reach a log line: nothing logs
them, and only these fields are added.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Iterator

FIELDS = ("job_id", "tenant", "stage")  # a job's fields, where known
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The job the current thread works on: its fields, the stage updated as it moves on.
_job: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("speakerlink_job", default=None)


@contextlib.contextmanager
def job_context(job_id: str, tenant: str) -> Iterator[dict[str, str]]:
    """Lines logged by this thread inside carry the job's fields; set ["stage"] on what it
    yields as the job moves on."""
    fields = {"job_id": job_id, "tenant": tenant}
    token = _job.set(fields)
    try:
        yield fields
    finally:
        _job.reset(token)


class _JobFields(logging.Filter):
    """Adds the current job's fields to each record that does not carry its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_job.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Send the log to stderr at `level`, as `fmt` (text or json), in place of any handler before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobFields())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
