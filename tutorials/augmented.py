# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
# ---

# %% [markdown]
"""Tutorial 6: what a Neural ODE cannot represent, and augmented Neural ODEs (Dupont et al. 2019).

Dupont, Doucet & Teh 2019, "Augmented Neural ODEs" (NeurIPS): the flow of an ODE is a
homeomorphism, so its trajectories cannot cross. In one dimension a Neural ODE cannot map
x = -1 to 1 and x = 1 to -1 (their g_1d); in two it cannot pull a disc out of the annulus
around it (their concentric spheres g), only squeeze the annulus through the gaps between the
training points. Appending p dimensions that start at zero, and solving in R^(d + p), removes
both limits (`minode.augment`). We reproduce

* g_1d: the Neural ODE's best fit (both points pushed to 0, a Huber loss that cannot go below
  0.5) and its crossing-free trajectories, against the augmented ODE (p = 1), whose
  trajectories cross in the data dimension and fit g_1d;
* the concentric annuli (class -1 inside radius 0.5, +1 between radii 1 and 1.5; the
  authors' config.json: 500 + 1500 points, a time-dependent ReLU MLP with 32 hidden units,
  dopri5 at tolerance 1e-3, Adam at 1e-3, batches of 64, 30 epochs, Huber loss on a linear
  readout): the Neural ODE against augmented ones with p = 1 and p = 5, same seeds and budget,
  each trained ten times from its own seed (the authors' num_reps). Loss and accuracy over
  training, forward evaluations (NFE) over training and at the end, decision boundaries,
  trajectories and final features; the paper's qualitative claims (it gives figures, no
  table) next to our numbers.

Run ``python tutorials/augmented.py`` (9.3 minutes of CPU time on one core of a 2-core machine)
and look at the PNGs and ``table.md`` in ``results/augmented/`` (relative to the current
directory). ``--quick`` is a smoke test of seconds whose numbers mean nothing; it writes to
``results/quick/augmented/``. ``--resume`` continues from the checkpoints in ``--out``; Ctrl-C
saves the last completed iteration there and prints the command that resumes.

The file is also a notebook: open it with the Jupytext extension of Jupyter or VS Code, or
convert it with ``jupytext --to notebook tutorials/augmented.py``, set ``QUICK`` and ``RESUME``
in the config cell and run the cells in order; each cell runs its step. From a notebook the
results go to ``results/...`` relative to the notebook's folder, i.e.
``tutorials/results/augmented/``.
"""
# %% [markdown]
# # Crossing trajectories need more dimensions
#
# A Neural ODE maps an input x to h(1), the solution at t = 1 of dh/dt = f(h, t) from h(0) = x.
# Two solutions of the same ODE never meet: if they did, both would continue from the same
# point as the same solution. In one dimension that keeps their order, so h(1) is an
# increasing function of x and g(x) = -x is out of reach. An augmented Neural ODE solves
#
#     d/dt [h, a] = f([h, a], t),    [h(0), a(0)] = [x, 0]
#
# in d + p dimensions; the trajectories still never meet there, but their projections onto
# the d data dimensions may cross.

# %%
import time
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import autograd
import numpy as np

from minode import SolverStats, augment, backend, cli, nn, ops, optim, plots, runs
from minode.files import write_text_atomically

# %% [markdown]
# ## Config
# In a notebook, set these and run the cells in order; as a script, the command line sets them.
#
# `SOLVER` is the authors' (anode/models.py): dopri5 with rtol = atol = 1e-3, at most 1000 steps,
# differentiated by backprop through the solver's steps (their default, ``adjoint=False``). At
# so loose a tolerance backprop gives the exact gradient of the solution the model computes,
# where the adjoint's backward solve would recompute z(t) with errors of the same 1e-3; memory
# is no concern with states of 64 x (2 + p) numbers.

# %%
QUICK = False    # True: a smoke test of seconds; its numbers mean nothing
RESUME = False   # True: continue from the checkpoints in the results folder
NOTEBOOK = cli.notebook_cells_run(__name__)   # run each cell's step as the cell runs

SOLVER = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "max_steps": 1000,
          "grad": "backprop"}


@dataclass(frozen=True)
class Config:
    """The data, the models, the training and the measurements of one run."""

    # g_1d: x = -1 and x = 1 mapped to -x; MLP 1 + p + 1 (time) -> hidden -> hidden -> 1 + p;
    # full-batch Adam
    flip_hidden: int = 16
    flip_lr: float = 1e-2
    flip_iters: int = 300
    flip_augment_dims: tuple = (0, 1)
    # annuli: class -1 with radius in inner, +1 with radius in outer (config.json); a test set
    # of the same size drawn apart; MLP 2 + p + 1 -> hidden -> hidden -> 2 + p, linear readout
    n_inner: int = 500
    n_outer: int = 1500
    inner: tuple = (0.0, 0.5)
    outer: tuple = (1.0, 1.5)
    hidden: int = 32
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 30
    augment_dims: tuple = (0, 1, 5)
    repeats: int = 10
    # pictures: starting points of the 1-D trajectories, the decision boundary's grid, points
    # per class whose trajectories are drawn, and the times they are drawn at
    flip_starts: int = 31
    boundary_grid: int = 120
    trajectory_points: int = 25
    trajectory_times: int = 30


DEFAULT_CONFIG = Config()
QUICK_CONFIG = replace(DEFAULT_CONFIG, flip_iters=4, n_inner=40, n_outer=120, epochs=2,
                       repeats=1, flip_starts=7, boundary_grid=15, trajectory_points=4,
                       trajectory_times=5)
FLIP_CHECKPOINT_EVERY = 50  # iterations; the annuli's runs save every epoch
# fields of Config that do not shape a training run: a resumed run may change them
NOT_TRAINING = ("flip_iters", "flip_augment_dims", "epochs", "augment_dims", "repeats",
                "flip_starts", "boundary_grid", "trajectory_points", "trajectory_times")


def build_parser():
    """The command-line options."""
    parser = cli.tutorial_parser(__doc__.split("\n")[0])
    cli.add_run_options(parser, "augmented", quick_help=f"a smoke test of seconds "
                        f"({QUICK_CONFIG.epochs} epochs of {QUICK_CONFIG.n_inner} + "
                        f"{QUICK_CONFIG.n_outer} points, one repeat)")
    parser.add_argument("--epochs", type=cli.positive_int, default=None,
                        help=f"epochs on the annuli; when not given, {DEFAULT_CONFIG.epochs} "
                        f"(with --quick {QUICK_CONFIG.epochs}); a resumed run may train for more")
    parser.add_argument("--repeats", type=cli.positive_int, default=None,
                        help=f"trainings of each model on the annuli, each from its own seed; "
                        f"when not given, {DEFAULT_CONFIG.repeats} (with --quick "
                        f"{QUICK_CONFIG.repeats})")
    return parser


def parse_args(argv=None):
    """The options of ``argv`` (default: the command line's)."""
    return cli.parse_tutorial_args(build_parser(), argv, "augmented")


def config_for(args):
    """The run's `Config`: the quick or the full one, with ``--epochs`` and ``--repeats``."""
    config = QUICK_CONFIG if args.quick else DEFAULT_CONFIG
    given = {name: getattr(args, name) for name in ("epochs", "repeats") if getattr(args, name)}
    return replace(config, **given)


if NOTEBOOK:
    notebook_cpu = time.process_time()
    args = parse_args(cli.notebook_argv(QUICK, RESUME))
    runs.prepare_out_dir(args.out, args.quick)
    config = config_for(args)

# %% [markdown]
# ## Data
#
# g_1d is two points, x = -1 and x = 1, with targets -x (the authors' `Data1D` draws many
# copies of them; full batches of the two are the same loss). The annuli follow the authors'
# `ConcentricSphere`: a radius drawn as r0 + (r1 - r0) sqrt(u), u uniform, and a uniform
# direction, so the points are uniform in area. The test set is drawn by the same rule from
# its own generator; nothing is tuned on it.

# %%
FLIP_X = np.array([[-1.0], [1.0]])


class Annuli(NamedTuple):
    """Training and test points (n, 2) with their labels (n,), -1 inside and +1 outside."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def points_in_annulus(rng, n, radii):
    """``n`` points uniform in area between the radii (r0, r1) around the origin, (n, 2)."""
    r0, r1 = radii
    radius = (r1 - r0) * np.sqrt(rng.uniform(size=n)) + r0
    direction = rng.normal(size=(n, 2))
    return radius[:, None] * direction / np.linalg.norm(direction, axis=1, keepdims=True)


def labelled_annuli(rng, config):
    """``config.n_inner`` points of class -1 and ``config.n_outer`` of class +1."""
    x = np.concatenate([points_in_annulus(rng, config.n_inner, config.inner),
                        points_in_annulus(rng, config.n_outer, config.outer)])
    y = np.concatenate([-np.ones(config.n_inner), np.ones(config.n_outer)])
    return x, y


def make_annuli(config, seed):
    """The training set from generator [seed, 0], the test set from [seed, 1]."""
    train = labelled_annuli(np.random.default_rng([seed, 0]), config)
    test = labelled_annuli(np.random.default_rng([seed, 1]), config)
    return Annuli(*train, *test)


if NOTEBOOK:
    data = make_annuli(config, args.seed)
    print(f"annuli: {len(data.x_train)} training and {len(data.x_test)} test points")

# %% [markdown]
# ## Model and loss
#
# The field is the authors' `ODEFunc` with ``time_dependent=True``: an MLP of the state and t,
# ReLU between its layers, two hidden layers. A model with p augmented dimensions solves it in
# 2 + p (or 1 + p) dimensions from [x, 0] by `augment.augmented_odeint`. On g_1d the output is
# h(1) itself, the data part of the state; on the annuli a linear layer reads all 2 + p
# entries, as the authors' `ODENet` does. The loss is the authors': the Huber loss (PyTorch's
# SmoothL1) of the output against the label, 0.5 e^2 for |e| < 1 and |e| - 0.5 beyond; the
# predicted class is the output's sign.
#
# On g_1d the Huber loss of any increasing map is at least 0.5: with h(1) = a at x = -1 and
# b >= a at x = 1, the errors 1 - a and b + 1 add up to at least 2, and by the loss's convexity
# and symmetry the mean is at least H(1) = 0.5, approached as a and b go to 0.

# %%
UNIT_INTERVAL = np.array([0.0, 1.0])
FLIP_LOSS_BOUND = 0.5   # the least Huber loss of an increasing map on g_1d (above)


def field(z, t, layers):
    """dz/dt = MLP([z, t]) with ReLU, for a batch of states z (B, n)."""
    times = ops.multiply(backend.xp.ones((z.shape[0], 1), dtype=z.dtype), t)
    return nn.mlp(layers, ops.concatenate([z, times], axis=1), activation=ops.relu)


def init_field(rng, width, hidden):
    """The field's layers for states of ``width`` entries."""
    return nn.init_mlp(rng, [width + 1, hidden, hidden, width])


def init_classifier(rng, p, hidden):
    """The annuli's model with ``p`` augmented dimensions: the field and the readout."""
    return {"field": init_field(rng, 2 + p, hidden), "readout": nn.init_linear(rng, 2 + p, 1)}


def flow(layers, x, p, times=UNIT_INTERVAL, solver=SOLVER, stats=None, keep_augmented=False):
    """The solution from [x, 0] at ``times``, (len(times), B, d) or with the p augmented
    entries (d + p) when ``keep_augmented``."""
    return augment.augmented_odeint(field, x, backend.asarray(times), layers, p=p,
                                    keep_augmented=keep_augmented, **solver, stats=stats)


def readout(params, features):
    """The annuli model's output w . z + b for the final states z (B, 2 + p), shape (B,)."""
    return ops.ravel(nn.linear(params["readout"], features))


def classify(params, x, p, solver=SOLVER, stats=None):
    """The annuli model's output for the points ``x`` (B, 2): its sign is the class."""
    features = ops.getitem(flow(params["field"], x, p, solver=solver, stats=stats,
                                keep_augmented=True), -1)
    return readout(params, features)


def huber(errors):
    """The mean Huber loss (PyTorch's SmoothL1, threshold 1) of ``errors``."""
    size = ops.absolute(errors)
    return ops.mean(ops.where(size < 1.0, 0.5 * errors * errors, size - 0.5))


def flip_loss(layers, p, stats=None):
    """g_1d's loss: h(1) from x = -1 and x = 1 against -x."""
    return huber(ops.getitem(flow(layers, FLIP_X, p, stats=stats), -1) + FLIP_X)


def annuli_loss(params, x, y, p, stats=None):
    """The annuli's loss of the points ``x`` with labels ``y``."""
    return huber(classify(params, x, p, stats=stats) - y)


flip_loss_and_grad = autograd.value_and_grad(flip_loss)
annuli_loss_and_grad = autograd.value_and_grad(annuli_loss)


def accuracy(outputs, labels):
    """The fraction of ``outputs`` whose sign is the label."""
    return float(np.mean(np.sign(backend.to_numpy(outputs)) == labels))


if NOTEBOOK:
    for p in config.augment_dims:
        model = init_classifier(np.random.default_rng([args.seed, 0]), p, config.hidden)
        print(f"p = {p}: {nn.count_params(model)} parameters, untrained loss "
              f"{float(annuli_loss(model, data.x_train, data.y_train, p)):.3f}")

# %% [markdown]
# ## Training loop
#
# Adam on each model, the whole state one pytree checkpointed by `minode.runs` (every
# `FLIP_CHECKPOINT_EVERY` iterations on g_1d, every epoch on the annuli); Ctrl-C saves the
# last completed iteration. Repeat r of every model starts from generator [seed, r] and sees
# the batches of generator [seed, r, epoch], so the models of one repeat differ only in p,
# and a resumed run repeats an uninterrupted one. The log keeps every iteration's loss and
# forward NFE, and at every epoch's end the loss and accuracy on all the training points and
# the test accuracy.

# %%


class Run(NamedTuple):
    """One training: the task ("flip" or "annuli"), the augmented dimensions, the repeat."""

    task: str
    p: int
    repeat: int = 0

    @property
    def name(self):
        return f"{self.task}_p{self.p}" + (f"_r{self.repeat}" if self.task == "annuli" else "")


def steps_per_epoch(config):
    """Batches in one epoch over the annuli's training points."""
    return -(-(config.n_inner + config.n_outer) // config.batch_size)


def total_steps(run, config):
    """The iterations of ``run``."""
    return config.flip_iters if run.task == "flip" else config.epochs * steps_per_epoch(config)


def fresh_state(run, config, seed, optimizer):
    """The training state before the first iteration."""
    rng = np.random.default_rng([seed, run.repeat])
    params = (init_field(rng, 1 + run.p, config.flip_hidden) if run.task == "flip"
              else init_classifier(rng, run.p, config.hidden))
    return {"step": 0, "params": params, "opt": optimizer.init(params),
            "log": {"losses": [], "nfe": [], "epochs": [], "cpu_seconds": 0.0}}


def batch_indices(step, config, seed, repeat):
    """The annuli's training points of iteration ``step``: batches of a permutation drawn
    per epoch."""
    epoch, k = divmod(step, steps_per_epoch(config))
    order = np.random.default_rng([seed, repeat, epoch]).permutation(
        config.n_inner + config.n_outer)
    return order[k * config.batch_size:(k + 1) * config.batch_size]


def evaluate(params, p, data):
    """Loss and accuracy on all the training points, the test accuracy and the forward NFE
    of one solve of the test set."""
    train_outputs, stats = classify(params, data.x_train, p), SolverStats()
    test_outputs = classify(params, data.x_test, p, stats=stats)
    return {"loss": float(huber(train_outputs - data.y_train)),
            "accuracy": accuracy(train_outputs, data.y_train),
            "test_accuracy": accuracy(test_outputs, data.y_test),
            "test_nfe": stats.forward.nfe}


def train_step(run, params, data, config, seed, step, stats):
    """The loss and gradient of iteration ``step`` of ``run``."""
    if run.task == "flip":
        return flip_loss_and_grad(params, run.p, stats)
    batch = batch_indices(step, config, seed, run.repeat)
    return annuli_loss_and_grad(params, data.x_train[batch], data.y_train[batch], run.p, stats)


def train(run, data, config, seed, checkpoint, resume=False, quiet=False):
    """Train ``run`` for its iterations, saving to (and with ``resume``, continuing from)
    ``checkpoint``; returns the final state."""
    lr = config.flip_lr if run.task == "flip" else config.lr
    optimizer, total = optim.Adam(lr=lr), total_steps(run, config)
    state = checkpoint.load_or(fresh_state(run, config, seed, optimizer), resume)
    if state["step"] == 0 and run.task == "annuli":
        state["log"]["epochs"].append(evaluate(state["params"], run.p, data))
    stats, per_epoch = SolverStats(), steps_per_epoch(config)
    with checkpoint.saved_on_interrupt(lambda: state, total=total):
        progress = runs.progress(range(state["step"], total), initial=state["step"],
                                 total=total, desc=run.name, quiet=quiet)
        for step in progress:
            cpu = time.process_time()
            stats.reset()
            value, grads = train_step(run, state["params"], data, config, seed, step, stats)
            params, opt = optimizer.update(state["params"], grads, state["opt"])
            ends_epoch = run.task == "annuli" and (step + 1) % per_epoch == 0
            record = evaluate(params, run.p, data) if ends_epoch else None
            with runs.deferred_interrupt():
                log = state["log"]
                log["losses"].append(float(value))
                log["nfe"].append(stats.forward.nfe)
                if record:
                    log["epochs"].append(record)
                log["cpu_seconds"] += time.process_time() - cpu
                state["params"], state["opt"], state["step"] = params, opt, step + 1
                checkpoint.save_if_due(state, total)
            progress.set_postfix(loss=f"{float(value):.4f}", nfe=stats.forward.nfe,
                                 refresh=False)
    return state


def training_checkpoint(run, out, config, seed, quick):
    """The checkpoint file of ``run`` in ``out``, recording what a resumed run must share."""
    training = {name: value for name, value in asdict(config).items() if name not in NOT_TRAINING}
    every = FLIP_CHECKPOINT_EVERY if run.task == "flip" else steps_per_epoch(config)
    return runs.Checkpoint(out / f"{run.name}.npz", every=every,
                           config={**training, "task": run.task, "p": run.p,
                                   "repeat": run.repeat, "solver": SOLVER, "seed": seed,
                                   "quick": quick})


def train_all(runs_to_train, data, config, args):
    """``{run: final state}`` for each of ``runs_to_train``, trained in turn."""
    return {run: train(run, data, config, args.seed,
                       training_checkpoint(run, args.out, config, args.seed, args.quick),
                       resume=args.resume, quiet=args.quiet)
            for run in runs_to_train}


def all_runs(config):
    """g_1d for each of ``flip_augment_dims``, then every repeat of the annuli's models."""
    return ([Run("flip", p) for p in config.flip_augment_dims]
            + [Run("annuli", p, r) for r in range(config.repeats) for p in config.augment_dims])


if NOTEBOOK:
    states = train_all(all_runs(config), data, config, args)

# %% [markdown]
# ## Measurements
#
# g_1d: each model's map x -> h(1) on a grid of starting points, its trajectories, and
# whether they kept their order (the Neural ODE must, up to the solver's error). Annuli, per
# model: the loss, accuracy and NFE over training (means over the repeats), and the final
# numbers: loss and accuracy on all the training points, test accuracy, the forward NFE of
# the last epoch's iterations and of one solve of the test set.

# %%


def flip_measurements(states, config):
    """For each g_1d model: its trajectories from a grid of starts and its final loss."""
    starts = np.linspace(-1.5, 1.5, config.flip_starts)[:, None]
    times = np.linspace(0.0, 1.0, config.trajectory_times)
    found = {}
    for run, state in states.items():
        if run.task != "flip":
            continue
        paths = backend.to_numpy(flow(state["params"], starts, run.p, times,
                                      keep_augmented=True))
        order = np.argsort(starts[:, 0])
        # the order of the starts, kept at every time: no two trajectories crossed in h
        kept = bool(np.all(np.diff(paths[:, order, 0], axis=1) > 0))
        ends = backend.to_numpy(ops.getitem(flow(state["params"], FLIP_X, run.p), -1))[:, 0]
        found[run.p] = {"p": run.p, "final_loss": float(flip_loss(state["params"], run.p)),
                        "h1_at_minus_1": float(ends[0]), "h1_at_plus_1": float(ends[1]),
                        "order_kept": kept, "final_nfe": state["log"]["nfe"][-1],
                        "cpu_seconds": state["log"]["cpu_seconds"], "starts": starts[:, 0],
                        "times": times, "paths": paths, "losses": state["log"]["losses"]}
    return found


def annuli_summary(p, states, config):
    """Means and spreads over the repeats of one annuli model's final numbers."""
    mine = [state for run, state in states.items() if run.task == "annuli" and run.p == p]
    per_epoch = steps_per_epoch(config)
    finals = {"loss": [s["log"]["epochs"][-1]["loss"] for s in mine],
              "accuracy": [s["log"]["epochs"][-1]["accuracy"] for s in mine],
              "test_accuracy": [s["log"]["epochs"][-1]["test_accuracy"] for s in mine],
              "test_nfe": [s["log"]["epochs"][-1]["test_nfe"] for s in mine],
              "last_epoch_nfe": [float(np.mean(s["log"]["nfe"][-per_epoch:])) for s in mine],
              "first_epoch_nfe": [float(np.mean(s["log"]["nfe"][:per_epoch])) for s in mine],
              "cpu_seconds": [s["log"]["cpu_seconds"] for s in mine]}
    return {"p": p, "repeats": len(mine), "iterations": mine[0]["step"],
            **{name: {"mean": float(np.mean(values)), "std": float(np.std(values)),
                      "values": values} for name, values in finals.items()}}


def epoch_curves(p, states, config):
    """One annuli model's per-epoch curves, one row per repeat: loss, accuracy, test accuracy
    (epoch 0 is before training) and the mean forward NFE of each epoch's iterations."""
    mine = [state for run, state in states.items() if run.task == "annuli" and run.p == p]
    per_epoch = steps_per_epoch(config)
    curves = {name: np.array([[e[name] for e in s["log"]["epochs"]] for s in mine])
              for name in ("loss", "accuracy", "test_accuracy")}
    curves["nfe"] = np.array([np.reshape(s["log"]["nfe"], (-1, per_epoch)).mean(axis=1)
                              for s in mine])
    return curves


if NOTEBOOK:
    flips = flip_measurements(states, config)
    summaries = [annuli_summary(p, states, config) for p in config.augment_dims]

# %% [markdown]
# ## Numbers
#
# g_1d's losses and end points; for each annuli model the final numbers as mean +- standard
# deviation over the repeats; the paper's qualitative claims (its introduction and the
# authors' notebooks; it gives figures, no table for these tasks) next to ours. Written to
# `augmented_result.json` and, as tables, `table.md`.

# %%


def model_name(p):
    """"Neural ODE" for p = 0, else "ANODE, p = ..."."""
    return "Neural ODE" if p == 0 else f"ANODE, p = {p}"


def spread(entry, digits=3, scale=1.0):
    """``mean +- std`` of one summary entry."""
    return f"{scale * entry['mean']:.{digits}g} +- {scale * entry['std']:.2g}"


def claims(flips, summaries):
    """The paper's qualitative claims and what this run measured, as (claim, ours) rows."""
    node, anodes = summaries[0], summaries[1:]
    rows = []
    if 0 in flips and 1 in flips:
        node_flip, anode_flip = flips[0], flips[1]
        rows += [
            ("g_1d: a Neural ODE cannot represent it; its trajectories cannot cross, and "
             "training maps both points towards 0",
             f"Huber loss {node_flip['final_loss']:.4f} (bound {FLIP_LOSS_BOUND}); h(1) = "
             f"{node_flip['h1_at_minus_1']:.3g} and {node_flip['h1_at_plus_1']:.3g}; order of "
             f"{len(node_flip['starts'])} starts kept: {node_flip['order_kept']}"),
            ("g_1d: one augmented dimension represents it",
             f"Huber loss {anode_flip['final_loss']:.2g}; h(1) = "
             f"{anode_flip['h1_at_minus_1']:.3g} and {anode_flip['h1_at_plus_1']:.3g}")]
    for anode in anodes:
        rows += [
            (f"annuli: ANODEs 'achieve lower losses' (introduction) [p = {anode['p']}]",
             f"final loss {spread(anode['loss'])} against {spread(node['loss'])}"),
            (f"annuli: a Neural ODE's flow becomes 'complex' and 'computationally expensive "
             f"to solve'; ANODEs 'significantly reduce the computational cost' "
             f"(introduction) [p = {anode['p']}]",
             f"forward NFE, first -> last epoch: {spread(node['first_epoch_nfe'])} -> "
             f"{spread(node['last_epoch_nfe'])} against {spread(anode['first_epoch_nfe'])} "
             f"-> {spread(anode['last_epoch_nfe'])}"),
            (f"annuli: ANODEs 'generalize better' (introduction); the Neural ODE fits 'at the "
             f"cost of poor generalization' (the authors' notebook) [p = {anode['p']}]",
             f"test accuracy {spread(anode['test_accuracy'], scale=100)}% against "
             f"{spread(node['test_accuracy'], scale=100)}%")]
    return rows


def summarize(flips, summaries, config, cpu_seconds):
    """The run's numbers (a JSON-ready dict)."""
    flip_numbers = {str(p): {key: value for key, value in found.items()
                             if key not in ("starts", "times", "paths", "losses")}
                    for p, found in flips.items()}
    return {"flip": flip_numbers, "annuli": summaries,
            "claims": [{"paper": paper, "ours": ours}
                       for paper, ours in claims(flips, summaries)],
            "epochs": config.epochs, "repeats": config.repeats, "cpu_seconds": cpu_seconds}


ANNULI_COLUMNS = (("final training loss", "loss", 1.0), ("training accuracy %", "accuracy", 100),
                  ("test accuracy %", "test_accuracy", 100),
                  ("forward NFE, first epoch", "first_epoch_nfe", 1.0),
                  ("forward NFE, last epoch", "last_epoch_nfe", 1.0),
                  ("forward NFE, test set", "test_nfe", 1.0),
                  ("CPU s per training", "cpu_seconds", 1.0))


def annuli_table(summaries):
    """The annuli models' final numbers as Markdown."""
    lines = ["| model | " + " | ".join(title for title, _, _ in ANNULI_COLUMNS) + " |",
             "|---|" + "---:|" * len(ANNULI_COLUMNS)]
    for summary in summaries:
        lines.append(f"| {model_name(summary['p'])} | " + " | ".join(
            spread(summary[key], scale=scale) for _, key, scale in ANNULI_COLUMNS) + " |")
    return lines


def results_table(result):
    """g_1d, the annuli and the claims as Markdown, with the command."""
    lines = ["| g_1d model | Huber loss | h(1) at x = -1 | h(1) at x = 1 | trajectories kept "
             "their order | forward NFE at the end |", "|---|---:|---:|---:|---|---:|"]
    lines += [f"| {model_name(int(p))} | {f['final_loss']:.4g} | {f['h1_at_minus_1']:.4g} | "
              f"{f['h1_at_plus_1']:.4g} | {f['order_kept']} | {f['final_nfe']} |"
              for p, f in result["flip"].items()]
    summary = result["annuli"][0]
    lines += ["", f"Annuli: mean +- std over {summary['repeats']} repeats, "
              f"{summary['iterations']} iterations each ({result['epochs']} epochs)", ""]
    lines += annuli_table(result["annuli"])
    lines += ["", "| the paper (Dupont et al. 2019) | this run |", "|---|---|"]
    lines += [f"| {row['paper']} | {row['ours']} |" for row in result["claims"]]
    lines += ["", f"CPU time of the whole run: {result['cpu_seconds']:.0f} s", "",
              f"Command: `{runs.command_line()}`"]
    return "\n".join(lines)


def report(result):
    """Print the numbers."""
    print("\n" + results_table(result))
    for path in result.get("files", []):
        print(f"  wrote {path}")


def write_table(result, out):
    """Write `results_table` to ``out/table.md`` and say so."""
    path = out / "table.md"
    write_text_atomically(path, results_table(result) + "\n")
    print(f"\nwrote {path}")


if NOTEBOOK:
    result = summarize(flips, summaries, config, time.process_time() - notebook_cpu)
    runs.write_result(args.out, "augmented", result, options=vars(args))
    report(result)
    write_table(result, args.out)

# %% [markdown]
# ## Pictures
#
# * `flip_1d.png`: g_1d. The learned maps x -> h(1) against the targets; the Neural ODE's
#   trajectories h(t) from a grid of starts (they squeeze together and never cross); the
#   ANODE's h(t) (they cross) and its trajectories in the (h, a) plane, where they do not;
#   the loss over training with the Neural ODE's bound 0.5.
# * `annuli_training.png`: loss, accuracy and forward NFE over training, each model's mean
#   over the repeats with the range of the repeats shaded.
# * `annuli_boundaries.png`: each model's predicted class over the plane (repeat 0), with the
#   training points and the circles of radius 0.5, 1 and 1.5.
# * `annuli_trajectories.png`: trajectories of test points from both classes (repeat 0): in
#   the data plane (the first two entries of the state), and the readout w . z(t) + b over t.
# * `annuli_features.png`: the final states (repeat 0) in three dimensions: the two data
#   entries and the readout; the Neural ODE's lie on a plane.

# %%
CLASS_COLORS = {-1.0: "tab:blue", 1.0: "tab:red"}
MODEL_COLORS = ("tab:gray", "tab:green", "tab:purple", "tab:orange")


def plot_flip(flips, out):
    """The g_1d figure (see the cell above)."""
    fig, axes = plots.figure(1, 5, figsize=(21, 4))
    node, anode = flips[0], flips[1]
    for found, color in ((node, MODEL_COLORS[0]), (anode, MODEL_COLORS[1])):
        axes[0].plot(found["starts"], found["paths"][-1, :, 0], color=color, lw=2,
                     label=model_name(found["p"]))
    axes[0].plot(FLIP_X[:, 0], -FLIP_X[:, 0], "k*", ms=12, label="g_1d: targets -x")
    axes[0].set(title="the learned map x -> h(1)", xlabel="x = h(0)", ylabel="h(1)")
    axes[0].legend(loc="best")
    panels = ((axes[1], node, "Neural ODE: h(t) never cross"),
              (axes[2], anode, "ANODE, p = 1: h(t), the data part, crosses"))
    for ax, found, title in panels:
        for start, path in zip(found["starts"], found["paths"].transpose(1, 0, 2)):
            ax.plot(found["times"], path[:, 0], color=start_color(start), lw=1)
        ax.set(title=title, xlabel="t", ylabel="h(t)")
    for start, path in zip(anode["starts"], anode["paths"].transpose(1, 0, 2)):
        axes[3].plot(path[:, 0], path[:, 1], color=start_color(start), lw=1)
        axes[3].plot(path[-1, 0], path[-1, 1], "o", color=start_color(start), ms=3)
    axes[3].set(title="ANODE, p = 1: (h, a)(t), which never cross", xlabel="h",
                ylabel="a (augmented)")
    for found, color in ((node, MODEL_COLORS[0]), (anode, MODEL_COLORS[1])):
        axes[4].semilogy(found["losses"], color=color, lw=3, label=model_name(found["p"]))
    # drawn over the Neural ODE's loss, which it bounds from below
    axes[4].axhline(FLIP_LOSS_BOUND, color="k", ls=":", lw=1,
                    label="least loss of a Neural ODE (0.5)")
    axes[4].set(title="Huber loss over training", xlabel="iteration", ylabel="loss")
    axes[4].legend(loc="best")
    return plots.save_png(fig, out / "flip_1d.png")


def start_color(start):
    """A colour per starting point x in [-1.5, 1.5]: blue for negative, red for positive."""
    return plots.pyplot().get_cmap("coolwarm")((start + 1.5) / 3.0)


def plot_training(curves_by_p, config, out):
    """Loss, accuracies and forward NFE over training, mean and range over the repeats."""
    fig, axes = plots.figure(1, 3, figsize=(16, 4.2))
    per_epoch = steps_per_epoch(config)
    for (p, curves), color in zip(curves_by_p.items(), MODEL_COLORS):
        eval_steps = np.arange(curves["loss"].shape[1]) * per_epoch
        nfe_steps = (np.arange(curves["nfe"].shape[1]) + 0.5) * per_epoch
        for ax, steps, values, style in (
                (axes[0], eval_steps, curves["loss"], "-"),
                (axes[1], eval_steps, 100 * curves["accuracy"], "-"),
                (axes[1], eval_steps, 100 * curves["test_accuracy"], ":"),
                (axes[2], nfe_steps, curves["nfe"], "-")):
            ax.plot(steps, values.mean(axis=0), style, color=color, lw=2,
                    label=model_name(p) if style == "-" else None)
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=color,
                            alpha=0.15, lw=0)
    axes[0].set(yscale="log", title="Huber loss on all the training points",
                xlabel="iteration", ylabel="loss")
    axes[1].set(title="accuracy: training (solid), test (dotted)", xlabel="iteration",
                ylabel="accuracy %")
    axes[2].set(title="forward NFE per iteration (mean over each epoch)", xlabel="iteration",
                ylabel="function evaluations")
    for ax in axes:
        ax.legend(loc="best")
    return plots.save_png(fig, out / "annuli_training.png")


def draw_circles(ax, config):
    """The classes' radii as thin black circles."""
    angles = np.linspace(0, 2 * np.pi, 200)
    for radius in sorted({*config.inner, *config.outer} - {0.0}):
        ax.plot(radius * np.cos(angles), radius * np.sin(angles), "k", lw=0.6)


def plot_boundaries(models, data, config, out):
    """Each model's predicted class on a grid over the plane, with the training points."""
    axis = np.linspace(-2.0, 2.0, config.boundary_grid)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    fig, axes = plots.figure(1, len(models), figsize=(4.6 * len(models), 4.4))
    for ax, (p, params) in zip(np.atleast_1d(axes), models.items()):
        outputs = backend.to_numpy(classify(params, grid, p)).reshape(len(axis), len(axis))
        ax.contourf(axis, axis, outputs, levels=[-1e9, 0.0, 1e9],
                    colors=["#c6dbef", "#fcbba1"])
        ax.contour(axis, axis, outputs, levels=[0.0], colors="k", linewidths=1.2)
        for label, color in CLASS_COLORS.items():
            chosen = data.y_train == label
            ax.scatter(*data.x_train[chosen].T, s=2, color=color, alpha=0.5)
        draw_circles(ax, config)
        ax.set(title=f"{model_name(p)}: predicted class\n(blue -1, red +1; black: output 0)",
               xlabel="x1", ylabel="x2", aspect="equal")
    return plots.save_png(fig, out / "annuli_boundaries.png")


def chosen_points(data, count):
    """``count`` test points of each class, the first ones drawn."""
    chosen = [np.nonzero(data.y_test == label)[0][:count] for label in CLASS_COLORS]
    return np.concatenate(chosen)


def model_paths(params, p, points, times):
    """The whole state (T, B, 2 + p) at ``times`` and the readout (T, B) along it."""
    paths = flow(params["field"], points, p, times, keep_augmented=True)
    outputs = [backend.to_numpy(readout(params, ops.getitem(paths, k)))
               for k in range(len(times))]
    return backend.to_numpy(paths), np.array(outputs)


def plot_trajectories(models, data, config, out):
    """Trajectories of test points of both classes, in the data plane and through the
    readout."""
    chosen = chosen_points(data, config.trajectory_points)
    times = np.linspace(0.0, 1.0, config.trajectory_times)
    fig, axes = plots.figure(2, len(models), figsize=(4.6 * len(models), 8.4), squeeze=False)
    for column, (p, params) in enumerate(models.items()):
        paths, outputs = model_paths(params, p, data.x_test[chosen], times)
        for k, index in enumerate(chosen):
            color = CLASS_COLORS[data.y_test[index]]
            axes[0, column].plot(paths[:, k, 0], paths[:, k, 1], color=color, lw=0.8)
            axes[0, column].plot(paths[-1, k, 0], paths[-1, k, 1], "o", color=color, ms=2.5)
            axes[1, column].plot(times, outputs[:, k], color=color, lw=0.8)
        draw_circles(axes[0, column], config)
        axes[0, column].set(title=f"{model_name(p)}: z1, z2 over t in [0, 1]\n(dots at t = 1)",
                            xlabel="z1", ylabel="z2", aspect="equal")
        axes[1, column].axhline(0.0, color="k", lw=0.6)
        axes[1, column].set(title=f"{model_name(p)}: readout w . z(t) + b", xlabel="t",
                            ylabel="output (its sign is the class)")
    return plots.save_png(fig, out / "annuli_trajectories.png")


def plot_features(models, data, config, out):
    """The final states of the test points: z1, z2 and the readout, in three dimensions."""
    chosen = chosen_points(data, 8 * config.trajectory_points)
    fig, axes = plots.figure(1, len(models), figsize=(5 * len(models), 4.6), squeeze=False,
                             subplot_kw={"projection": "3d"})
    for ax, (p, params) in zip(axes[0], models.items()):
        paths, outputs = model_paths(params, p, data.x_test[chosen], UNIT_INTERVAL)
        colors = [CLASS_COLORS[label] for label in data.y_test[chosen]]
        ax.scatter(paths[-1, :, 0], paths[-1, :, 1], outputs[-1], c=colors, s=4)
        ax.set(title=f"{model_name(p)}: final states", xlabel="z1", ylabel="z2",
               zlabel="readout")
    return plots.save_png(fig, out / "annuli_features.png")


def save_pictures(flips, states, data, config, out):
    """Every picture; returns their paths."""
    files = [plot_flip(flips, out)] if 0 in flips and 1 in flips else []
    curves = {p: epoch_curves(p, states, config) for p in config.augment_dims}
    first = {run.p: state["params"] for run, state in states.items()
             if run.task == "annuli" and run.repeat == 0}
    return files + [plot_training(curves, config, out),
                    plot_boundaries(first, data, config, out),
                    plot_trajectories(first, data, config, out),
                    plot_features(first, data, config, out)]


if NOTEBOOK:
    result["files"] = save_pictures(flips, states, data, config, args.out)

# %% [markdown]
# ## Running it
#
# As a script, `main` runs the cells above in order: data, training, measurements, numbers,
# pictures.

# %%


def main(argv=None):
    """Run the tutorial; returns its numbers (used by the tests)."""
    cpu = time.process_time()
    args = parse_args(argv)
    runs.prepare_out_dir(args.out, args.quick)
    config = config_for(args)
    data = make_annuli(config, args.seed)
    states = train_all(all_runs(config), data, config, args)
    flips = flip_measurements(states, config)
    summaries = [annuli_summary(p, states, config) for p in config.augment_dims]
    files = save_pictures(flips, states, data, config, args.out)
    result = summarize(flips, summaries, config, time.process_time() - cpu)
    runs.write_result(args.out, "augmented", result, options=vars(args))
    result["files"] = files
    report(result)
    write_table(result, args.out)
    return result


if __name__ == "__main__" and not NOTEBOOK:
    runs.run_script(main)
