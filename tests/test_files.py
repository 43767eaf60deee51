"""Atomic file writes: complete or absent, never half written."""
import os

import pytest

from minode.files import atomic_file, write_text_atomically


def test_atomic_file_replaces_the_target_only_when_the_block_completes(tmp_path):
    path = tmp_path / "out.txt"
    write_text_atomically(path, "old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_file(path) as file:
            file.write(b"half of the new")
            raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left behind
    with atomic_file(path) as file:
        file.write(b"new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_failed_first_write_leaves_no_file(tmp_path):
    with pytest.raises(OSError):
        with atomic_file(tmp_path / "new.bin"):
            raise OSError("disk full")
    assert os.listdir(tmp_path) == []
