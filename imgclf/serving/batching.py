"""Batched inference inside the server: concurrent requests share one forward pass.

Each request puts its decoded images on an asyncio queue and waits; one worker takes whatever is
queued (up to ``max_batch`` images), runs the model once in a worker thread and hands each request
its rows. A lone request is not delayed: the worker never waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

__all__ = ["Batcher", "bucket_sizes", "padded"]


def bucket_sizes(max_batch: int) -> list[int]:
    """Batch sizes a forward pass is padded to: powers of two up to ``max_batch`` (and it).

    Args:
        max_batch: the largest batch.
    """
    sizes = [1 << i for i in range(max_batch.bit_length()) if 1 << i < max_batch]
    return [*sizes, max_batch]


def padded(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, max_batch: int
) -> np.ndarray:
    """``predict(x)`` with ``x`` padded (by repeating its last image) to the next bucket size, so
    the model sees a handful of shapes and TensorFlow traces each once instead of once per batch
    size.

    Args:
        predict: the blocking model call.
        x: ``(n, …)`` inputs, ``n <= max_batch``.
        max_batch: the largest batch.
    """
    n = len(x)
    size = next(b for b in bucket_sizes(max_batch) if b >= n)
    if size > n:
        x = np.concatenate([x, np.repeat(x[-1:], size - n, axis=0)])
    return predict(x)[:n]


class Batcher:
    """Group queued image arrays into one call of ``predict``.

    Args:
        predict: ``(n, size, size, 3)`` pixels → ``(n, num_classes)`` probabilities (a blocking
        call). max_batch: most images per forward pass.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int = 32):
        self.predict, self.max_batch = predict, max_batch
        self.batches = self.images = (
            0  # forward passes and images served (GET /health reports them)
        )
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Stop the worker."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities of ``pixels`` (``(k, size, size, 3)``), computed in a shared batch."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((pixels, future))
        return await future

    async def _work(self) -> None:
        while True:
            group = [await self._queue.get()]
            n = len(group[0][0])
            while n < self.max_batch and not self._queue.empty():
                group.append(self._queue.get_nowait())
                n += len(group[-1][0])
            try:
                probs = await asyncio.to_thread(self.predict, np.concatenate([g[0] for g in group]))
            except Exception as exc:  # noqa: BLE001  (handed to every waiting request)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.images += n
            start = 0
            for pixels, future in group:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(probs[start : start + len(pixels)])
                start += len(pixels)
