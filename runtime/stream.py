"""Bounded background stages: decode ahead and encode behind the generator, in their own threads.

Queues are small, so memory does not grow with the video; an error in a stage is re-raised in
the caller; closing a stage stops its thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()
interrupted = threading.Event()


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt once Ctrl-C or SIGTERM has arrived. The signal handler raises it too,
    but where it happens to run inside a callback from C the exception is swallowed; long loops
    call this so that an interrupt always ends the run."""
    if interrupted.is_set():
        raise KeyboardInterrupt


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            slots.put(_Failure(error))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class WriteBehind(Generic[T]):
    """Calls `consume(item)` in a background thread for each `put` item, at most `depth` behind."""

    def __init__(self, consume: Callable[[T], None], depth: int = 4):
        self._slots: queue.Queue = queue.Queue(maxsize=depth)
        self._consume = consume
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._slots.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as error:  # noqa: BLE001 - re-raised by put/finish
                    self._error = error

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._slots.put(item)

    def finish(self) -> None:
        """Wait until every item is consumed; re-raise the first error."""
        self._slots.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error
