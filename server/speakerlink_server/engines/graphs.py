"""Forward passes replayed from CUDA graphs, so a GPU is not held back by Python.

A CAM++ forward pass launches some 1,300 kernels. On an H200 a pass took 27-30 ms whatever the
batch from 1 window to 256, nearly all of it launching, and a job makes dozens of such passes;
from a graph it took 3.1 ms for 1 window and 20 ms for 256 (benchmarks/gpu_speed.py). A CUDA graph records
one pass's kernels for one input shape and replays them in a single launch. The batchers pad
batches to a few sizes (engines/batching.py) and items come in a few lengths, so a handful of
graphs serve every job; they are made on first use, up to LIMIT of them, least recently used
first out. All share one memory pool: only the batcher's thread replays them, one at a time,
and each output is copied out at once. A shape whose capture fails runs eagerly from then on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

LIMIT = 64


class GraphedForward:
    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        self._forward = forward
        self._name = name
        self._graphs: OrderedDict[tuple, tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor] | None] = OrderedDict()
        self._pool = torch.cuda.graph_pool_handle()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """forward(x), for x on the GPU; the output is the caller's own."""
        key = (tuple(x.shape), x.dtype)
        if key not in self._graphs:
            if len(self._graphs) >= LIMIT:
                self._graphs.popitem(last=False)
            self._graphs[key] = self._capture(x)
        self._graphs.move_to_end(key)
        entry = self._graphs[key]
        if entry is None:
            return self._forward(x)
        static_in, graph, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor] | None:
        static_in = x.clone()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._forward(static_in)  # the libraries' plans and workspaces are made outside the capture
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                static_out = self._forward(static_in)
        except RuntimeError as exc:
            log.warning("%s: no CUDA graph for shape %s (%s); it runs without one", self._name, tuple(x.shape), exc)
            return None
        return static_in, graph, static_out


def device_forward(run: Callable[[torch.Tensor], torch.Tensor], device: str, name: str) -> Callable[[np.ndarray], np.ndarray]:
    """A batcher's forward pass: `run` on the device, replayed from CUDA graphs on a GPU."""
    on_device = GraphedForward(run, name) if device.startswith("cuda") else run

    def forward(items: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return on_device(torch.from_numpy(items).to(device)).cpu().numpy()

    return forward
