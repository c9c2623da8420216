"""The engine's thread pool across a fork (RQ runs each job in a forked work-horse)."""

from __future__ import annotations

import multiprocessing
import threading

from gpnn.core import threads


def squares_together(pieces: list[int]) -> list[int]:
    """Squares computed on as many threads at once as there are pieces (each
    waits for all the others), so the pool has started every thread."""
    barrier = threading.Barrier(len(pieces), timeout=30)

    def square_once_all_started(x: int) -> int:
        barrier.wait()
        return x * x

    return threads.map_in_threads(square_once_all_started, pieces)


def squares_in_threads(queue) -> None:
    queue.put(squares_together([1, 2, 3]))


def test_pool_works_in_a_forked_child():
    assert squares_together([1, 2, 3]) == [1, 4, 9]  # the parent's pool, every thread idle
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=squares_in_threads, args=(queue,))
    child.start()
    # A child stuck on the parent's dead threads would never answer.
    assert queue.get(timeout=30) == [1, 4, 9]
    child.join(timeout=30)
    assert child.exitcode == 0


def test_row_bands_cover_the_rows(monkeypatch):
    monkeypatch.setattr(threads, "thread_count", lambda: 3)
    assert threads.row_bands(10, 2) == [(0, 3), (3, 6), (6, 10)]
    assert threads.row_bands(5, 4) == [(0, 5)]
    assert threads.row_bands(0, 4) == [(0, 0)]
