"""The form of a job id, made by the server and checked wherever an id comes from outside: the
server lets nothing else reach its store, its files or an error message, and the web page
checks the id in a page's address before it calls."""

from __future__ import annotations

import re
import uuid

JOB_ID = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> str:
    """A fresh id of the form JOB_ID: a random uuid4 in hex."""
    return uuid.uuid4().hex
