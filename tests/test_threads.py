"""The worker threads: items in order, errors carried to the caller, and a prompt stop when closed."""

from __future__ import annotations

import threading

import pytest

from wormclean.threads import END, NOTHING, Consumer, Producer, run_ahead


def test_run_ahead_yields_in_order_and_carries_the_error():
    assert list(run_ahead(iter(range(10)), depth=2, name="test")) == list(range(10))

    def failing():
        yield 1
        raise ValueError("broken at 2")

    items = run_ahead(failing(), depth=2, name="test")
    assert next(items) == 1
    with pytest.raises(ValueError, match="broken at 2"):
        next(items)


def test_a_closed_producer_stops_before_the_next_item_and_closes_its_source():
    made, closed = [], threading.Event()

    def source():
        try:
            for index in range(1000):
                made.append(index)
                yield index
        finally:
            closed.set()

    producer = Producer(source(), depth=2, name="test")
    assert producer.take() == 0
    producer.close()
    assert closed.is_set() and len(made) <= 4  # the item taken, two queued, one waiting for room
    drained = Producer(iter([]), depth=1, name="test")
    assert drained.take() is END and drained.finished
    drained.close()
    gate = threading.Event()

    def slow():
        gate.wait()
        yield 1

    waiting = Producer(slow(), depth=1, name="test")
    assert waiting.take(block=False) is NOTHING
    gate.set()
    assert waiting.take() == 1
    waiting.close()


def test_consumer_handles_in_order_and_raises_its_error_at_the_next_call():
    handled = []
    consumer = Consumer(handled.append, depth=2, name="test")
    for item in range(5):
        consumer.put(item)
    consumer.finish()
    assert handled == list(range(5))

    def fail(item):
        raise OSError(f"disk full at {item}")

    failing = Consumer(fail, depth=2, name="test")
    failing.put(0)
    with pytest.raises(OSError, match="disk full at 0"):
        for item in range(1, 100):
            failing.put(item)
        failing.finish()


def test_freed_feature_maps_are_reused_rather_than_faulted_in_afresh():
    """After keep_freed_memory, a pass of a net over a 1024x1024 input takes its feature maps (32-64 MB each)
    from malloc's heap instead of fresh pages: 16,000 page faults a pass here, against 175,000-225,000 without
    it (each pass, every pass)."""
    import resource
    import sys

    import torch

    from wormclean.memory import keep_freed_memory
    from wormclean.model.unet import UNet, UNetConfig

    if not sys.platform.startswith("linux"):
        assert keep_freed_memory() is False
        return
    assert keep_freed_memory() is True
    net = UNet(UNetConfig(width=8, depth=3)).eval()
    image = torch.rand(1, 1, 1024, 1024)
    with torch.inference_mode():
        net(image)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(image)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 50_000
