"""Helpers for tests that start real processes: two writers of one thing, one caught inside its write.

A plain module (not a fixture), as ``synthetic`` is, so the tests of different files share it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any


def first_then_second(ctx: BaseContext, target: Callable[..., None], args: tuple[Any, ...], started_s: float,
                      reach_s: float, finish_s: float) -> list[tuple[Any, ...]]:
    """Run ``target(*args, results, started, go)`` in one process and, once it has set ``started`` (it is inside
    its write), ``target(*args, results)`` in a second; after ``reach_s`` seconds (the second reaches the lock or
    the folder) set ``go``. Return what each put on ``results``, in order; both are killed at the end, whatever
    happens, so a hung process never keeps pytest waiting."""
    results, started, go = ctx.Queue(), ctx.Event(), ctx.Event()
    first = ctx.Process(target=target, args=(*args, results, started, go))
    second = ctx.Process(target=target, args=(*args, results))
    try:
        first.start()
        assert started.wait(started_s), "the first process never reached its write"
        second.start()
        time.sleep(reach_s)
        go.set()
        return [results.get(timeout=finish_s) for _ in range(2)]
    finally:
        for process in (first, second):
            if process.pid is not None:
                process.kill()
                process.join(10)
