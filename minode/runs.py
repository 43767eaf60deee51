"""Run management for long trainings: checkpoints, ``--resume``, result files, the command line.

A training loop keeps its whole state in one pytree (`minode.tree`), by convention

    state = {"step": 0, "params": params, "opt": optimizer.init(params), "log": {...}}

where ``log`` holds what grows during training (losses, timings: Python numbers and lists).
`Checkpoint` writes that state atomically every few steps and gives it back on ``--resume``.
A resumed run repeats an uninterrupted one exactly when everything random in step ``k`` is drawn
from a generator seeded by ``k`` (e.g. ``numpy.random.default_rng([seed, k])``), not from one
generator carried across steps.

Results are JSON files, one per experiment, written with the command line that produced them;
`collect_results` completes a table with the rows of experiments run by earlier commands.
"""
import json
import os
import sys
from pathlib import Path

from minode.checks import check_positive_int
from minode.files import write_text_atomically
from minode.tree import check_same_tree, load_params, save_params

__all__ = ["Checkpoint", "command_line", "write_result", "read_result", "result_path",
           "collect_results"]

_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Checkpoint:
    """A training state in one ``.npz`` file, saved every ``every`` steps.

    ``path`` is the file; its directory must exist. The file is written with
    `minode.tree.save_params`, so it is always either the previous complete state or the new one.
    """

    def __init__(self, path, every=1):
        check_positive_int("every", every)
        self.path = Path(path)
        self.every = every

    def exists(self):
        """True when a checkpoint file is there."""
        return self.path.exists()

    def load(self):
        """The saved state, as `save` wrote it (arrays on the active backend)."""
        return load_params(self.path)

    def load_or(self, fresh_state, resume):
        """The state to train from: the saved one when ``resume`` and the file exists, else
        ``fresh_state``.

        The saved state must match ``fresh_state`` everywhere but under ``"log"`` (structure,
        shapes, dtypes): a checkpoint of another model size is refused with ``ValueError``.
        """
        if not (resume and self.exists()):
            return fresh_state
        state = self.load()
        check_same_tree(_without_log(state), _without_log(fresh_state), where="checkpoint")
        return state

    def save(self, state):
        """Write ``state`` now."""
        save_params(self.path, state)

    def save_if_due(self, state, total_steps):
        """Write ``state`` when its ``"step"`` is a multiple of ``every`` or the last step."""
        step = state["step"]
        if step % self.every == 0 or step == total_steps:
            self.save(state)


def _without_log(state):
    return {key: value for key, value in state.items() if key != "log"}


def command_line():
    """This process's command line, with the thread settings that shape its timings.

    E.g. ``"OPENBLAS_NUM_THREADS=1 python tutorials/cnf.py --quick"``.
    """
    threads = "".join(f"{name}={os.environ[name]} " for name in _THREAD_VARIABLES
                      if name in os.environ)
    return threads + "python " + " ".join(sys.argv)


def result_path(out_dir, name):
    """Where the result of experiment ``name`` lives: ``out_dir/<name>_result.json``."""
    return Path(out_dir) / f"{name}_result.json"


def write_result(out_dir, name, result):
    """Write the dict ``result`` of experiment ``name`` as JSON (atomically), adding the command
    line under ``"command"``; returns the path."""
    path = result_path(out_dir, name)
    write_text_atomically(path, json.dumps({**result, "command": command_line()}, indent=1))
    return path


def read_result(out_dir, name):
    """The result dict of experiment ``name`` written earlier, or None when there is none."""
    path = result_path(out_dir, name)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def collect_results(out_dir, names, fresh):
    """``{name: result}`` for ``names``, in that order: ``fresh[name]`` where this run produced
    it, else the result file an earlier command left in ``out_dir`` (skipped when absent)."""
    collected = {}
    for name in names:
        result = fresh.get(name)
        if result is None:
            result = read_result(out_dir, name)
        if result is not None:
            collected[name] = result
    return collected
