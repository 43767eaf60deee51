# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
# ---

# %% [markdown]
"""Tutorial 5: learn a stiff chemical system from data through the implicit solver (rodas4).

Robertson's kinetics (Robertson 1966; Hairer & Wanner II, sec. IV.1) has three species and three
reactions whose rate constants, k1 = 0.04, k2 = 3e7 and k3 = 1e4, span nine orders of
magnitude: the classic stiff test problem, and the first example of Kim, Ji, Qian, Deng &
Rackauckas 2021, "Stiff Neural Ordinary Differential Equations" (Chaos 31, 093122). We observe
the three concentrations with noise at 50 log-spaced times from 1e-5 to 1e5 and fit the three
rate constants, as log10 k, by Adam, the gradient by backprop through minode's implicit
Rosenbrock method (``method="rodas4"``). From Kim et al. we take the log-spaced times and the
per-species scaling (y2 stays below 4e-5 while y1 and y3 are of order 1): the state is solved
as y / scale and the loss is a mean squared error in those units. Kim et al. learn a neural
network for the whole right-hand side; we learn the three constants of known reactions, so the
fit can be checked against the true rates.

Besides the fit, the tutorial measures what dopri5 does on the same problem (it stops at
max_steps with the stiffness diagnosis, or takes many times rodas4's evaluations), and which
gradients work: minode's adjoint (Algorithm 1) solves z backwards in time, where the fast
decaying modes of a stiff problem grow, and its gradient is refused past t ~ 0.05; SciPy's
Radau and BDF with the interpolating adjoint (z read off the forward solve) agree with
backprop through rodas4, which is the fastest of them and the one we train with.

Run ``python tutorials/stiff.py`` (5.1 minutes of CPU time on one core of a 2-core machine)
and look at the PNGs and ``table.md`` in ``results/stiff/`` (relative to the current directory).
``--quick`` is a smoke test of seconds whose numbers mean nothing; it writes to
``results/quick/stiff/``. ``--resume`` continues from the checkpoint in ``--out``; Ctrl-C
saves the last completed iteration there and prints the command that resumes.

The file is also a notebook: open it with the Jupytext extension of Jupyter or VS Code, or
convert it with ``jupytext --to notebook tutorials/stiff.py``, set ``QUICK`` and ``RESUME`` in
the config cell and run the cells in order; each cell runs its step. From a notebook the results
go to ``results/...`` relative to the notebook's folder, i.e. ``tutorials/results/stiff/``.
"""
# %% [markdown]
# # Learning the rate constants of a stiff system
#
# Robertson's reactions, with concentrations y1, y2, y3:
#
#     y1 -> y2            rate k1 y1
#     y2 + y2 -> y3 + y2  rate k2 y2^2
#     y2 + y3 -> y1 + y3  rate k3 y2 y3
#
# so dy/dt = S r(y), with S the stoichiometric matrix and r the three reaction rates. From
# y(0) = (1, 0, 0), y2 rises to 3.6e-5 within 1e-3 time units and then sits in a quasi-steady
# state, while y1 turns into y3 over 1e5 time units. The Jacobian's eigenvalues go from about
# -0.04 to about -1e4: an explicit method's step stays below ~3 / 1e4 for as long as the solve
# lasts, however smooth the solution. An implicit method's step grows with the solution's
# time scale.

# %%
import math
import textwrap
import time
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import autograd
import numpy as np
from matplotlib.ticker import MaxNLocator

from minode import SolverError, SolverStats, backend, cli, odeint, ops, optim, plots, runs
from minode.files import write_text_atomically

# %% [markdown]
# ## Config
# In a notebook, set these and run the cells in order; as a script, the command line sets them.
#
# `DEFAULT_CONFIG` is the full run, `QUICK_CONFIG` the smoke test. `SOLVER` is how the model is
# solved and differentiated in training: rodas4 with backprop, tolerances in the scaled units of
# the state (each species divided by its largest observed value).

# %%
QUICK = False    # True: a smoke test of seconds; its numbers mean nothing
RESUME = False   # True: continue from the checkpoints in the results folder
NOTEBOOK = cli.notebook_cells_run(__name__)   # run each cell's step as the cell runs

SOLVER = {"method": "rodas4", "rtol": 1e-5, "atol": 1e-7, "grad": "backprop"}
# the reference solution, by a solver independent of the one we train with
TRUTH_SOLVER = {"method": "scipy:Radau", "rtol": 1e-10, "atol": 1e-14}


@dataclass(frozen=True)
class Config:
    """The data, the training and the measurements of one run."""

    # data: n_times log-spaced observations in [t_first, t_last]; Gaussian noise whose standard
    # deviation is ``noise`` times each species' largest value
    n_times: int = 50
    t_first: float = 1e-5
    t_last: float = 1e5
    noise: float = 0.01
    # training: Adam on log10 k from k = (0.1, 1e7, 1e3), each 2.5 to 10 times off
    initial_log10_rates: tuple = (-1.0, 7.0, 3.0)
    lr: float = 0.1
    halve_lr_every: int = 100
    iters: int = 300
    # measurements: solves of the true system to each end time by dopri5 and rodas4 (dopri5
    # stops at explicit_max_steps); rodas4's adjoint tried on the observations up to each of
    # adjoint_end_times, SciPy's interpolating adjoint by each of scipy_methods on all of them;
    # central differences of a solve at check_rtol with step check_h
    explicit_end_times: tuple = (1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5)
    explicit_max_steps: int = 10_000
    adjoint_end_times: tuple = (1e-2, 1e-1, 1e5)
    scipy_methods: tuple = ("scipy:Radau", "scipy:BDF", "scipy:LSODA")
    check_rtol: float = 1e-8
    check_h: float = 1e-4


DEFAULT_CONFIG = Config()
QUICK_CONFIG = replace(DEFAULT_CONFIG, iters=3, explicit_end_times=(1e-3, 1e5),
                       explicit_max_steps=500, adjoint_end_times=(1e-2, 1e-1),
                       scipy_methods=("scipy:BDF",))
CHECKPOINT_EVERY = 25  # iterations
# fields of Config that do not shape training: a resumed run may change them
NOT_TRAINING = ("iters", "explicit_end_times", "explicit_max_steps", "adjoint_end_times",
                "scipy_methods", "check_rtol", "check_h")


def build_parser():
    """The command-line options."""
    parser = cli.tutorial_parser(__doc__.split("\n")[0])
    cli.add_run_options(parser, "stiff", quick_help=f"a smoke test of seconds "
                        f"({QUICK_CONFIG.iters} iterations, fewer measurements)")
    parser.add_argument("--iters", type=cli.positive_int, default=None,
                        help=f"training iterations; when not given, {DEFAULT_CONFIG.iters} "
                        f"(with --quick {QUICK_CONFIG.iters}); a resumed run may train for more")
    return parser


def parse_args(argv=None):
    """The options of ``argv`` (default: the command line's)."""
    return cli.parse_tutorial_args(build_parser(), argv, "stiff")


def config_for(args):
    """The run's `Config`: the quick or the full one, with ``--iters`` when given."""
    config = QUICK_CONFIG if args.quick else DEFAULT_CONFIG
    return replace(config, iters=args.iters) if args.iters else config


def checkpoint_config(config, solver, seed, quick):
    """What a resumed run must share with the checkpoint: the options that shape training."""
    training = {name: value for name, value in asdict(config).items() if name not in NOT_TRAINING}
    return {**training, "solver": solver, "seed": seed, "quick": quick}


if NOTEBOOK:
    args = parse_args(cli.notebook_argv(QUICK, RESUME))
    runs.prepare_out_dir(args.out, args.quick)
    config = config_for(args)

# %% [markdown]
# ## Data
#
# Reaction j's rate is k_j times a product of two entries of (y1, y2, y3, 1): y1 * 1,
# y2 * y2 and y2 * y3. The field is written for the scaled state u = y / scale, so that one
# absolute tolerance suits every species (minode's `atol` is one number). The true solution is
# SciPy's Radau at rtol 1e-10, a solver independent of the one we train with.

# %%
TRUE_RATES = np.array([0.04, 3e7, 1e4])
TRUE_LOG10_RATES = np.log10(TRUE_RATES)
SPECIES = ("y1", "y2", "y3")
Y0 = np.array([1.0, 0.0, 0.0])
# rows: species; columns: the reactions k1, k2, k3
STOICHIOMETRY = np.array([[-1.0, 0.0, 1.0],
                          [1.0, -1.0, -1.0],
                          [0.0, 1.0, 0.0]])
FIRST_FACTOR, SECOND_FACTOR = np.array([0, 1, 1]), np.array([3, 1, 2])  # indices into (y, 1)


def reaction_rates(y, log10_rates):
    """The rates (k1 y1, k2 y2^2, k3 y2 y3) of the three reactions at concentrations y (3,)."""
    padded = ops.concatenate([y, backend.xp.ones(1)])
    return (ops.exp(math.log(10.0) * log10_rates)
            * ops.getitem(padded, backend.asarray(FIRST_FACTOR))
            * ops.getitem(padded, backend.asarray(SECOND_FACTOR)))


def robertson(scale):
    """The field du/dt = S r(u * scale) / scale of the scaled state u = y / scale."""
    scale, stoichiometry = backend.asarray(scale), backend.asarray(STOICHIOMETRY)

    def field(u, t, log10_rates):
        return ops.matmul(reaction_rates(u * scale, log10_rates), stoichiometry.T) / scale
    return field


class Data(NamedTuple):
    """Observation ``times`` (n,), the ``clean`` and ``observed`` concentrations (n, 3), and
    the per-species ``scale`` (3,): the largest observed value of each species."""

    times: np.ndarray
    clean: np.ndarray
    observed: np.ndarray
    scale: np.ndarray


def solve_grid(times):
    """The solve's time grid: t = 0, where y0 is given, then the observation times."""
    return np.concatenate([[0.0], times])


def true_solution(times):
    """y at ``times`` for the true rates (`TRUTH_SOLVER`), shape (n, 3)."""
    ys = odeint(robertson(np.ones(3)), backend.asarray(Y0), backend.asarray(solve_grid(times)),
                backend.asarray(TRUE_LOG10_RATES), **TRUTH_SOLVER)
    return backend.to_numpy(ys)[1:]


def make_data(config, rng):
    """The true concentrations at log-spaced times, observed with noise drawn from ``rng``."""
    times = np.logspace(np.log10(config.t_first), np.log10(config.t_last), config.n_times)
    clean = true_solution(times)
    observed = clean + config.noise * clean.max(axis=0) * rng.normal(size=clean.shape)
    return Data(times, clean, observed, np.abs(observed).max(axis=0))


def describe_data(data):
    """Print the observations' times and each species' range (its largest magnitude is the
    species' scale)."""
    print(f"{len(data.times)} observations at log-spaced times from {data.times[0]:.0e} to "
          f"{data.times[-1]:.0e}")
    for name, column in zip(SPECIES, data.observed.T):
        print(f"  {name}: observed from {column.min():.3g} to {column.max():.3g}")


if NOTEBOOK:
    data = make_data(config, np.random.default_rng(args.seed))
    describe_data(data)

# %% [markdown]
# ## Model and loss
#
# The parameters are log10 k (three numbers). The model's trajectory is one solve from y(0)
# through every observation time, solved and differentiated as ``solver`` (`odeint`'s keyword
# arguments) says; the loss is the mean squared error of the scaled concentrations.

# %%


def predict(log10_rates, data, times, solver, stats=None):
    """The model's scaled state u = y / scale at ``times``, shape (len(times), 3)."""
    us = odeint(robertson(data.scale), backend.asarray(Y0 / data.scale),
                backend.asarray(solve_grid(times)), log10_rates, **solver, stats=stats)
    return ops.getitem(us, slice(1, None))


def loss(log10_rates, data, solver, stats=None, n_times=None):
    """Mean squared error of the scaled concentrations at the first ``n_times`` observations
    (all by default)."""
    n = n_times or len(data.times)
    prediction = predict(log10_rates, data, data.times[:n], solver, stats)
    return ops.mean_squared_error(prediction, backend.asarray(data.observed[:n] / data.scale))


loss_and_grad = autograd.value_and_grad(loss)


def initial_params(config):
    """log10 k of the initial guess, as the backend's array."""
    return backend.asarray(np.array(config.initial_log10_rates))


if NOTEBOOK:
    print(f"loss at the initial guess {float(loss(initial_params(config), data, SOLVER)):.4g}, "
          f"at the true rates {float(loss(backend.asarray(TRUE_LOG10_RATES), data, SOLVER)):.4g}")

# %% [markdown]
# ## Which gradient?
#
# minode's adjoint (Algorithm 1) does not store the forward trajectory: it solves z backwards
# in time next to the adjoint a. Backwards, the modes that decay fast forwards grow fast (like
# exp(1e4 t) here). minode compares the recomputed z with the stored forward z at every output
# time and splits an interval where z drifted at checkpoints solved forwards; where the
# backward solve breaks down all the same, the gradient is refused with a `SolverError`, never
# returned wrong. SciPy's Radau, BDF and LSODA (`method="scipy:..."`) take the gradient by
# the interpolating adjoint instead: z is read off the forward solve's dense output, so
# nothing is solved backwards but a. Backprop differentiates rodas4's forward steps
# themselves and needs no backward solve. We compare each with backprop on the same
# observations, at the initial guess, with its CPU time; then backprop at the training
# tolerance with central differences of a tight solve.

# %%


def first_line(error):
    """The first line of an exception's message."""
    return str(error).splitlines()[0]


def timed_gradient(log10_rates, data, solver, n_times):
    """The loss's gradient on the first ``n_times`` observations and its CPU seconds."""
    cpu = time.process_time()
    _, grad = loss_and_grad(log10_rates, data, solver, n_times=n_times)
    return backend.to_numpy(grad), time.process_time() - cpu


def try_gradient(log10_rates, data, solver, end_time):
    """``solver``'s gradient on the observations up to ``end_time`` against backprop through
    rodas4: a row with ``relative_difference`` and ``cpu_seconds``, or ``refused``."""
    n = int(np.searchsorted(data.times, end_time, side="right"))
    row = {"method": solver["method"], "grad": solver["grad"], "end_time": end_time,
           "n_times": n}
    backprop, _ = timed_gradient(log10_rates, data,
                                 {**solver, "method": "rodas4", "grad": "backprop"}, n)
    try:
        # minode's backward solve overflows before it is refused; the refusal is the message
        with np.errstate(over="ignore", invalid="ignore"):
            grad, seconds = timed_gradient(log10_rates, data, solver, n)
    except SolverError as error:
        return {**row, "refused": first_line(error)}
    difference = np.abs(grad - backprop).max() / np.abs(backprop).max()
    return {**row, "relative_difference": float(difference), "cpu_seconds": seconds}


def central_differences(log10_rates, data, solver, rtol, h):
    """Central differences of the loss in each log10 k with step ``h``, each solve at ``rtol``
    (and atol = rtol / 100)."""
    tight = {**solver, "rtol": rtol, "atol": rtol * 1e-2}
    steps = backend.asarray(h * np.eye(3))
    return np.array([(float(loss(log10_rates + step, data, tight))
                      - float(loss(log10_rates - step, data, tight))) / (2 * h)
                     for step in steps])


def check_gradients(log10_rates, data, solver, config):
    """Every gradient mode of ``config``'s measurements tried against backprop (``solver``), and
    backprop against central differences, with backprop's own CPU seconds for one gradient on
    all the observations."""
    backprop, seconds = timed_gradient(log10_rates, data, solver, len(data.times))
    differences = central_differences(log10_rates, data, solver, config.check_rtol,
                                      config.check_h)
    adjoint = {**solver, "grad": "adjoint"}
    rows = [try_gradient(log10_rates, data, adjoint, end) for end in config.adjoint_end_times]
    rows += [try_gradient(log10_rates, data, {**adjoint, "method": method}, config.t_last)
             for method in config.scipy_methods]
    return {"modes": rows, "backprop_cpu_seconds": seconds,
            "backprop_vs_central_differences":
                float(np.abs(backprop - differences).max() / np.abs(differences).max())}


def report_gradients(checks):
    """Print each gradient mode's outcome and backprop's agreement with central differences."""
    print(f"\ngradients at the initial guess against backprop through rodas4 "
          f"({checks['backprop_cpu_seconds']:.2f} s CPU on all the observations):")
    for row in checks["modes"]:
        print(textwrap.fill(f"{gradient_line(row)}", width=100, initial_indent="  ",
                            subsequent_indent="    "))
    print(f"backprop (training tolerance) against central differences: relative difference "
          f"{checks['backprop_vs_central_differences']:.2g}")


def gradient_line(row):
    """One gradient mode's outcome against backprop."""
    where = (f"{row['method']}, {row['grad']}, t <= {row['end_time']:.0e} "
             f"({row['n_times']} observations): ")
    if "refused" in row:
        return where + "refused: " + row["refused"]
    return where + (f"relative difference {row['relative_difference']:.2g} "
                    f"({row['cpu_seconds']:.2f} s CPU)")


if NOTEBOOK:
    checks = check_gradients(initial_params(config), data, SOLVER, config)
    report_gradients(checks)


# %% [markdown]
# ## Training loop
#
# Full-batch Adam on log10 k; the whole state is one pytree, checkpointed every
# `CHECKPOINT_EVERY` iterations (`minode.runs`); Ctrl-C saves the last completed iteration.
# Nothing in training is random, so a resumed run repeats an uninterrupted one. The log keeps
# the loss and the parameters of every iteration and the solver's counts.

# %%


def fresh_state(params, optimizer):
    """The training state before the first iteration."""
    return {"step": 0, "params": params, "opt": optimizer.init(params),
            "log": {"losses": [], "log10_rates": [], "seconds": 0.0, "cpu_seconds": 0.0,
                    "nfe": 0, "steps": 0, "jacobians": 0, "factorisations": 0}}


def record_step(log, value, params, counts, seconds, cpu_seconds):
    """Add one iteration's loss, parameters (those the loss was taken at), solver counts and
    times to the log."""
    log["losses"].append(float(value))
    log["log10_rates"].append(backend.to_numpy(params).tolist())
    for name in ("nfe", "steps", "jacobians", "factorisations"):
        log[name] += getattr(counts, name)
    log["seconds"] += seconds
    log["cpu_seconds"] += cpu_seconds


def train(data, config, solver, checkpoint, resume=False, quiet=False):
    """Fit log10 k to ``data`` for ``config.iters`` iterations, each loss solved as ``solver``
    says, saving to (and with ``resume``, continuing from) ``checkpoint``; returns the final
    state."""
    optimizer = optim.Adam(lr=optim.step_decay(config.lr, 0.5, every=config.halve_lr_every))
    state = checkpoint.load_or(fresh_state(initial_params(config), optimizer), resume)
    stats = SolverStats()
    with checkpoint.saved_on_interrupt(lambda: state, total=config.iters):
        progress = runs.progress(range(state["step"], config.iters), initial=state["step"],
                                 total=config.iters, desc="rates", quiet=quiet)
        for iteration in progress:
            wall, cpu = time.perf_counter(), time.process_time()
            stats.reset()
            value, grads = loss_and_grad(state["params"], data, solver, stats)
            with runs.deferred_interrupt():
                record_step(state["log"], value, state["params"], stats.forward,
                            time.perf_counter() - wall, time.process_time() - cpu)
                state["params"], state["opt"] = optimizer.update(state["params"], grads,
                                                                 state["opt"])
                state["step"] = iteration + 1
                checkpoint.save_if_due(state, config.iters)
            progress.set_postfix(loss=f"{float(value):.4g}", refresh=False)
    return state


def training_checkpoint(out, config, solver, seed, quick):
    """The checkpoint file of a run in ``out``, recording what a resumed run must share."""
    return runs.Checkpoint(out / "checkpoint.npz", every=CHECKPOINT_EVERY,
                           config=checkpoint_config(config, solver, seed, quick))


if NOTEBOOK:
    state = train(data, config, SOLVER,
                  training_checkpoint(args.out, config, SOLVER, args.seed, args.quick),
                  resume=args.resume, quiet=args.quiet)
    print(f"loss {state['log']['losses'][0]:.4g} -> "
          f"{float(loss(state['params'], data, SOLVER)):.4g} after {state['step']} iterations")


# %% [markdown]
# ## Explicit against implicit
#
# The true system solved from t = 0 to each end time by dopri5 and by rodas4 at the training
# tolerances. dopri5 runs until `explicit_max_steps`; where it stops, its error says whether the
# problem appears stiff (Hairer's h * |lambda| estimate) and which methods to use instead.

# %%


def solve_once(method, end_time, data, solver, max_steps):
    """One solve of the true system to ``end_time`` by ``method`` at ``solver``'s tolerances:
    its counts, CPU seconds and, when it failed, the first line of the error."""
    stats, cpu = SolverStats(), time.process_time()
    row = {"method": method, "end_time": end_time}
    try:
        odeint(robertson(data.scale), backend.asarray(Y0 / data.scale),
               backend.asarray(np.array([0.0, end_time])), backend.asarray(TRUE_LOG10_RATES),
               **{**solver, "method": method}, max_steps=max_steps, stats=stats)
    except SolverError as error:
        row["error"] = first_line(error)
    counts = stats.forward
    return {**row, "nfe": counts.nfe, "steps": counts.steps, "jacobians": counts.jacobians,
            "factorisations": counts.factorisations, "cpu_seconds": time.process_time() - cpu}


def compare_solvers(data, solver, config):
    """dopri5 and rodas4 on the true system to each of ``config.explicit_end_times``."""
    return [solve_once(method, end_time, data, solver, config.explicit_max_steps)
            for end_time in config.explicit_end_times for method in ("dopri5", "rodas4")]


def solver_line(row, width=0):
    """One solve's counts and whether it stopped; numbers right-aligned to ``width``."""
    text = f"{row['nfe']:>{width}} evaluations, {row['steps']:>{width}} steps"
    if row["method"] == "rodas4":
        text += f", {row['jacobians']} Jacobians, {row['factorisations']} LUs"
    return text + (" STOPPED" if "error" in row else "") + f" ({row['cpu_seconds']:.2f} s)"


def report_solvers(rows):
    """Print each solve's counts and dopri5's error where it stopped."""
    print("\ndopri5 against rodas4 on the true system, from t = 0 to:")
    for row in rows:
        print(f"  t = {row['end_time']:<7.0e} {row['method']:>6}: {solver_line(row, width=6)}")
    stopped = [row for row in rows if "error" in row]
    if stopped:
        print(textwrap.fill(f"dopri5's error: {stopped[0]['error']}", width=100,
                            initial_indent="  ", subsequent_indent="    "))


if NOTEBOOK:
    solver_rows = compare_solvers(data, SOLVER, config)
    report_solvers(solver_rows)

# %% [markdown]
# ## Numbers
#
# The fitted rates against the true ones, the loss at the start, at the end and at the true
# rates (the noise's own level), the largest error of the fitted trajectory, the cost of one
# solve and of one training iteration, and the measurements above; written to
# `robertson_result.json` and, as tables, `table.md`.

# %%


def curves_for(data, final_params, solver, config):
    """The truth, initial-guess and fitted trajectories (concentrations) on a fine time grid."""
    times = np.logspace(np.log10(config.t_first), np.log10(config.t_last), 200)

    def concentrations(params):
        return backend.to_numpy(predict(backend.asarray(params), data, times, solver)) \
            * data.scale

    return {"truth": (times, true_solution(times)),
            "initial guess": (times, concentrations(np.array(config.initial_log10_rates))),
            "fit": (times, concentrations(final_params))}


def summarize(state, data, solver, curves, checks, solver_rows):
    """The run's numbers (a JSON-ready dict)."""
    log, iters = state["log"], state["step"]
    fitted = backend.to_numpy(state["params"])
    stats = SolverStats()
    loss_at_truth = float(loss(backend.asarray(TRUE_LOG10_RATES), data, solver))
    final_loss = float(loss(state["params"], data, solver, stats=stats))
    fit_error = np.abs(curves["fit"][1] - curves["truth"][1]).max(axis=0) / data.scale
    return {"iters": iters, "seconds": log["seconds"], "cpu_seconds": log["cpu_seconds"],
            "fitted_rates": (10.0 ** fitted).tolist(), "true_rates": TRUE_RATES.tolist(),
            "relative_errors": (10.0 ** (fitted - TRUE_LOG10_RATES) - 1).tolist(),
            "initial_loss": log["losses"][0], "final_loss": final_loss,
            "loss_at_true_rates": loss_at_truth,
            "max_scaled_trajectory_error": fit_error.tolist(),
            "solve": {name: getattr(stats.forward, name)
                      for name in ("nfe", "steps", "jacobians", "factorisations")},
            "per_iteration": {name: log[name] / iters
                              for name in ("nfe", "steps", "jacobians", "factorisations",
                                           "cpu_seconds")},
            "gradients": checks, "solvers": solver_rows}


def report(result):
    """Print the numbers."""
    print(f"\n== Robertson: {result['iters']} iterations in {result['seconds']:.1f} s "
          f"({result['cpu_seconds']:.1f} s CPU)")
    for i, (fit, true, error) in enumerate(zip(result["fitted_rates"], result["true_rates"],
                                               result["relative_errors"])):
        print(f"k{i + 1}: fitted {fit:.5g}, true {true:.5g}, relative error {error:+.2%}")
    print(f"loss {result['initial_loss']:.4g} -> {result['final_loss']:.4g} "
          f"(at the true rates: {result['loss_at_true_rates']:.4g})")
    print("largest |fit - truth| / scale per species: "
          + ", ".join(f"{e:.2g}" for e in result["max_scaled_trajectory_error"]))
    solve, per = result["solve"], result["per_iteration"]
    print(f"one rodas4 solve at the fitted rates: {solve['nfe']} evaluations, {solve['steps']} "
          f"steps, {solve['jacobians']} Jacobians, {solve['factorisations']} LU factorisations;"
          f" a training iteration (solve + backprop) {per['cpu_seconds']:.2f} s CPU")
    report_solvers(result["solvers"])
    report_gradients(result["gradients"])
    for path in result.get("files", []):
        print(f"  wrote {path}")


def results_table(result):
    """The fitted rates and the solver comparison as Markdown, with the command."""
    lines = ["| rate | true | fitted | relative error |", "|---|---:|---:|---:|"]
    lines += [f"| k{i + 1} | {true:.4g} | {fit:.4g} | {error:+.2%} |"
              for i, (fit, true, error) in enumerate(zip(
                  result["fitted_rates"], result["true_rates"], result["relative_errors"]))]
    lines += ["", "| end time | dopri5 | rodas4 |", "|---:|---|---|"]
    rows = result["solvers"]
    for explicit, implicit in zip(rows[::2], rows[1::2]):
        lines.append(f"| {explicit['end_time']:.0e} | {solver_line(explicit)} | "
                     f"{solver_line(implicit)} |")
    lines += ["", f"Command: `{runs.command_line()}`"]
    return "\n".join(lines)


def write_table(result, out):
    """Write `results_table` to ``out/table.md`` and say so."""
    path = out / "table.md"
    write_text_atomically(path, results_table(result) + "\n")
    print(f"\nwrote {path}")


if NOTEBOOK:
    curves = curves_for(data, backend.to_numpy(state["params"]), SOLVER, config)
    result = summarize(state, data, SOLVER, curves, checks, solver_rows)
    runs.write_result(args.out, "robertson", result, options=vars(args))
    report(result)
    write_table(result, args.out)

# %% [markdown]
# ## Pictures
#
# The trajectories on a log time axis (data, initial guess, fit, truth), the fitted rates and
# the loss over training, and evaluations and steps of dopri5 and rodas4 against the end time.

# %%
PLOT_STYLES = {  # the truth on top, dashed, so that the fit never hides it
    "observed": dict(s=10, color="tab:blue", alpha=0.55, zorder=1, linewidths=0),
    "initial guess": dict(color="grey", ls=":", lw=1.5, zorder=2),
    "fit": dict(color="crimson", lw=2.5, alpha=0.6, zorder=3),
    "truth": dict(color="k", ls="--", lw=1, zorder=4),
}


def plot_trajectories(data, curves, out):
    """One panel per species: observations, and each of ``curves`` {label: (times, y)}."""
    fig, axes = plots.figure(1, 3, figsize=(13, 3.8))
    for i, ax in enumerate(axes):
        ax.scatter(data.times, data.observed[:, i], label="observed (noisy)",
                   **PLOT_STYLES["observed"])
        for label in ("initial guess", "fit", "truth"):
            times, ys = curves[label]
            ax.plot(times, ys[:, i], label=label, **PLOT_STYLES[label])
        ax.set(xscale="log", xlabel="time t (log scale)", ylabel=f"concentration {SPECIES[i]}",
               title=f"species {SPECIES[i]}")
    axes[0].legend(loc="lower left")
    return plots.save_png(fig, out / "trajectories.png")


def plot_training(log, loss_at_truth, out):
    """log10 k_i over training against the true value, and the loss."""
    history, losses = np.array(log["log10_rates"]), np.array(log["losses"])
    fig, axes = plots.figure(1, 4, figsize=(15, 3.5))
    for i, ax in enumerate(axes[:3]):
        ax.plot(history[:, i], color="crimson", lw=1.5, label="fitted, during training")
        ax.axhline(TRUE_LOG10_RATES[i], color="k", ls="--", lw=1, label="true value")
        ax.set(title=f"rate constant k{i + 1}", xlabel="iteration", ylabel=f"log10 k{i + 1}")
    axes[0].legend(loc="best")
    axes[3].semilogy(losses, color="crimson", lw=1.5, label="training loss")
    axes[3].axhline(loss_at_truth, color="k", ls="--", lw=1,
                    label="loss at the true rates (noise level)")
    axes[3].set(title="loss", xlabel="iteration",
                ylabel="mean squared error (scaled units)")
    axes[3].legend(loc="best")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return plots.save_png(fig, out / "training.png")


def plot_solvers(rows, max_steps, out):
    """Evaluations and steps of each method against the end time; solves stopped by
    ``max_steps`` crossed, at their counts when they stopped."""
    fig, axes = plots.figure(1, 2, figsize=(10, 4.8))
    for method, color in (("dopri5", "tab:orange"), ("rodas4", "tab:green")):
        mine = [row for row in rows if row["method"] == method]
        solved = [row for row in mine if "error" not in row]
        stopped = [row for row in mine if "error" in row]
        for ax, key in zip(axes, ("nfe", "steps")):
            ax.plot([row["end_time"] for row in solved], [row[key] for row in solved], "o-",
                    color=color, label=f"{method}, reached the end time")
            if stopped:
                ax.plot([row["end_time"] for row in stopped], [row[key] for row in stopped],
                        "x", color=color, ms=10, label=f"{method}, stopped by max_steps="
                        f"{max_steps} before the end time (its counts when it stopped)")
    titles = ("evaluations of the field\n(rodas4 also forms a Jacobian and an LU each step)",
              "steps (accepted + rejected)")
    for ax, title, what in zip(axes, titles, ("function evaluations", "steps")):
        ax.set(xscale="log", yscale="log", xlabel="end time of the solve from t = 0",
               ylabel=what, title=title)
    # one legend below both panels, where it hides no point
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center")
    fig.tight_layout(rect=(0, 0.18, 1, 1))
    return plots.save_png(fig, out / "solvers.png", tight=False)


def save_pictures(data, curves, state, loss_at_truth, solver_rows, max_steps, out):
    """Every picture; returns their paths."""
    return [plot_trajectories(data, curves, out),
            plot_training(state["log"], loss_at_truth, out),
            plot_solvers(solver_rows, max_steps, out)]


if NOTEBOOK:
    result["files"] = save_pictures(data, curves, state, result["loss_at_true_rates"],
                                    solver_rows, config.explicit_max_steps, args.out)

# %% [markdown]
# ## Running it
#
# As a script, `main` runs the cells above in order: data, training, the gradient and solver
# measurements, numbers, pictures.

# %%


def main(argv=None):
    """Run the tutorial; returns its numbers (used by the tests)."""
    args = parse_args(argv)
    runs.prepare_out_dir(args.out, args.quick)
    config = config_for(args)
    data = make_data(config, np.random.default_rng(args.seed))
    state = train(data, config, SOLVER,
                  training_checkpoint(args.out, config, SOLVER, args.seed, args.quick),
                  resume=args.resume, quiet=args.quiet)
    checks = check_gradients(initial_params(config), data, SOLVER, config)
    solver_rows = compare_solvers(data, SOLVER, config)
    curves = curves_for(data, backend.to_numpy(state["params"]), SOLVER, config)
    result = summarize(state, data, SOLVER, curves, checks, solver_rows)
    runs.write_result(args.out, "robertson", result, options=vars(args))
    result["files"] = save_pictures(data, curves, state, result["loss_at_true_rates"],
                                    solver_rows, config.explicit_max_steps, args.out)
    report(result)
    write_table(result, args.out)
    return result


if __name__ == "__main__" and not NOTEBOOK:
    runs.run_script(main)
