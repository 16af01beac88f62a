"""Shared fixtures. Test data: tiny files made in tmp_path, and the real clips in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; its absence is a broken checkout, not a reason to skip."""
    assert SHARED_DATA.is_dir(), f"expected the shared test data at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run on 2-core machines next to each other: keep torch from oversubscribing."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)
