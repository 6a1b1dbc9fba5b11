"""The micro-batcher: ragged items, steady sizes, concurrent callers and failures."""

from __future__ import annotations

import numpy as np
import pytest


def test_items_of_different_lengths_batch_with_their_own_frames_repeated() -> None:
    from speakerlink_server.engines.batching import MicroBatcher

    seen: list[np.ndarray] = []
    batcher = MicroBatcher(lambda x: (seen.append(x.copy()), x[:, :2].astype(np.float32))[1], batch=8, name="test")
    try:
        items = [np.arange(3), np.arange(0), np.arange(10, 15), np.arange(20, 24)]
        out = batcher.run_ragged(items, unit=4, group=8, width=2)
    finally:
        batcher.close()
    assert out.tolist() == [[0, 1], [0, 0], [10, 11], [20, 21]]  # the empty item gets a zero row
    assert sorted(batch.shape for batch in seen) == [(1, 8), (2, 4)]  # 5 rounds up to 8, 3 and 4 to 4
    assert [0, 1, 2, 0] in [row.tolist() for batch in seen for row in batch]  # repeated, not zero-padded


def test_a_steady_batcher_pads_forward_passes_to_a_few_sizes_and_hands_back_only_real_rows() -> None:
    from speakerlink_server.engines.batching import MicroBatcher, steady_size

    assert [steady_size(n, 1024) for n in (1, 3, 64, 65, 1000)] == [1, 4, 64, 128, 1024]
    assert steady_size(700, 512) == 700  # never below the rows there are
    seen: list[int] = []
    batcher = MicroBatcher(lambda x: (seen.append(len(x)), x * 2.0)[1], batch=256, name="test", steady=True)
    try:
        items = np.arange(70 * 3, dtype=np.float32).reshape(70, 3)
        out = batcher.run(items)
    finally:
        batcher.close()
    assert seen == [128] and np.array_equal(out, items * 2.0)


def test_batcher_merges_concurrent_callers_and_keeps_their_rows_apart() -> None:
    import threading
    import time

    from speakerlink_server.engines.batching import MicroBatcher

    sizes = []
    entered, gate = threading.Event(), threading.Event()

    def forward(batch: np.ndarray) -> np.ndarray:
        entered.set()
        gate.wait(5)  # let every other caller queue up before the first pass ends
        sizes.append(len(batch))
        return batch[:, :2].astype(np.float32) * 2

    batcher = MicroBatcher(forward, batch=8, name="test")
    results: dict[int, np.ndarray] = {}

    def call(k: int, rows: int) -> None:
        results[k] = batcher.run(np.full((rows, 3), float(k)))

    threads = [threading.Thread(target=call, args=(k, rows)) for k, rows in enumerate([3, 5, 6, 1])]
    threads[0].start()
    assert entered.wait(10)  # the first call alone is in the (blocked) first pass
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(batcher._pending) < 3:  # the rest wait together
        assert time.monotonic() < deadline
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join(10)
    batcher.close()
    assert sum(sizes) == 15 and max(sizes) <= 8 and len(sizes) == 3  # merged, never over the batch size
    for k, rows in enumerate([3, 5, 6, 1]):
        assert results[k].shape == (rows, 2) and np.all(results[k] == 2 * k)


def test_batcher_hands_a_failure_to_its_callers_and_goes_on() -> None:
    from speakerlink_server.engines.batching import MicroBatcher

    def forward(batch: np.ndarray) -> np.ndarray:
        if np.any(batch < 0):
            raise RuntimeError("device fault")
        return batch.astype(np.float32)

    batcher = MicroBatcher(forward, batch=4, name="test")
    with pytest.raises(RuntimeError, match="device fault"):
        batcher.run(-np.ones((6, 2)))
    assert np.all(batcher.run(np.ones((6, 2))) == 1)
    batcher.close()
