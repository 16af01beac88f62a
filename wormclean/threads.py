"""Work in a thread beside the caller, through a short queue: a :class:`Producer` runs an iterator ahead of its
consumer (decoding, backgrounds), a :class:`Consumer` handles the items the caller puts (writing).

Both carry an exception raised in their thread to the caller and raise it there, and both stop at once when
closed, so memory stays bounded by the queue and a failure anywhere ends the job with its own error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

END = object()
"""Put by a thread after its last item."""

NOTHING = object()
"""What :meth:`Producer.take` returns when asked not to wait and no item is ready."""


class Failure:
    """An exception raised in a thread, carried to the caller and raised there."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def put_unless_stopped(buffer: queue.Queue, item, stopping: threading.Event) -> bool:
    """Put ``item`` into a bounded ``buffer``, waiting for room until ``stopping`` is set.

    Returns False if the consumer stopped first, so the producer can end instead of blocking forever.
    """
    while not stopping.is_set():
        try:
            buffer.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


class Producer:
    """Iterate ``items`` in a thread named ``name``, at most ``depth`` items ahead of the caller.

    Take the items by iterating the producer, or one at a time with :meth:`take`. :meth:`close` (always call it)
    stops the thread before the next item is made and closes ``items`` (a generator's ``finally`` runs in the
    thread); an item being made is finished first.
    """

    def __init__(self, items: Iterator, depth: int, name: str) -> None:
        self._items = items
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self.finished = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        try:
            self._thread.start()
        except BaseException:
            # A stop signal raised while start() waits for the thread: the caller never gets this producer to
            # close, and a thread left decoding or running the net crashes the interpreter as it exits.
            self.close()
            raise

    def _produce(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    item = next(self._items)
                except StopIteration:
                    put_unless_stopped(self._buffer, END, self._stopping)
                    return
                if not put_unless_stopped(self._buffer, item, self._stopping):
                    return
        except BaseException as error:  # carried to the caller and raised there
            put_unless_stopped(self._buffer, Failure(error), self._stopping)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def take(self, block: bool = True):
        """The next item; :data:`END` after the last (then ``finished`` is True), :data:`NOTHING` when ``block``
        is false and none is ready. An exception of the thread is raised here."""
        try:
            item = self._buffer.get(block=block)
        except queue.Empty:
            return NOTHING
        if isinstance(item, Failure):
            raise item.error
        if item is END:
            self.finished = True
        return item

    def __iter__(self) -> Iterator:
        while (item := self.take()) is not END:
            yield item

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stopping.set()
        if self._thread.ident is not None:  # started
            self._thread.join()


def run_ahead(items: Iterator, depth: int, name: str) -> Iterator:
    """Iterate ``items`` in a :class:`Producer` thread, at most ``depth`` items ahead of the consumer.

    Closing the returned generator (or dropping it) stops the thread after the item it is working on.
    """
    producer = Producer(items, depth, name)
    try:
        yield from producer
    finally:
        producer.close()


class Consumer:
    """Call ``handle(item)`` in a thread named ``name`` for each item :meth:`put`, in order, at most ``depth``
    waiting. An exception there is raised in the caller at its next :meth:`put` or at :meth:`finish`; the items
    after it are dropped."""

    def __init__(self, handle: Callable[[object], None], depth: int, name: str) -> None:
        self._handle = handle
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._items.get()) is not END:
            if self.error is not None:
                continue  # drain, so that the caller never blocks
            try:
                self._handle(item)
            except BaseException as error:  # raised again in the caller
                self.error = error

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, item) -> None:
        """Queue ``item``, waiting while ``depth`` items wait; raise the thread's error if it had one."""
        self._check()
        self._items.put(item)

    def close(self) -> None:
        """Stop the thread once everything queued is handled (an error stays in ``error``)."""
        if self._thread.is_alive():
            self._items.put(END)
            self._thread.join()

    def finish(self) -> None:
        """Wait until everything queued is handled; raise the thread's error if there was one."""
        self.close()
        self._check()
