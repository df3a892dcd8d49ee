"""Bounded background stages: decode ahead and encode behind the generator, in their own threads;
and how a run stops on Ctrl-C or SIGTERM.

Queues are small, so memory does not grow with the video; an error in a stage is re-raised in
the caller; closing a stage stops its thread.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import queue
import shutil
import sys
import threading
from pathlib import Path
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()
interrupted = threading.Event()
STOP_GRACE_SECONDS = 8.0
_partial_outputs: set[Path] = set()
_stop_forcing = threading.Lock()


def mark_partial(path: Path) -> None:
    """`path` is a temporary file or folder that becomes an output when complete: a forced stop
    removes it until `unmark_partial(path)`."""
    _partial_outputs.add(path)


def unmark_partial(path: Path) -> None:
    _partial_outputs.discard(path)


@contextlib.contextmanager
def partial_output(path: Path) -> Iterator[Path]:
    """`path` is partial (see `mark_partial`) while the block runs."""
    mark_partial(path)
    try:
        yield path
    finally:
        unmark_partial(path)


def _remove_partial_outputs_and_exit() -> None:
    for path in list(_partial_outputs):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    sys.stderr.write("interrupted (forced: the run did not stop within "
                     f"{STOP_GRACE_SECONDS:.0f} s of the signal)\n")
    sys.stderr.flush()
    os._exit(130)


def force_stop_later() -> None:
    """Make sure the process ends after the first Ctrl-C or SIGTERM, whatever it is doing.

    The interrupt normally unwinds the run, which removes its partial outputs. But a native
    library can swallow it or wait for ever on a lock of its own thread pool; so after
    `STOP_GRACE_SECONDS` a timer removes the partial outputs and exits with 130, and should even
    that thread be unable to run (the interpreter lock held in native code), faulthandler's own C
    thread exits the process a little later."""
    if not _stop_forcing.acquire(blocking=False):
        return
    timer = threading.Timer(STOP_GRACE_SECONDS, _remove_partial_outputs_and_exit)
    timer.daemon = True
    timer.start()
    discard = open(os.devnull, "w")  # noqa: SIM115 - faulthandler writes to it until the process ends
    faulthandler.dump_traceback_later(STOP_GRACE_SECONDS + 4, exit=True, file=discard)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt once Ctrl-C or SIGTERM has arrived. The signal handler raises it too,
    but where it happens to run inside a callback from C the exception is swallowed; long loops
    call this so that an interrupt always ends the run."""
    if interrupted.is_set():
        raise KeyboardInterrupt


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class ReadAhead(Generic[T]):
    """Iterates `items` in a background thread from construction on, at most `depth` items ahead
    of the consumer: work can start while the consumer still prepares (file mode decodes and
    tracks while the generator loads). Iterate it once; `close()` stops the thread (also when the
    iteration ends or breaks off)."""

    def __init__(self, items: Iterable[T], depth: int = 4):
        self._slots: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._thread.start()

    def _offer(self, item: object) -> bool:
        """Queue `item` once there is room; False if the consumer closed first."""
        while not self._stop.is_set():
            try:
                self._slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._offer(item):
                    return
            self._offer(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            self._offer(_Failure(error))

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._slots.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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
