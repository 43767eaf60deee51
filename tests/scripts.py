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
