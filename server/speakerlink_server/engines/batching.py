"""One device, many callers: windows from concurrent clips and jobs share forward passes.

A model is fastest on full batches, but one clip's windows of one shape rarely fill a GPU
batch. Every embed call therefore hands its windows to the embedder's batcher and
waits; the batcher's thread, the only one that runs the model, takes whatever is waiting with
the same shape (oldest first) up to the device's batch size, runs it once and hands each
caller its rows. A failed forward pass fails only the calls that were in it.

With `steady` set (on a GPU), a forward pass's rows are padded with copies of its first row
to one of a few sizes, so that the CUDA graphs the engines replay (engines/graphs.py) serve
every batch with a handful of shapes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from speakerlink_server.engines.base import Hook, noop_hook


@dataclass(eq=False)
class _Request:
    items: np.ndarray
    out: np.ndarray | None = None
    taken: int = 0
    filled: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def steady_size(rows: int, batch: int) -> int:
    """The padded row count: the next power of two up to 64, then the next multiple of 64, at most `batch`."""
    size = 1 << max(0, rows - 1).bit_length() if rows <= 64 else -(-rows // 64) * 64
    return max(rows, min(size, batch))


class MicroBatcher:
    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], batch: int, name: str, steady: bool = False) -> None:
        self._forward = forward
        self._batch = batch
        self._steady = steady
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"{name}-batcher", daemon=True)
        self._thread.start()

    def run(self, items: np.ndarray) -> np.ndarray:
        """The model's output rows for items of shape (n, ...): all share one shape; blocks until done."""
        request = _Request(items)
        if len(items) == 0:
            raise ValueError("nothing to embed")
        with self._cond:
            if self._closed:
                raise RuntimeError("the embedder is shut down")
            self._pending.append(request)
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.out is not None
        return request.out

    def run_ragged(
        self, items: list[np.ndarray], unit: int, group: int, width: int, hook: Hook = noop_hook, step: str = "embed",
    ) -> np.ndarray:
        """Output rows of shape (len(items), width) for items of different lengths (first axis).

        Items are grouped by their length rounded up to a multiple of `unit`, and each is
        repeated cyclically to that length, so a group stacks into one batch: speaker encoders
        pool mean and spread over time, which repetition leaves almost as they were and zero
        padding would not. At most `group` items go to the batcher at a time, to bound memory;
        hook(step, completed=, total=) follows them. An empty item gets a zero row."""
        out = np.zeros((len(items), width), dtype=np.float32)
        buckets: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            if len(item):
                buckets.setdefault(-(-len(item) // unit) * unit, []).append(i)
        done = 0
        for length, members in buckets.items():
            for first in range(0, len(members), group):
                picked = members[first : first + group]
                out[picked] = self.run(np.stack([items[i][np.arange(length) % len(items[i])] for i in picked]))
                done += len(picked)
                hook(step, completed=done, total=len(items))
        return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                parts = self._take()
            self._run(parts)

    def _take(self) -> list[tuple[_Request, int, int]]:
        """Rows for one batch: the oldest request's shape, from as many requests as fit."""
        shape = self._pending[0].items.shape[1:]
        parts, room = [], self._batch
        for request in self._pending:
            if request.items.shape[1:] != shape:
                continue
            count = min(room, len(request.items) - request.taken)
            parts.append((request, request.taken, request.taken + count))
            request.taken += count
            room -= count
            if room == 0:
                break
        self._pending = [r for r in self._pending if r.taken < len(r.items)]
        return parts

    def _run(self, parts: list[tuple[_Request, int, int]]) -> None:
        try:
            rows = np.concatenate([r.items[a:b] for r, a, b in parts])
            if self._steady:
                padding = steady_size(len(rows), self._batch) - len(rows)
                rows = np.concatenate([rows, np.repeat(rows[:1], padding, axis=0)])
            outputs = self._forward(rows)
            row = 0
            for request, a, b in parts:
                if request.out is None:
                    request.out = np.zeros((len(request.items), *outputs.shape[1:]), dtype=np.float32)
                request.out[a:b] = outputs[row : row + b - a]
                row += b - a
        except BaseException as exc:  # hand it to the callers; the batcher goes on
            with self._cond:
                for request, _, _ in parts:
                    request.error = exc
                    self._pending = [r for r in self._pending if r is not request]
                    request.done.set()
            return
        for request, a, b in parts:
            request.filled += b - a
            if request.filled == len(request.items) and request.error is None:
                request.done.set()
