"""The engine's own thread pool, for work split by rows.

NumPy's copies, gathers and arithmetic and FAISS's searches release the GIL,
so Python threads run them in parallel. Each pool thread runs FAISS on one
OpenMP thread: the work is already split, and two levels of threads on a
machine with few cores wait on each other (see `gpnn.core.search`).

The thread count is FAISS's OpenMP setting, so ``OMP_NUM_THREADS`` (which
`gpnn.worker.runner.WorkerPool` sets per worker) governs both.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import faiss

Piece = TypeVar("Piece")
Result = TypeVar("Result")

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _forget_pools() -> None:
    """In a forked child (an RQ work-horse) the parent's pool threads do not
    exist: start afresh rather than queue work no thread will take."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools)


def thread_count() -> int:
    """Threads the engine may use: FAISS's OpenMP setting (``OMP_NUM_THREADS``)."""
    return faiss.omp_get_max_threads()


def row_bands(rows: int, minimum: int) -> list[tuple[int, int]]:
    """Split `rows` into at most `thread_count()` contiguous (start, stop) bands
    of at least `minimum` rows each (one band when there are too few rows)."""
    bands = max(1, min(thread_count(), rows // max(1, minimum)))
    edges = [rows * i // bands for i in range(bands + 1)]
    return list(itertools.pairwise(edges))


def map_in_threads(function: Callable[[Piece], Result], pieces: Iterable[Piece]) -> list[Result]:
    """``[function(p) for p in pieces]``, run on the engine's pool (in this
    thread when there is a single piece)."""
    pieces = list(pieces)
    if len(pieces) < 2:
        return [function(piece) for piece in pieces]
    return list(_pool(len(pieces)).map(function, pieces))


def _pool(threads: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(
                threads,
                thread_name_prefix="gpnn-engine",
                initializer=faiss.omp_set_num_threads,
                initargs=(1,),
            )
        return _pools[threads]
