"""Shared fixtures: the strict CuPy-like backend (see strict_backend.py)."""
import pytest

import strict_backend as strict
from minode import backend

backend.register_backend("strict", strict.load)


@pytest.fixture
def strict_backend():
    """Switch minode to the strict backend for one test; yields its array module."""
    previous = backend.set_backend("strict")
    try:
        yield strict.strict_numpy
    finally:
        backend.set_backend(previous)
