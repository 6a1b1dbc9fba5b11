"""Uploaded files waiting for their job.

Each upload belongs to the token that sent it (kept as a hash, never the token): another
token cannot submit it. One never submitted is deleted once it is older than `max_age`, by a
janitor the app runs on a timer, so a page left open for weeks holds no abandoned audio.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

MAX_NAME_BYTES = 255  # what most file systems take, and the server's limit on a clip's name


@dataclass(frozen=True)
class Upload:
    path: Path
    owner: str  # sha256 of the token that sent it ("" hashed when there is none)
    created: float  # time.monotonic()


def owner(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a clip's file name, or None when it can."""
    if name in ("", ".", ".."):
        return f"{name!r} is not a file name"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"the file name is {len(name.encode())} bytes long; at most {MAX_NAME_BYTES}"
    if any(c in "/\\" or unicodedata.category(c) in ("Cc", "Cf") for c in name):
        return "the file name holds a slash or an invisible control character"
    return None


class Spool:
    def __init__(self, max_age: float) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="speakerlink-web-"))
        self.max_age = max_age
        self._uploads: dict[str, Upload] = {}

    def place(self, name: str) -> tuple[str, Path]:
        """A new upload id and the path to write its file to (kept once `keep` is called)."""
        upload_id = uuid.uuid4().hex
        folder = self.folder / upload_id
        folder.mkdir()
        return upload_id, folder / name

    def keep(self, upload_id: str, path: Path, token: str) -> None:
        self._uploads[upload_id] = Upload(path, owner(token), time.monotonic())

    def take(self, ids: list[str], token: str) -> list[Path] | None:
        """The files of `ids`, which leave the spool's list (the caller deletes them once sent);
        None, taking nothing, when any is unknown, expired or another token's."""
        found = [self._uploads.get(i) for i in ids]
        if any(u is None or u.owner != owner(token) for u in found):
            return None
        for i in ids:
            del self._uploads[i]
        return [u.path for u in found]

    def discard(self, upload_id: str) -> None:
        self._uploads.pop(upload_id, None)
        shutil.rmtree(self.folder / upload_id, ignore_errors=True)

    def expire(self) -> int:
        """Delete the uploads older than max_age; how many went."""
        cutoff = time.monotonic() - self.max_age
        old = [i for i, u in self._uploads.items() if u.created < cutoff]
        for upload_id in old:
            self.discard(upload_id)
        return len(old)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
