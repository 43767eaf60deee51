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


def test_a_new_file_gets_the_permissions_of_a_plain_write(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    write_text_atomically(tmp_path / "atomic.txt", "x")
    mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777
    assert mode("atomic.txt") == mode("plain.txt")


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_text_atomically(path, "new")
    assert os.stat(path).st_mode & 0o777 == 0o640
