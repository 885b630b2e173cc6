"""The event-loop thread that runs a :class:`~synack.sockets.host.SocketHost`'s host."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _LoopThread:
    """An asyncio loop running forever in a daemon thread, shared by reference count."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._users = 0
        self._lock = threading.Lock()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="synack-loop", daemon=True)
        self.thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon, without waiting."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed
            raise OSError(errno.EBADF, "the synack host is closed") from None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop and return its result (or raise its exception)."""
        if self.in_loop_thread():
            return fn(*args)
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.post(run)
        return fut.result()

    def retain(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            if not self.in_loop_thread():  # from inside, the loop ends after this callback
                self.thread.join()
