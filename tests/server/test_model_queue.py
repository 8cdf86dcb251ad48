"""The model queue: bounded (429 with Retry-After past `size`), round-robin fair across clients, slots
reserved before work and freed when unused or cancelled."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from almanac.core.errors import OverloadedError
from almanac.server.chat.model_queue import ModelQueue


def _gated(queue: ModelQueue) -> threading.Event:
    """Occupy the single worker until the returned event is set."""
    gate = threading.Event()
    queue.submit(gate.wait, client="gate")
    return gate


def _job(order: list[str], name: str) -> Callable[[], str]:
    def run() -> str:
        order.append(name)
        return name

    return run


def test_waiting_jobs_are_served_round_robin_across_clients() -> None:
    queue = ModelQueue(size=10)
    order: list[str] = []
    gate = _gated(queue)
    futures = [queue.submit(_job(order, f"A{i}"), client="key:A") for i in range(1, 6)]
    futures.append(queue.submit(_job(order, "B1"), client="key:B"))
    gate.set()
    assert [f.result(timeout=5) for f in futures][-1] == "B1"
    assert order == ["A1", "B1", "A2", "A3", "A4", "A5"]  # B second, not sixth
    queue.close()


def test_a_full_queue_refuses_with_retry_after_and_frees_slots() -> None:
    queue = ModelQueue(size=2)
    gate = _gated(queue)
    queue.submit(lambda: 1, client="a")
    with pytest.raises(OverloadedError) as refused:
        queue.submit(lambda: 2, client="b")
    assert refused.value.retry_after >= 1
    gate.set()
    assert queue.drain(5) and queue.depth == 0
    queue.close()


def test_a_reserved_slot_counts_until_used_or_released() -> None:
    queue = ModelQueue(size=1)
    with queue.reserve("a") as slot:
        assert queue.depth == 1
        with pytest.raises(OverloadedError):
            queue.reserve("b")
    assert queue.depth == 0  # left unused: freed on exit
    slot = queue.reserve("a")
    assert slot.submit(lambda: 42).result(timeout=5) == 42
    slot.release()  # no-op once used
    with pytest.raises(RuntimeError):
        slot.submit(lambda: 0)
    assert queue.drain(5) and queue.depth == 0
    queue.close()


def test_a_cancelled_waiting_job_frees_its_slot_and_never_runs() -> None:
    queue = ModelQueue(size=3)
    order: list[str] = []
    gate = _gated(queue)
    dropped = queue.submit(_job(order, "dropped"), client="a")
    kept = queue.submit(_job(order, "kept"), client="a")
    assert dropped.cancel() and queue.depth == 2
    gate.set()
    assert kept.result(timeout=5) == "kept" and order == ["kept"]
    queue.close()
    with pytest.raises(OverloadedError):
        queue.submit(lambda: 0)


def test_a_failing_job_reports_its_error_and_frees_its_slot() -> None:
    queue = ModelQueue(size=1)

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        queue.submit(fail).result(timeout=5)
    assert queue.drain(5) and queue.depth == 0
    queue.close()
