"""Progress display for the CLI: a redrawn bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from speakerlink.text import printable
from speakerlink.v1 import speakerlink_pb2 as pb


class ProgressDisplay:
    def __init__(self, stream: TextIO = sys.stderr, clip_names: list[str] | None = None) -> None:
        self._out = stream
        self._tty = stream.isatty()
        self._names = [printable(name) for name in clip_names or []]
        self._last_line = ""
        self._last_plain: tuple[str, int] | None = None
        self._where = ("", 0.0)  # stage and percent last shown
        self._waiting_since: float | None = None

    def upload(self, sent: int, total: int) -> None:
        percent = 100.0 * sent / total if total else 100.0
        self._show("upload", percent, f"{sent / 1e6:.1f} of {total / 1e6:.1f} MB", plain_step=25)

    def progress(self, progress: pb.Progress) -> None:
        where = ""
        if 0 <= progress.clip_index < len(self._names):
            where = f"[{progress.clip_index + 1}/{len(self._names)}] "
        self._waiting_since = None
        self._show(progress.stage, progress.percent, where + printable(progress.message), plain_step=10)

    def waiting(self, why: str) -> None:
        """Why nothing moves (a server gone away), in place of the message on the progress
        line, with how long it has lasted; a plain stream hears it once."""
        stage, percent = self._where
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
            if not self._tty:
                self._out.write(f"{stage} {percent:.0f}% {why}\n".lstrip())
                self._out.flush()
        if self._tty:
            self._show(stage, percent, f"{why} ({time.monotonic() - self._waiting_since:.0f} s)", plain_step=10)

    def note(self, text: str) -> None:
        """A line of its own, below the bar (which is redrawn on the next update)."""
        self.close()
        self._out.write(text + "\n")
        self._out.flush()

    def status(self, text: str) -> None:
        """One line redrawn in place on a terminal (a live stream's state), nothing elsewhere."""
        if self._tty:
            line = text[: shutil.get_terminal_size((80, 20)).columns - 1]
            self._out.write("\r" + line + " " * max(0, len(self._last_line) - len(line)))
            self._out.flush()
            self._last_line = line

    def clear(self) -> None:
        """Take the redrawn line away, so that lines printed next start clean."""
        if self._tty and self._last_line:
            self._out.write("\r" + " " * len(self._last_line) + "\r")
            self._out.flush()
        self._last_line = ""

    def close(self) -> None:
        if self._tty and self._last_line:
            self._out.write("\n")
            self._out.flush()
        self._last_line = ""

    def _show(self, stage: str, percent: float, message: str, plain_step: int) -> None:
        self._where = (stage, percent)
        if self._tty:
            width = shutil.get_terminal_size((80, 20)).columns
            filled = int(percent / 100 * 24)
            line = f"[{'#' * filled}{'.' * (24 - filled)}] {percent:5.1f}% {stage:<8} {message}"
            line = line[: width - 1]
            self._out.write("\r" + line + " " * max(0, len(self._last_line) - len(line)))
            self._last_line = line
        else:
            key = (stage, int(percent // plain_step))
            if key == self._last_plain:
                return
            self._last_plain = key
            self._out.write(f"{stage} {percent:.0f}% {message}\n")
        self._out.flush()
