"""The render pool's transport: jobs and results over a helper's socket, read and written by
the event loop, several in flight, each result matched to its job; big frames both ways; a
helper's death or close never leaves a call waiting, a process or a thread behind."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import threading

import pytest

from relay.config.settings import EmailAction, RenderSettings
from relay.render.pipe import Helper, PoolUnavailable, spawn_helper
from relay.render.pool import RenderJob, RenderPool, start_helper
from tests.support.data import body, sample

MiB = 1024 * 1024


class Unpicklable(Exception):
    """An exception whose instances cannot be pickled (a lock among its arguments)."""

    def __init__(self) -> None:
        super().__init__("cannot cross", threading.Lock())


def fail_unpicklably(_: object) -> None:
    raise Unpicklable


def fail(message: str) -> None:
    raise ValueError(message)


def helper_on(loop: asyncio.AbstractEventLoop) -> Helper:
    helper = spawn_helper(start_helper, (0,))
    helper.attach(loop)
    return helper


async def test_many_jobs_in_flight_each_get_their_own_result_big_ones_included() -> None:
    helper = helper_on(asyncio.get_running_loop())
    try:
        payloads = [os.urandom(n) for n in (0, 1, 5, 4096, 70_000, 300_000)] * 6
        payloads += [os.urandom(3 * MiB), os.urandom(5 * MiB)]  # over any socket buffer
        results = await asyncio.gather(*(helper.call(bytes, p) for p in payloads))
        assert results == payloads
        assert helper.in_flight == 0
        # A big answer to a small job, and a small answer to a big one.
        assert await helper.call(bytes, 6 * MiB) == bytes(6 * MiB)
        assert await helper.call(len, os.urandom(4 * MiB)) == 4 * MiB
    finally:
        helper.close()
    assert not helper.process.is_alive()
    assert multiprocessing.active_children() == []


async def test_an_error_in_the_helper_is_raised_to_its_caller_only() -> None:
    helper = helper_on(asyncio.get_running_loop())
    try:
        failing = asyncio.ensure_future(helper.call(fail, "bad template"))
        fine = asyncio.ensure_future(helper.call(bytes, b"fine"))
        with pytest.raises(ValueError, match="bad template"):
            await failing
        assert await fine == b"fine"
        # An exception that cannot cross the pipe arrives as a RuntimeError naming it.
        with pytest.raises(RuntimeError, match="Unpicklable"):
            await helper.call(fail_unpicklably, None)
        assert helper.call_blocking(bytes, b"still serving") == b"still serving"
        with pytest.raises(ValueError, match="blocking"):
            helper.call_blocking(fail, "blocking")
    finally:
        helper.close()
    assert multiprocessing.active_children() == []


async def test_a_killed_helper_fails_every_call_in_flight_and_later_ones() -> None:
    helper = helper_on(asyncio.get_running_loop())
    try:
        assert await helper.call(bytes, b"up") == b"up"
        # Jobs bigger than the socket's buffer, still being written when the helper dies.
        calls = [asyncio.ensure_future(helper.call(bytes, os.urandom(2 * MiB))) for _ in range(6)]
        await asyncio.sleep(0)
        helper.process.kill()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, PoolUnavailable) for o in outcomes), outcomes
        assert helper.dead and helper.noticed
        assert helper.in_flight == 0
        with pytest.raises(PoolUnavailable):
            await helper.call(bytes, b"after")
        with pytest.raises(PoolUnavailable):
            helper.call_blocking(bytes, b"after")
    finally:
        helper.close()
        helper.close()  # twice is harmless
    assert multiprocessing.active_children() == []


async def test_closing_from_another_thread_while_calls_wait_ends_them_and_the_helper() -> None:
    """As the worker closes the pool when the relay stops (``asyncio.to_thread``): the loop
    lets go of the socket, the waiting calls fall back, the helper ends; no thread is left."""
    threads = set(threading.enumerate())
    helper = helper_on(asyncio.get_running_loop())
    assert await helper.call(bytes, b"up") == b"up"
    payloads = [os.urandom(MiB) for _ in range(4)]
    calls = [asyncio.ensure_future(helper.call(bytes, p)) for p in payloads]
    await asyncio.sleep(0)
    await asyncio.to_thread(helper.close)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for payload, outcome in zip(payloads, outcomes, strict=True):
        assert outcome == payload or isinstance(outcome, PoolUnavailable)
    assert helper.in_flight == 0
    assert not helper.process.is_alive()
    assert multiprocessing.active_children() == []
    left = {t for t in threading.enumerate() if t not in threads}
    assert all(t.name.startswith("asyncio_") for t in left), left  # the loop's own executor


def test_a_helper_used_only_from_threads_checks_and_closes_without_a_loop() -> None:
    helper = spawn_helper(start_helper, (0,))
    try:
        answers: list[bytes] = []
        worker = threading.Thread(target=lambda: answers.append(helper.call_blocking(bytes, 3)))
        worker.start()
        worker.join()
        assert answers == [bytes(3)]
        assert helper.loop is None
    finally:
        helper.close()
    assert multiprocessing.active_children() == []


def test_a_pool_renders_on_a_new_event_loop_after_the_first_one_closed() -> None:
    """As bench scripts and tests run one ``asyncio.run`` after another with one pool: the
    helper's socket is read by whichever loop renders next, once the one before is closed."""
    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(sample("v1")), "normal",
        EmailAction(type="email", to=["sales@shop.test"]), "<m@shop.test>",
    )  # fmt: skip
    pool = RenderPool(1)
    try:
        first = asyncio.run(pool.render(job))
        (helper,) = multiprocessing.active_children()
        second = asyncio.run(pool.render(job))
        assert multiprocessing.active_children() == [helper]  # the same helper, not a new one
        assert first.message["Subject"] == second.message["Subject"]
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


class Unrebuildable(Exception):
    """Pickles, but cannot be unpickled: its arguments are not those of its ``__init__``."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"{message} (line {line})")


def fail_unrebuildably(_: object) -> None:
    raise Unrebuildable("bad", 3)


def refuse(message: str) -> None:
    raise ValueError(message)


class Unloadable:
    """Pickles in the helper; unpickling it (in the relay) raises."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return refuse, ("cannot be loaded",)


def unloadable(_: object) -> Unloadable:
    return Unloadable()


async def test_an_exception_that_cannot_be_rebuilt_arrives_as_a_runtime_error() -> None:
    helper = helper_on(asyncio.get_running_loop())
    try:
        with pytest.raises(RuntimeError, match="Unrebuildable: bad"):
            await helper.call(fail_unrebuildably, None)
        with pytest.raises(RuntimeError, match="Unrebuildable: bad"):
            helper.call_blocking(fail_unrebuildably, None)
        assert await helper.call(bytes, b"still serving") == b"still serving"
    finally:
        helper.close()
    assert multiprocessing.active_children() == []


async def test_an_answer_the_relay_cannot_unpickle_fails_the_calls_and_ends_the_helper() -> None:
    """The answer crossed the socket but cannot be read here: every call in flight falls
    back (none waits for ever), and the helper, of no more use, is killed and reaped."""
    helper = helper_on(asyncio.get_running_loop())
    try:
        unreadable = asyncio.ensure_future(helper.call(unloadable, None))
        waiting = asyncio.ensure_future(helper.call(bytes, MiB))  # answered after it
        outcomes = await asyncio.gather(unreadable, waiting, return_exceptions=True)
        assert all(isinstance(o, PoolUnavailable) for o in outcomes), outcomes
        assert helper.dead and helper.in_flight == 0
    finally:
        helper.close()
    assert not helper.process.is_alive()
    assert multiprocessing.active_children() == []


async def test_dead_helpers_release_their_descriptors_without_the_garbage_collector() -> None:
    """A call that fell back must not tie its helper into a reference cycle (exception,
    traceback, the call's frame, its future): each helper's sockets and pipes would then stay
    open until the cyclic collector happens to run."""
    loop = asyncio.get_running_loop()
    first = helper_on(loop)  # what the first helper starts for good: the resource tracker
    assert await first.call(bytes, 1) == bytes(1)
    first.close()
    descriptors = len(os.listdir("/proc/self/fd"))
    gc.disable()
    try:
        for _ in range(10):
            helper = helper_on(loop)
            call = asyncio.ensure_future(helper.call(bytes, MiB))
            await asyncio.sleep(0)
            helper.process.kill()
            with pytest.raises(PoolUnavailable):
                await call
            helper.close()
        del helper, call
        # Ten helpers held two descriptors each; a thread of the loop's executor may still
        # be letting go of the last one.
        assert len(os.listdir("/proc/self/fd")) - descriptors < 5
    finally:
        gc.enable()
    assert multiprocessing.active_children() == []


def test_a_helper_moved_to_a_new_event_loop_is_still_ended_when_it_hangs() -> None:
    """The watchdog timer armed on a loop that closed never runs: the next loop arms its own."""
    helper = spawn_helper(start_helper, (0,))
    left: list[asyncio.Future[object]] = []

    async def first() -> None:
        helper.attach(asyncio.get_running_loop())
        helper.deadline = 60.0
        left.append(asyncio.ensure_future(helper.call(bytes, 1)))  # in flight when it ends
        await asyncio.sleep(0)

    async def second() -> None:
        helper.attach(asyncio.get_running_loop())
        helper.deadline = 0.5
        os.kill(helper.process.pid, signal.SIGSTOP)
        with pytest.raises(PoolUnavailable):
            await helper.call(bytes, 2)

    try:
        asyncio.run(first())
        asyncio.run(second())
        assert helper.dead
        assert [f.cancelled() for f in left] == [True]
    finally:
        helper.close()
    assert multiprocessing.active_children() == []
