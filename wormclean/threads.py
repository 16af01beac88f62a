"""The pieces shared by the threads that work ahead of a consumer (decoding, backgrounds)."""

from __future__ import annotations

import queue
import threading

END = object()
"""Put by a producer thread after its last item."""


class Failure:
    """An exception raised in a producer thread, carried to the consumer and raised there."""

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
