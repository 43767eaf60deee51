"""Run management for long trainings: checkpoints, ``--resume``, result files, the command line.

A training loop keeps its whole state in one pytree (`minode.tree`), by convention

    state = {"step": 0, "params": params, "opt": optimizer.init(params), "log": {...}}

where ``log`` holds what grows during training (losses, timings: Python numbers and lists).
`Checkpoint` writes that state atomically every few steps and gives it back on ``--resume``.
A resumed run repeats an uninterrupted one exactly when everything random in step ``k`` is drawn
from a generator seeded by ``k`` (e.g. ``numpy.random.default_rng([seed, k])``), not from one
generator carried across steps.

A checkpoint records the run's configuration (the options that shape training: seed, sizes,
solver); ``--resume`` with other options is refused, naming the fields that differ.

Ctrl-C leaves a checkpoint of the last completed step. The loop runs inside
`Checkpoint.saved_on_interrupt` and changes its state only inside `deferred_interrupt`, so an
interrupt never lands between two halves of an update:

    with checkpoint.saved_on_interrupt(lambda: state, total=steps):
        for step in runs.progress(range(state["step"], steps), ...):
            loss, grads = loss_and_grad(state["params"], ...)      # Ctrl-C may stop it here
            with runs.deferred_interrupt():                        # ... but not in here
                state["params"], state["opt"] = optimizer.update(...)
                state["step"] = step + 1
                checkpoint.save_if_due(state, steps)

and the script's entry point `run_script` turns the resulting `TrainingInterrupted` into one
line saying where it stopped and how to continue.

Results are JSON files, one per experiment, written with the command line that produced them
and the options it ran with; `collect_results` completes a table with the rows of experiments
run by earlier commands.
"""
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from tqdm.auto import tqdm

from minode.checks import check_positive_int
from minode.cli import in_notebook
from minode.files import write_text_atomically
from minode.tree import check_same_tree, load_params, save_params

__all__ = ["Checkpoint", "TrainingInterrupted", "deferred_interrupt", "run_script", "progress",
           "prepare_out_dir", "command_line", "write_result", "read_result", "result_path",
           "collect_results"]

_CONFIG_KEY = "run_config"  # the checkpoint's entry holding the configuration, as JSON text
# Seconds between progress-bar redraws: a terminal redraws often; a log file or a notebook's
# saved output would otherwise grow by a line per redraw.
_REDRAW_SECONDS = {"terminal": 0.1, "notebook": 1.0, "file": 30.0}

_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Checkpoint:
    """A training state in one ``.npz`` file, saved every ``every`` steps.

    ``path`` is the file; its directory must exist. The file is written with
    `minode.tree.save_params`, so it is always either the previous complete state or the new one.
    ``config`` is a dict of JSON values (the options that shape the training); it is saved
    with the state and a resumed run must have the same.
    """

    def __init__(self, path, every=1, config=None):
        check_positive_int("every", every)
        self.path = Path(path)
        self.every = every
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict of the options that shape the training "
                            f"(e.g. {{'seed': 0}}), got {type(config).__name__}")
        self.config = _as_json(config or {})

    def exists(self):
        """True when a checkpoint file is there."""
        return self.path.exists()

    def load(self):
        """The saved state, as `save` wrote it (arrays on the active backend), without its
        configuration (see `saved_config`)."""
        return self._load_with_config()[0]

    def saved_config(self):
        """The configuration saved with the checkpoint; None for a file saved without one."""
        return self._load_with_config()[1]

    def _load_with_config(self):
        """``(state, config)`` from one read of the file; config None when it has none."""
        state = load_params(self.path)
        text = state.pop(_CONFIG_KEY, None)
        return state, None if text is None else json.loads(text)

    def load_or(self, fresh_state, resume):
        """The state to train from: the saved one when ``resume`` and the file exists, else
        ``fresh_state``.

        A saved state written with another configuration is refused with ``ValueError`` naming
        the fields that differ, and so is one that differs from ``fresh_state`` anywhere but
        under ``"log"`` (structure, shapes, dtypes: another model size).
        """
        if not (resume and self.exists()):
            return fresh_state
        state, saved_config = self._load_with_config()
        self._check_config(saved_config)
        check_same_tree(_without_log(state), _without_log(fresh_state), where="checkpoint")
        return state

    def _check_config(self, saved):
        """Refuse a saved configuration ``saved`` (None: none saved) other than this run's."""
        if saved is None:
            raise ValueError(f"--resume: the checkpoint {self.path} records no configuration, so "
                             "it cannot be checked against this run's; start afresh without "
                             "--resume, or use another --out")
        fields = sorted(set(saved) | set(self.config))
        differ = [f"{name}: checkpoint {saved.get(name)!r}, this run {self.config.get(name)!r}"
                  for name in fields if saved.get(name) != self.config.get(name)]
        if differ:
            raise ValueError(f"--resume: the checkpoint {self.path} was written with other "
                             f"options ({'; '.join(differ)}). Resume with the same options, "
                             "or start afresh without --resume, or use another --out")

    def save(self, state):
        """Write ``state`` now, with the configuration."""
        save_params(self.path, {**state, _CONFIG_KEY: json.dumps(self.config, sort_keys=True)})

    @contextlib.contextmanager
    def saved_on_interrupt(self, latest_state, total):
        """Inside the block, Ctrl-C saves ``latest_state()`` (the state of the last completed
        step) and raises `TrainingInterrupted` instead of ``KeyboardInterrupt``; ``total`` is
        the number of steps the training was to run."""
        try:
            yield
        except KeyboardInterrupt:
            state = latest_state()
            self.save(state)
            raise TrainingInterrupted(self.path, state["step"], total) from None

    def save_if_due(self, state, total_steps):
        """Write ``state`` when its ``"step"`` is a multiple of ``every`` or the last step."""
        step = state["step"]
        if step % self.every == 0 or step == total_steps:
            self.save(state)


def _without_log(state):
    return {key: value for key, value in state.items() if key != "log"}


def _as_json(config):
    """``config`` as it reads back from JSON (tuples become lists, paths text), so that a saved
    configuration compares equal to the one that wrote it."""
    return json.loads(json.dumps(config, default=str))


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C, after saving a checkpoint of its last completed step."""

    def __init__(self, path, step, total):
        how = ("run the notebook again with RESUME = True" if in_notebook()
               else "continue with: " + _resume_command())
        super().__init__(f"stopped by Ctrl-C after step {step} of {total}; the checkpoint "
                         f"{path} holds it; {how}")

    def _render_traceback_(self):
        # IPython shows these lines instead of a traceback
        return [str(self)]


def _resume_command():
    """This process's command line with ``--resume`` (without `command_line`'s thread settings:
    they shape timings, not what a resumed run computes)."""
    argv = sys.argv if "--resume" in sys.argv else sys.argv + ["--resume"]
    return "python " + " ".join(argv)


@contextlib.contextmanager
def deferred_interrupt():
    """Ctrl-C inside the block takes effect when the block ends, so that the statements in it
    (one training step's update of its state) run all or not at all.

    Only the main thread receives signals, and a process started with Ctrl-C ignored (a
    background job of a shell script) keeps ignoring it: there the block runs as it is.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def run_script(main):
    """Run a tutorial's ``main()``; a `TrainingInterrupted` prints its one line to stderr and
    exits with status 130 (the shell's code for Ctrl-C)."""
    try:
        main()
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        raise SystemExit(130) from None


def progress(iterable=None, *, quiet=False, **tqdm_options):
    """A ``tqdm.auto`` progress bar (a widget in a notebook) that redraws at most every 0.1 s
    in a terminal, 1 s in a notebook and 30 s when stderr is a file; ``quiet`` hides it.

    Update its text with ``set_postfix(..., refresh=False)``: a refresh there would redraw at
    every step.
    """
    where = ("notebook" if in_notebook() else
             "terminal" if sys.stderr.isatty() else "file")
    return tqdm(iterable, disable=quiet, mininterval=_REDRAW_SECONDS[where], **tqdm_options)


def prepare_out_dir(out_dir, quick):
    """Create the results folder ``out_dir`` (and its parents) and print where it is, and, for a
    quick run, that its numbers mean nothing."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if quick:
        print("QUICK RUN: a smoke test of the code; its numbers mean nothing")
    print(f"results go to {Path(out_dir).resolve()}")


def command_line():
    """This process's command line, with the thread settings that shape its timings.

    E.g. ``"OPENBLAS_NUM_THREADS=1 python tutorials/cnf.py --quick"``; inside a Jupyter
    kernel, ``"Jupyter notebook in <working directory>"`` (the options are recorded beside it,
    see `write_result`).
    """
    if in_notebook():
        return f"Jupyter notebook in {os.getcwd()}"
    threads = "".join(f"{name}={os.environ[name]} " for name in _THREAD_VARIABLES
                      if name in os.environ)
    return threads + "python " + " ".join(sys.argv)


def result_path(out_dir, name):
    """Where the result of experiment ``name`` lives: ``out_dir/<name>_result.json``."""
    return Path(out_dir) / f"{name}_result.json"


def write_result(out_dir, name, result, options=None):
    """Write the dict ``result`` of experiment ``name`` as JSON (atomically), adding the command
    line under ``"command"`` and ``options`` (e.g. ``vars(args)``: what the run was configured
    with, also when the command is a notebook) under ``"options"``; returns the path."""
    path = result_path(out_dir, name)
    record = {**result, "command": command_line()}
    if options is not None:
        record["options"] = _as_json(options)
    write_text_atomically(path, json.dumps(record, indent=1))
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
