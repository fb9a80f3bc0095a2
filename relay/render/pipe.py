"""The render pool's transport: one helper process, its jobs written and its results read by the
event loop over a socket pair (length-prefixed pickles, several jobs in flight, results matched
by id), and a second socket pair for blocking calls from other threads (the template check)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import pickle
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("relay.renderpool")  # the published logger name (docs/operations.md)

# The frames of multiprocessing.connection.Connection.send_bytes, which the helper reads and
# writes: a signed 32-bit big-endian length, or -1 and an unsigned 64-bit one.
SHORT = struct.Struct("!i")
LONG = struct.Struct("!iQ")
READ_SIZE = 256 * 1024  # bytes asked for per read; a result of several MiB takes a few reads
READS_PER_WAKE = 16  # then the loop runs other callbacks before reading more
CLOSE_WAIT_SECONDS = 5.0  # for the event loop to let go of a helper's socket when closing
EXIT_WAIT_SECONDS = 2.0  # for a closed helper to end by itself (then it is killed)


class PoolUnavailable(Exception):
    """The helper processes cannot render right now; render in-process instead."""


def frame(payload: bytes) -> bytes:
    n = len(payload)
    return SHORT.pack(n) if n < 0x7FFFFFFF else LONG.pack(-1, n)


def serve(
    jobs: multiprocessing.connection.Connection,
    control: multiprocessing.connection.Connection,
    start: Callable[..., None],
    args: Sequence[Any],
) -> None:
    """The helper process's main loop: ``start(*args)``, then for each ``(id, function,
    argument)`` read from either connection, one at a time, ``(id, True, result)`` or ``(id,
    False, exception)`` written back on the same connection. Ends when the relay closes either
    connection (or its process ends)."""
    start(*args)
    # One selector for the helper's life: multiprocessing.connection.wait makes and fills a
    # new one on every call, ~30 us per job.
    with selectors.DefaultSelector() as selector:
        for connection in (jobs, control):
            selector.register(connection, selectors.EVENT_READ)
        _serve(selector)


def _serve(selector: selectors.BaseSelector) -> None:
    """``serve``'s loop over the connections registered with ``selector``: each that is
    readable (or at end-of-file) gives its next call, which is answered on it."""
    while True:
        for key, _ in selector.select():
            connection = key.fileobj
            assert isinstance(connection, multiprocessing.connection.Connection)
            try:
                job_id, function, argument = pickle.loads(connection.recv_bytes())  # noqa: S301 -- the relay's own frames
            except (EOFError, OSError):
                return
            try:
                answer = (job_id, True, function(argument))
            except Exception as exc:
                answer = (job_id, False, exc)
            try:
                data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
                if not answer[1]:
                    # An exception can pickle and still not unpickle (an ``__init__`` whose
                    # arguments are not its ``args``): that would make the relay give up on
                    # this helper, so it is tried here, where failing costs one job only.
                    pickle.loads(data)  # noqa: S301 -- just written
            except Exception as exc:
                failure = RuntimeError(f"{type(answer[2]).__name__}: {answer[2]} ({exc})")
                data = pickle.dumps((job_id, False, failure), pickle.HIGHEST_PROTOCOL)
            try:
                connection.send_bytes(data)
            except OSError:
                return


class Helper:
    """One helper process. ``call`` runs on an event loop, which writes the job to the jobs
    socket (buffering what the socket does not take yet) and reads every result as it arrives
    (``add_reader``), so several jobs wait in the helper's socket while it renders and no
    thread of the relay's process takes part. ``call_blocking`` runs on any other thread,
    over the control connection, one call at a time.

    When the helper dies (its socket reaches end-of-file or breaks), every call then in flight
    raises ``PoolUnavailable``, at once; ``dead`` is set and the helper is reaped."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        jobs: socket.socket,
        control: multiprocessing.connection.Connection,
    ) -> None:
        self.process = process
        self._jobs = jobs
        self._control = control
        self._control_lock = threading.Lock()
        # One thread at a time waits for the process: of two, one would reap it and the
        # other find no child (ECHILD), take it for alive and kill a PID that may be reused.
        self._reap_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)  # this helper's job ids, on its loop only (0: blocking)
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._closed = False  # the jobs socket, closed by whichever thread let go of it
        self.dead = False
        self.noticed = False  # its death made a call fall back (PoolUnavailable)
        # Seconds the helper may stay silent with calls in flight before it counts as hung
        # (then ``abandon``): one timer per helper, not one per call, re-armed while answers
        # come, so a long queue of jobs that are being answered is never taken for a hang
        # (and a hang is noticed one to two deadlines after the last answer).
        self.deadline: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._heard = False  # an answer came since the watchdog was armed

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def usable_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``call`` can run on ``loop``: attached to it already, or to none (or to a
        loop that was closed, which let go of the socket with it)."""
        if self.dead:
            return False
        return self.loop is None or self.loop is loop or self.loop.is_closed()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is loop:
            return
        if self.loop is not None:  # closed, with whatever was in flight on it
            self._pending.clear()
            self._inbox.clear()
            self._outbox.clear()
            self._watchdog = None  # a timer of the closed loop, which will never run
        self.loop = loop
        self._jobs.setblocking(False)
        loop.add_reader(self._jobs.fileno(), self._readable)

    async def call(self, function: Callable[[Any], Any], argument: Any) -> Any:
        """``function(argument)`` in the helper, on the event loop this helper is attached to."""
        if self.dead:
            raise PoolUnavailable
        assert self.loop is not None
        job_id = next(self._ids)
        payload = pickle.dumps((job_id, function, argument), pickle.HIGHEST_PROTOCOL)
        future: asyncio.Future[Any] = self.loop.create_future()
        self._pending[job_id] = future
        if self._watchdog is None and self.deadline is not None:
            self._heard = False
            self._watchdog = self.loop.call_later(self.deadline, self._watch)
        try:
            self._send(payload)
            return await future
        finally:
            self._pending.pop(job_id, None)
            # An exception raised here holds this frame in its traceback, and the future
            # holds the exception: without this, that cycle (and the helper, its process and
            # descriptors with it) would wait for the cyclic garbage collector.
            del future

    def call_blocking(
        self, function: Callable[[Any], Any], argument: Any, deadline: float | None = None
    ) -> Any:
        """``function(argument)`` in the helper, waiting for it on this thread; ``PoolUnavailable``
        if the helper dies meanwhile, or does not answer within ``deadline`` seconds (then it
        is killed: a helper that hangs is of no more use)."""
        with self._control_lock:
            try:
                data = pickle.dumps((0, function, argument), pickle.HIGHEST_PROTOCOL)
                self._control.send_bytes(data)
                if deadline is not None and not self._control.poll(deadline):
                    log.warning("a render helper did not answer within %g s; ending it", deadline)
                    with contextlib.suppress(OSError, ValueError):
                        self.process.kill()
                    raise OSError
                _, ok, value = pickle.loads(self._control.recv_bytes())  # noqa: S301 -- see serve
            except (EOFError, OSError):
                self.dead = self.noticed = True
                raise PoolUnavailable from None
        if ok:
            return value
        raise value

    # The event loop's side of the jobs socket.

    def _send(self, payload: bytes) -> None:
        if self._outbox:
            self._outbox += frame(payload)
            self._outbox += payload
            return
        header = frame(payload)
        try:
            sent = self._jobs.sendmsg([header, payload])
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._lost()
            return
        rest = len(header) + len(payload) - sent
        if rest:
            whole = header + payload if sent < len(header) else payload
            skip = sent if sent < len(header) else sent - len(header)
            self._outbox += memoryview(whole)[skip:]
            assert self.loop is not None
            self.loop.add_writer(self._jobs.fileno(), self._writable)

    def _writable(self) -> None:
        try:
            sent = self._jobs.send(self._outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        del self._outbox[:sent]
        if not self._outbox:
            assert self.loop is not None
            self.loop.remove_writer(self._jobs.fileno())

    def _readable(self) -> None:
        for _ in range(READS_PER_WAKE):
            try:
                chunk = self._jobs.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._lost()
                return
            self._inbox += chunk
            if len(chunk) < READ_SIZE:
                break
        self._answers()

    def _answers(self) -> None:
        inbox = self._inbox
        start = 0
        while len(inbox) - start >= SHORT.size:
            (size,) = SHORT.unpack_from(inbox, start)
            head = SHORT.size
            if size == -1:
                if len(inbox) - start < LONG.size:
                    break
                _, size = LONG.unpack_from(inbox, start)
                head = LONG.size
            end = start + head + size
            if len(inbox) < end:
                break
            try:
                # The relay's own helper, over a socket pair only the two processes hold.
                # The view is released however loading ends: the inbox cannot be resized
                # (nor cleared, as losing the helper does) while it is exported.
                with memoryview(inbox) as whole, whole[start + head : end] as answer:
                    job_id, ok, value = pickle.loads(answer)  # noqa: S301
            except Exception:  # a result this process cannot read: the helper is no use
                log.exception("unreadable answer from a render helper")
                self._lost()
                return
            start = end
            self._heard = True
            future = self._pending.pop(job_id, None)
            if future is not None and not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        if start:
            del inbox[:start]
            if not self._pending and self._watchdog is not None:  # nothing left to wait for
                self._watchdog.cancel()
                self._watchdog = None

    def _watch(self) -> None:
        self._watchdog = None
        if not self._pending or self.dead or self.deadline is None:
            return
        if not self._heard:
            self.abandon(f"a render helper did not answer within {self.deadline:g} s")
            return
        self._heard = False
        assert self.loop is not None
        self._watchdog = self.loop.call_later(self.deadline, self._watch)

    def abandon(self, reason: str) -> None:
        """On the loop's thread: give up on a helper that is alive but of no use (it hangs),
        as on one that died: killed, reaped, every call in flight falls back (the caller's
        own included, which counts as noticing it)."""
        if not self._closed:
            log.warning("%s; ending it", reason)
        self.noticed = True
        self._lost()

    def _lost(self) -> None:
        """The helper died (or broke its socket): every call in flight falls back, and the
        helper is reaped off the event loop."""
        if not self._closed:
            self.dead = True
            log.warning("a render helper process died; starting new ones")
            self._let_go()
            with contextlib.suppress(OSError, ValueError):
                self.process.kill()
            assert self.loop is not None
            # Reaped by a thread of the loop's executor (or, with that shut down, by the next
            # look at the children: multiprocessing.active_children or the pool's close).
            with contextlib.suppress(RuntimeError):
                self.loop.run_in_executor(None, self._reap)
        self._fail_pending()

    def _reap(self) -> None:
        with self._reap_lock:
            self.process.join()

    def _let_go(self) -> None:
        """Unregister and close the jobs socket; on the loop's thread (or with it stopped)."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._jobs.fileno())
            loop.remove_writer(self._jobs.fileno())
        self._jobs.close()
        self._outbox.clear()
        self._inbox.clear()

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            # A closed loop runs nothing more, so a call waiting on it never resumes.
            if not future.done() and not future.get_loop().is_closed():
                future.set_exception(PoolUnavailable())
                self.noticed = True

    def close(self) -> None:
        """End the helper from any thread: its sockets closed (it exits at end-of-file), calls
        in flight fall back, and it is waited for (killed if it does not end in time)."""
        self.dead = True
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or loop is running or not loop.is_running():
            self._release()
        else:
            released = threading.Event()

            def release() -> None:
                self._release()
                released.set()

            try:
                loop.call_soon_threadsafe(release)
            except RuntimeError:  # closed meanwhile
                self._release()
            else:
                if not released.wait(CLOSE_WAIT_SECONDS):
                    # The loop is stuck: end-of-file for the helper all the same.
                    with contextlib.suppress(OSError):
                        self._jobs.shutdown(socket.SHUT_RDWR)
        with self._control_lock:
            self._control.close()
        with self._reap_lock:
            self.process.join(EXIT_WAIT_SECONDS)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()

    def _release(self) -> None:
        self._let_go()
        self._fail_pending()


def spawn_helper(start: Callable[..., None], args: Sequence[Any]) -> Helper:
    """A new helper process ("spawn": the relay's process runs threads, which do not survive
    a fork), running ``start(*args)`` before its first job; OSError if it cannot be made."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = socket.socketpair()
    try:
        control, their_control = context.Pipe(duplex=True)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    their_jobs = multiprocessing.connection.Connection(theirs.detach())
    try:
        process = context.Process(
            target=serve,
            args=(their_jobs, their_control, start, tuple(args)),
            name="relay-render",
            daemon=True,
        )
        process.start()
    except BaseException:
        ours.close()
        control.close()
        raise
    finally:
        # The helper holds its own copies: its ends of the pairs reach end-of-file when it dies.
        their_jobs.close()
        their_control.close()
    return Helper(process, ours, control)
