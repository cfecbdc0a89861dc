"""Fixtures of the swarm scenarios. The shared ones (opentracker, swarms) come from
tests/conftest.py; a missing libtorrent or opentracker fails these tests, never skips them."""
from __future__ import annotations

import pytest

from support.net import free_port
from support.opentracker import OpenTracker


@pytest.fixture
def client_port() -> int:
    """A port for our client to listen on and announce (never the default 6881)."""
    return free_port()


@pytest.fixture
def dead_port() -> int:
    """A port nobody listens on (TCP nor UDP): a dead tracker."""
    return free_port()


@pytest.fixture(scope="session")
def refusing_tracker(tmp_path_factory) -> OpenTracker:
    """A second opentracker with an empty whitelist: over HTTP it answers every announce
    with `failure reason`, over UDP with a bare 8-byte reply."""
    tracker = OpenTracker(tmp_path_factory.mktemp("refusing-opentracker")).start()
    yield tracker
    tracker.stop()
