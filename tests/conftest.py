"""Shared fixtures: the strict CuPy-like backend (see strict_backend.py) and the tutorials'
quick runs."""
from pathlib import Path
from typing import NamedTuple

import pytest

import strict_backend as strict
from minode import backend
from scripts import load_script

backend.register_backend("strict", strict.load)


@pytest.fixture
def strict_backend():
    """Switch minode to the strict backend for one test; yields its array module."""
    previous = backend.set_backend("strict")
    try:
        yield strict.strict_numpy
    finally:
        backend.set_backend(previous)


class QuickRun(NamedTuple):
    """What ``python tutorials/<name>.py --quick --quiet --out <out>`` left: ``main``'s return
    value and the output folder."""

    result: object
    out: Path


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """``quick_run("spiral")`` runs ``tutorials/spiral.py --quick`` once per test session and
    returns its `QuickRun`; every test that needs that run shares it."""
    done = {}

    def run(name):
        if name not in done:
            out = tmp_path_factory.mktemp(f"{name}-quick")
            main = load_script(f"tutorials/{name}.py").main
            done[name] = QuickRun(main(["--quick", "--quiet", "--out", str(out)]), out)
        return done[name]

    return run
