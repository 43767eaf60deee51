"""Writing files atomically: a reader (or a crashed run) never sees half a file.

Everything minode writes to disk (parameter files, checkpoints, downloaded data, result tables)
goes through `atomic_file`: the bytes go to a temporary file in the target's directory, which
replaces the target with one ``os.replace`` once it is complete and synced to disk. The new
file gets the permissions a plain ``open(path, "w")`` would give it (the old file's, or the
default under the process's umask), not the owner-only mode of a temporary file.
"""
import contextlib
import errno
import os
import tempfile

__all__ = ["atomic_file", "write_text_atomically"]


@contextlib.contextmanager
def atomic_file(path):
    """Open a temporary binary file beside ``path``; on success it becomes ``path``.

    Use as ``with atomic_file(path) as file: file.write(...)``. When the block raises, the
    temporary file is removed and ``path`` keeps its old content (or stays absent). A
    ``path`` whose directory does not exist raises ``FileNotFoundError`` naming that directory
    (not the temporary file that could not be created in it).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"cannot write {path}: its directory does not "
                                f"exist; create it first (os.makedirs)", directory)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                         suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fchmod(file.fileno(), _mode_of_a_plain_write(path))
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):  # only when the block raised before the rename
            os.remove(temporary)


def _mode_of_a_plain_write(path):
    """The permission bits ``open(path, "w")`` leaves: those of an existing ``path``, or 0o666
    under the umask (read without a lasting change: ``os.umask`` only sets and returns it)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomically(path, text):
    """Write the string ``text`` (UTF-8) to ``path`` with `atomic_file`."""
    with atomic_file(path) as file:
        file.write(text.encode("utf-8"))
