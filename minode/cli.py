"""Command-line helpers shared by the tutorials and benchmarks: argparse ``type`` functions, the
options every tutorial has, its solver options, and how a tutorial knows it runs in a notebook.

Each ``type`` function turns the option's text into a number and refuses, with argparse's usual message
(``argument --epochs: must be a positive integer, got '0'``), text that is not one of the kind.

A tutorial builds its parser with `tutorial_parser` (every option's help shows its default),
adds `add_run_options` (``--quick --resume --seed --out --quiet``) and, where the reader may
choose the solver, `add_solver_options`; `parse_tutorial_args` then fills in the output folder
and `solver_settings` turns the solver options into `odeint`'s keyword arguments, refusing a
combination `odeint` would refuse before any training starts.
"""
import argparse
import inspect
import sys
from pathlib import Path

from minode.checks import check_nonnegative, check_positive, check_positive_int
from minode.odeint import odeint
from minode.solve import solve_settings

__all__ = ["positive_int", "nonnegative_int", "positive_float", "script_argv", "in_notebook",
           "notebook_cells_run", "notebook_argv", "tutorial_parser", "add_run_options",
           "parse_tutorial_args", "default_out", "add_solver_options", "solver_settings"]


def _parse(text, kind, check, expected):
    """``kind(text)`` when it passes ``check``, else ``argparse.ArgumentTypeError``."""
    try:
        value = kind(text)
        check("value", value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    return value


def positive_int(text):
    """An integer > 0."""
    return _parse(text, int, check_positive_int, "a positive integer")


def nonnegative_int(text):
    """An integer >= 0."""
    return _parse(text, int, check_nonnegative, "a non-negative integer")


def positive_float(text):
    """A finite number > 0."""
    return _parse(text, float, check_positive, "a positive number")


def script_argv(argv=None):
    """The options a tutorial's ``main(argv)`` parses.

    ``argv`` when given; else the command line's (``sys.argv[1:]``), except inside a Jupyter
    kernel, whose own arguments (``-f kernel-....json``) are not the tutorial's: there the
    last cell's ``main()`` runs with the defaults.
    """
    if argv is not None:
        return list(argv)
    if in_notebook():
        return []
    return sys.argv[1:]


def in_notebook():
    """True inside a Jupyter (IPython) kernel."""
    return "ipykernel" in sys.modules


def notebook_cells_run(module_name):
    """True when a tutorial's cells each run their step as they are run: the tutorial is the
    notebook itself (``module_name`` is ``"__main__"`` inside a Jupyter kernel).

    As a script the tutorial's ``main()`` runs every step; imported (as the tests do), nothing runs.
    """
    return module_name == "__main__" and in_notebook()


def notebook_argv(quick=False, resume=False, *options):
    """The command line equivalent to a notebook's config cell: ``--quick`` and ``--resume``
    when set, then ``options`` (further option strings, e.g. ``"--seed", "1"``)."""
    return ["--quick"] * bool(quick) + ["--resume"] * bool(resume) + [str(o) for o in options]


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help with each option's default after its help text, except a default of
    None: that option's help says what happens when it is not given."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def tutorial_parser(description):
    """An ``ArgumentParser`` whose ``--help`` shows every option's default after its help."""
    return argparse.ArgumentParser(description=description, formatter_class=_DefaultsFormatter)


def default_out(tutorial, quick):
    """``results/<tutorial>``, or ``results/quick/<tutorial>`` for a quick run, so that a smoke
    test never overwrites a full run's checkpoints and pictures (relative to the current
    directory: in a notebook, the notebook's folder)."""
    return Path("results", "quick", tutorial) if quick else Path("results", tutorial)


def add_run_options(parser, tutorial, quick_help="a smoke test of seconds"):
    """The options every tutorial has: ``--quick``, ``--resume``, ``--seed``, ``--out``,
    ``--quiet``. ``quick_help`` says what ``--quick`` runs."""
    parser.add_argument("--quick", action="store_true",
                        help=f"{quick_help}; its numbers mean nothing")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoints in --out, which must have been "
                        "written with the same options")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for checkpoints, results and pictures, relative to the "
                        f"current directory (default: {default_out(tutorial, False)}, with "
                        f"--quick {default_out(tutorial, True)})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_tutorial_args(parser, argv, tutorial):
    """``parser``'s options from `script_argv` ``(argv)``, with ``out`` set to `default_out`
    when ``--out`` was not given."""
    args = parser.parse_args(script_argv(argv))
    if args.out is None:
        args.out = default_out(tutorial, args.quick)
    return args


def add_solver_options(parser, *, method="dopri5", rtol=1e-7, atol=1e-9, grad="adjoint"):
    """``--method``, ``--step-size``, ``--rtol``, ``--atol``, ``--grad`` with these defaults;
    `solver_settings` checks them together."""
    parser.add_argument("--method", default=method,
                        help="an adaptive method (bosh3, dopri5, tsit5, rodas4, scipy:NAME), or "
                        "a fixed-step one (euler, midpoint, heun, rk4) with --step-size")
    parser.add_argument("--step-size", type=positive_float, default=None,
                        help="the step of a fixed-step --method")
    parser.add_argument("--rtol", type=positive_float, default=rtol,
                        help="relative tolerance of an adaptive --method")
    parser.add_argument("--atol", type=positive_float, default=atol,
                        help="absolute tolerance of an adaptive --method")
    parser.add_argument("--grad", choices=["adjoint", "backprop"], default=grad,
                        help="the adjoint method (Algorithm 1) or backprop through the solver")


def solver_settings(parser, args):
    """`odeint`'s keyword arguments from the options of `add_solver_options`:
    ``{"method", "rtol", "atol", "grad"}`` plus ``"step_size"`` for a fixed-step method.

    The combination is checked as `odeint` checks it; a refused one ends the program with
    argparse's usage message (e.g. ``--method rk4`` without ``--step-size``).
    """
    settings = {"method": args.method, "rtol": args.rtol, "atol": args.atol, "grad": args.grad}
    if args.step_size is not None:
        settings["step_size"] = args.step_size
    defaults = {name: parameter.default for name, parameter
                in inspect.signature(odeint).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    try:
        solve_settings(**{**defaults, **settings})
    except ValueError as error:
        parser.error(f"--method {args.method}: {error} (options --step-size, --rtol, --atol)")
    return settings
