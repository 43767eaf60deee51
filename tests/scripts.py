"""Load a tutorial or benchmark script (not a package module) so that tests can call into it."""
import importlib.util
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def load_script(relative_path):
    """Import ``PROJECT/relative_path`` as a fresh module, e.g. ``"tutorials/spiral.py"``."""
    path = PROJECT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interrupted_at_call(function, n):
    """``function``, except that its ``n``-th call raises ``KeyboardInterrupt`` (a Ctrl-C
    landing while it runs)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(None)
        if len(calls) == n:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapper


def stopped_by_ctrl_c(main, argv, capsys):
    """Run ``main(argv)`` as the script's entry point does (`minode.runs.run_script`), expecting
    it to stop by Ctrl-C: exit status 130 and one line on stderr, naming ``--resume``, which
    is returned."""
    # imported here: this module loads scripts without importing minode
    from minode import runs
    try:
        runs.run_script(lambda: main(argv))
    except SystemExit as stop:
        assert stop.code == 130, stop.code
    else:
        raise AssertionError("the run was not stopped")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0], lines
    return lines[0]
