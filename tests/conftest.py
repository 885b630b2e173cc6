"""Fixtures every layer's tests may use.  Shared code is in ``tests/helpers/``
(on the import path through ``pythonpath`` in pyproject.toml); no test imports
another test file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.pairs import SOCK_A, SOCK_B
from synack.sockets import SocketHost


@pytest.fixture
def hosts() -> Iterator[tuple[SocketHost, SocketHost]]:
    a, b = SocketHost.memory_pair(SOCK_A, SOCK_B)
    try:
        yield a, b
    finally:
        a.close()
        b.close()
