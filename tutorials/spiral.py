# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
# ---

# %% [markdown]
"""Tutorial 1: learn the dynamics of a spiral with a Neural ODE (Chen et al. 2018, sec. 2).

We observe one trajectory z(t) of an unknown ODE dz/dt = f(z) and fit a model f_theta so that
odeint(f_theta, z(t_0), t) reproduces the observations; the gradient of the loss comes from the
adjoint method (the paper's Algorithm 1) or from backprop through the solver. The paper has no
table for this toy problem; the third experiment is torchdiffeq's ``examples/ode_demo.py`` task.

Run ``python tutorials/spiral.py`` (all three experiments: 2.5 minutes of CPU time on one core) and
look at the PNGs and GIFs in ``results/spiral/`` (relative to the current directory).
``--experiment NAME`` runs one of them; ``--method``, ``--rtol``, ``--atol``, ``--step-size`` and
``--grad`` choose the solver; ``--quick`` does 20 iterations per experiment (a smoke test of
seconds, written to ``results/quick/spiral/``); ``--resume`` continues from the checkpoints in
``--out``; ``--help`` lists every option.

As a notebook: ``jupytext --to notebook tutorials/spiral.py``, or open the file with the
Jupytext extension of Jupyter or VS Code. Set the config cell (the experiment, quick, resume)
and run the cells in order; each cell does its step. The results then go to
``tutorials/results/spiral/`` (relative to the notebook's folder).
"""

# %% [markdown]
# # Learning the dynamics of a spiral
#
# Three experiments, each one trajectory of a known ODE observed at `n_points` times:
#
# * **linear**: dz/dt = A z; the model is a 2x2 matrix, so we can read off how close it gets to A.
# * **mlp**: a field with two spiral regimes glued by a sigmoid; the model an MLP 2-16-16-2 (ELU).
# * **cubic**: dy/dt = (y**3) A (torchdiffeq's `ode_demo.py`); an MLP 2-50-2 (tanh) on y**3.
#
# The model is trained on short windows of the trajectory: from each window's first observation
# it solves the ODE over the window's times, and the loss compares that solution with the
# window's observations.

# %%
import time
from dataclasses import dataclass
from typing import NamedTuple

import autograd
import matplotlib
import numpy as np

from minode import SolverStats, backend, cli, nn, odeint, ops, optim, plots, runs
from minode.files import write_text_atomically

# %% [markdown]
# ## Config
# In a notebook, set these and run the cells in order; as a script, the command line sets them.

# %%
QUICK = False    # True: a smoke test of seconds; its numbers mean nothing
RESUME = False   # True: continue from the checkpoints in the results folder
EXPERIMENT = "cubic"   # the experiment the notebook's cells run: "linear", "mlp" or "cubic"
NOTEBOOK = cli.notebook_cells_run(__name__)   # run each cell's step as the cell runs

# %% [markdown]
# ## The experiments and the options
#
# An experiment names its true dynamics and its model (both defined below under its `name`)
# and says how the data are made and how the model is trained. `SOLVER` holds the solver
# settings of training (`odeint`'s keyword arguments); the command line can change them.

# %%


@dataclass(frozen=True)
class Experiment:
    """One spiral task: its data, its model (both by ``name``) and its training."""

    name: str
    # data: z(t) from z0 at n_points times in [0, t_max], plus Gaussian noise of noise_std
    z0: tuple
    t_max: float
    n_points: int
    noise_std: float
    # training
    loss: str            # "squared" or "absolute" error, see LOSSES
    optimizer: str       # "adam" or "rmsprop"
    lr: float
    iters: int
    window: str          # "random-span": 1 to 5 time units; "fixed-10": 10 consecutive points
    batch_size: int
    halve_lr_every: int = None  # iterations; None keeps the learning rate constant


EXPERIMENTS = {experiment.name: experiment for experiment in [
    Experiment(name="linear", z0=(0.6, 0.3), t_max=6.29 * 5, n_points=200, noise_std=0.01,
               loss="squared", optimizer="adam", lr=0.01, iters=800, window="random-span",
               batch_size=16),
    Experiment(name="mlp", z0=(0.6, 0.3), t_max=6.29 * 5, n_points=200, noise_std=0.01,
               loss="squared", optimizer="adam", lr=0.01, halve_lr_every=250, iters=1000,
               window="random-span", batch_size=16),
    Experiment(name="cubic", z0=(2.0, 0.0), t_max=25.0, n_points=1000, noise_std=0.0,
               loss="absolute", optimizer="rmsprop", lr=1e-3, iters=2000, window="fixed-10",
               batch_size=20),
]}


# "adjoint": Algorithm 1; "backprop": through the solver's steps
SOLVER = {"method": "dopri5", "rtol": 1e-7, "atol": 1e-9, "grad": "adjoint"}

QUICK_ITERS = 20
CURRICULUM_ITERS = 400   # random-span windows reach their full length after this many
CHECKPOINT_EVERY = 50    # iterations
CHECK_SEED = 12345       # of the fixed batch of windows on which the fit is checked


def build_parser():
    """The command-line options."""
    parser = cli.tutorial_parser(__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=list(EXPERIMENTS) + ["all"], default="all",
                        help="the experiment to run, or all three in turn")
    parser.add_argument("--iters", type=cli.positive_int, default=None,
                        help="training iterations (default: the experiment's own, "
                        f"{', '.join(f'{e.name} {e.iters}' for e in EXPERIMENTS.values())}; "
                        f"with --quick {QUICK_ITERS})")
    parser.add_argument("--no-plots", action="store_true",
                        help="write no pictures (and record no snapshots for the GIF)")
    cli.add_run_options(parser, "spiral",
                        quick_help=f"{QUICK_ITERS} iterations per experiment, a smoke test of "
                        "seconds")
    cli.add_solver_options(parser, **SOLVER)
    return parser


def parse_args(argv=None):
    """The command-line options (``argv``, else the command line's), ``out`` filled in."""
    return cli.parse_tutorial_args(build_parser(), argv, "spiral")


def training_iters(experiment, iters, quick):
    """The iterations to train: ``iters`` when given, else `QUICK_ITERS` or the experiment's."""
    return iters or (QUICK_ITERS if quick else experiment.iters)


if NOTEBOOK:
    args = parse_args(cli.notebook_argv(QUICK, RESUME, "--experiment", EXPERIMENT))
    experiment, solver = EXPERIMENTS[EXPERIMENT], cli.solver_settings(build_parser(), args)
    iters = training_iters(experiment, args.iters, args.quick)
    runs.prepare_out_dir(args.out, args.quick)
    rng = np.random.default_rng(args.seed)

# %% [markdown]
# ## Data
#
# The true fields take a batch of states z of shape (batch, 2), as minode's models do. The data
# are one trajectory solved to rtol = atol = 1e-10, observed with noise.

# %%
LINEAR_A = np.array([[-0.1, -1.0], [1.0, -0.1]])
REGIME_A = np.array([[-0.1, -0.5], [0.5, -0.1]])
REGIME_B = np.array([[0.2, 1.0], [-1.0, 0.2]])
REGIME_X0 = np.array([-1.0, 0.0])
CUBIC_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])


def linear_field(z, t, matrix):
    """dz/dt = A z for each row z (so z @ A^T on a batch)."""
    return ops.matmul(z, ops.transpose(matrix))


def two_regime_field(z, t, params=None):
    """sigmoid(z.x0) A (z - x0) + sigmoid(-z.x0) B (z + x0): a spiral around each of -x0, x0."""
    weight = ops.reshape(ops.sigmoid(ops.matmul(z, REGIME_X0)), (-1, 1))
    return (weight * ops.matmul(z - REGIME_X0, REGIME_A.T)
            + (1 - weight) * ops.matmul(z + REGIME_X0, REGIME_B.T))


def cubic_field(z, t, params=None):
    """dy/dt = (y**3) A, the ode_demo.py task."""
    return ops.matmul(z ** 3, CUBIC_A)


# experiment name -> (true field, its parameters)
TRUE_DYNAMICS = {"linear": (linear_field, LINEAR_A), "mlp": (two_regime_field, None),
                 "cubic": (cubic_field, None)}
# experiment name -> what its true field is, in the pictures' titles
FIELD_TITLES = {"linear": "linear spiral field", "mlp": "two-regime spiral field",
                "cubic": "cubic spiral field"}


class Trajectory(NamedTuple):
    """One trajectory: ``times`` (n,), the ``clean`` states and the ``observed`` ones (n, 2)."""

    times: np.ndarray
    clean: np.ndarray
    observed: np.ndarray


def make_data(experiment, rng):
    """The experiment's true trajectory from z0, observed with noise drawn from ``rng``."""
    field, field_params = TRUE_DYNAMICS[experiment.name]
    times = np.linspace(0.0, experiment.t_max, experiment.n_points)
    z0 = backend.asarray(np.array([experiment.z0]))
    clean = backend.to_numpy(odeint(field, z0, backend.asarray(times), field_params,
                                    rtol=1e-10, atol=1e-10))[:, 0]
    observed = clean + experiment.noise_std * rng.normal(size=clean.shape)
    return Trajectory(times, clean, observed)


def sample_windows(experiment, data, rng, iteration):
    """A batch of sub-trajectories sharing one relative time grid (the dynamics are autonomous).

    Random-span windows cover 1 to 5 time units (at most 32 points), but the longest allowed
    span grows from 1 to 5 over the first ``CURRICULUM_ITERS`` iterations: on short windows
    z(t) ~ z0 + t f(z0) and the fit is nearly a regression, while a long window from a badly
    initialised model (say, one that turns the wrong way) has a loss landscape with local minima.
    Returns (z_start (batch, 2), t_window (n,), targets (n, batch, 2)).
    """
    times, observed = data.times, data.observed
    if experiment.window == "fixed-10":
        n = 10
    else:
        longest = 1.0 + 4.0 * min(1.0, iteration / CURRICULUM_ITERS)
        n = int(min(32, max(2, round(rng.uniform(1.0, longest) / (times[1] - times[0])) + 1)))
    starts = rng.choice(len(times) - n, size=experiment.batch_size, replace=False)
    targets = np.stack([observed[starts + i] for i in range(n)])
    return (backend.asarray(targets[0]), backend.asarray(times[:n] - times[0]),
            backend.asarray(targets))


def describe_data(experiment, data):
    """One line saying what ``data`` holds."""
    low, high = data.observed.min(axis=0), data.observed.max(axis=0)
    return (f"{FIELD_TITLES[experiment.name]}: {len(data.times)} observations from z0 = "
            f"{experiment.z0} at t in [0, {experiment.t_max:g}], noise std "
            f"{experiment.noise_std:g}; z1 in [{low[0]:.2f}, {high[0]:.2f}], "
            f"z2 in [{low[1]:.2f}, {high[1]:.2f}]")


if NOTEBOOK:
    data = make_data(experiment, rng)
    print(describe_data(experiment, data))


# %% [markdown]
# ## Model
#
# An init function and a field with odeint's signature f(z, t, params), per experiment.

# %%


def init_linear_model(rng):
    """A random 2x2 matrix, N(0, 1) / 2."""
    return backend.asarray(rng.normal(size=(2, 2)) / 2)


def init_elu_mlp(rng):
    """MLP 2-16-16-2."""
    return nn.init_mlp(rng, [2, 16, 16, 2])


def elu_mlp_field(z, t, params):
    """f(z) = MLP(z) with ELU activations."""
    return nn.mlp(params, z, activation=ops.elu)


def init_cubic_model(rng):
    """MLP 2-50-2 with N(0, 0.1) weights and zero biases, as in ode_demo.py."""
    params = nn.init_mlp(rng, [2, 50, 2])
    return [{"w": backend.asarray(rng.normal(0, 0.1, size=layer["w"].shape)),
             "b": backend.xp.zeros_like(layer["b"])} for layer in params]


def cubic_mlp_field(z, t, params):
    """f(y) = MLP(y**3) with a tanh hidden layer."""
    return nn.mlp(params, z ** 3, activation=ops.tanh)


# experiment name -> (init(rng) -> params, field(z, t, params))
MODELS = {"linear": (init_linear_model, linear_field), "mlp": (init_elu_mlp, elu_mlp_field),
          "cubic": (init_cubic_model, cubic_mlp_field)}
# experiment name -> what its model is, in the pictures' titles
MODEL_TITLES = {"linear": "the 2x2 matrix", "mlp": "the MLP", "cubic": "the MLP on z**3"}


def predict_trajectory(experiment, params, times, solver):
    """The model's trajectory from z0 over ``times``, shape (len(times), 2); ``solver`` holds
    `odeint`'s keyword arguments."""
    field = MODELS[experiment.name][1]
    z0 = backend.asarray(np.array([experiment.z0]))
    ys = odeint(field, z0, backend.asarray(times), params, **solver)
    return backend.to_numpy(ys)[:, 0]


if NOTEBOOK:
    params = MODELS[experiment.name][0](rng)
    print(f"{MODEL_TITLES[experiment.name]}: "
          f"{nn.count_params(params)} parameters")


# %% [markdown]
# ## Loss
#
# The model's solution from each window's first observation, compared with the window.

# %%


LOSSES = {"squared": ops.mean_squared_error, "absolute": ops.mean_absolute_error}
LOSS_LABELS = {"squared": "mean squared error", "absolute": "mean absolute (L1) error"}


def window_loss(params, experiment, z_start, t_window, targets, solver, stats=None):
    """The loss of the model's solutions over a batch of windows (see `sample_windows`);
    ``solver`` holds `odeint`'s keyword arguments."""
    prediction = odeint(MODELS[experiment.name][1], z_start, t_window, params, **solver,
                        stats=stats)
    return LOSSES[experiment.loss](prediction, targets)


loss_and_grad = autograd.value_and_grad(window_loss)


def check_batch(experiment, data):
    """The fixed batch of windows (2 time units long, drawn with `CHECK_SEED`) on which the
    fit is checked before and after training."""
    return sample_windows(experiment, data, np.random.default_rng(CHECK_SEED),
                          CURRICULUM_ITERS // 4)


if NOTEBOOK:
    print(f"{LOSS_LABELS[experiment.loss]} of the untrained model on the check batch: "
          f"{float(window_loss(params, experiment, *check_batch(experiment, data), solver)):.4g}")

# %% [markdown]
# ## Training loop
#
# The whole training state is one pytree, checkpointed every `CHECKPOINT_EVERY` iterations
# (`minode.runs`). The windows come from one generator carried through training; its state is
# part of the checkpoint, so a resumed run draws the same windows as an uninterrupted one.

# %%


def make_optimizer(experiment):
    """The experiment's optimizer, with its learning rate halved every ``halve_lr_every``."""
    lr = experiment.lr
    if experiment.halve_lr_every:
        lr = optim.step_decay(lr, 0.5, every=experiment.halve_lr_every)
    return {"adam": optim.Adam, "rmsprop": optim.RMSprop}[experiment.optimizer](lr=lr)


def fresh_state(params, optimizer, rng, check_loss):
    """The training state before the first iteration (``log`` holds what training records)."""
    return {"step": 0, "params": params, "opt": optimizer.init(params),
            "rng": rng.bit_generator.state,
            "log": {"losses": [], "snapshots": [], "nfe_forward": 0, "nfe_backward": 0,
                    "seconds": 0.0, "check_loss_before": check_loss}}


def record_step(log, loss, stats, seconds):
    """Add one iteration's loss, function evaluations and time to the log."""
    log["losses"].append(float(loss))
    log["nfe_forward"] += stats.forward.nfe
    log["nfe_backward"] += stats.backward.nfe
    log["seconds"] += seconds


def make_checkpoint(experiment, out, *, seed, quick, solver):
    """The experiment's checkpoint in ``out``, recording what shapes its training: a resume
    with another seed, experiment, ``--quick`` or solver is refused. The number of iterations
    is not recorded: the first k iterations do not depend on it, so a resume may train longer.
    """
    return runs.Checkpoint(out / f"{experiment.name}_checkpoint.npz", every=CHECKPOINT_EVERY,
                           config={"experiment": experiment.name, "seed": seed, "quick": quick,
                                   **solver})


def snapshot_interval(iters, pictures):
    """Iterations between the snapshots of the training GIF; None (no snapshots) without
    ``pictures``."""
    return max(1, iters // 30) if pictures else None


def train(experiment, data, params, rng, solver, checkpoint, *, iters, snapshot_every=None,
          resume=False, quiet=False):
    """Fit ``params`` to ``data`` for ``iters`` iterations; returns the final state.

    Besides the noisy per-batch losses, the loss on one fixed batch of windows (`check_batch`)
    is logged before and after training, a like-for-like check that the fit improved.
    With ``snapshot_every`` the learned trajectory is logged every so many iterations and at
    the last one, for the training GIF. ``resume`` continues from ``checkpoint``'s file;
    Ctrl-C saves the last completed iteration there and raises `runs.TrainingInterrupted`.
    """
    optimizer = make_optimizer(experiment)
    checked_on = check_batch(experiment, data)
    check_loss = float(window_loss(params, experiment, *checked_on, solver))
    state = checkpoint.load_or(fresh_state(params, optimizer, rng, check_loss), resume)
    rng.bit_generator.state = state["rng"]
    stats, log = SolverStats(), state["log"]
    with checkpoint.saved_on_interrupt(lambda: state, total=iters):
        progress = runs.progress(range(state["step"], iters), initial=state["step"],
                                 total=iters, desc=f"{experiment.name:>6}", quiet=quiet)
        for iteration in progress:
            start = time.perf_counter()
            batch = sample_windows(experiment, data, rng, iteration)
            stats.reset()
            loss, grads = loss_and_grad(state["params"], experiment, *batch, solver, stats)
            new_params, new_opt = optimizer.update(state["params"], grads, state["opt"])
            snapshot = None
            if snapshot_every and (iteration % snapshot_every == 0 or iteration == iters - 1):
                snapshot = [iteration,
                            predict_trajectory(experiment, new_params, data.times, solver)]
            # the iteration's changes to the state: all of them or, on Ctrl-C, none
            with runs.deferred_interrupt():
                state["params"], state["opt"] = new_params, new_opt
                if snapshot is not None:
                    log["snapshots"].append(snapshot)
                record_step(log, loss, stats, time.perf_counter() - start)
                state["step"], state["rng"] = iteration + 1, rng.bit_generator.state
                checkpoint.save_if_due(state, iters)
            progress.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
    log["check_loss_after"] = float(window_loss(state["params"], experiment, *checked_on,
                                                solver))
    return state


if NOTEBOOK:
    checkpoint = make_checkpoint(experiment, args.out, seed=args.seed, quick=args.quick,
                                 solver=solver)
    state = train(experiment, data, params, rng, solver, checkpoint, iters=iters,
                  snapshot_every=snapshot_interval(iters, not args.no_plots),
                  resume=args.resume, quiet=args.quiet)
    print(f"check loss {state['log']['check_loss_before']:.4g} -> "
          f"{state['log']['check_loss_after']:.4g} after {state['step']} iterations")


# %% [markdown]
# ## Pictures
#
# The data with the learned trajectory, the true and the learned vector fields, the loss curve
# and a GIF of the learned trajectory during training.

# %%


def field_on_grid(field, params, limits, n=21):
    """The vector field on an n x n grid covering ``limits`` ((x0, x1), (y0, y1))."""
    xs, ys = np.linspace(*limits[0], n), np.linspace(*limits[1], n)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = backend.asarray(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1))
    values = backend.to_numpy(field(points, backend.asarray(0.0), params))
    return grid_x, grid_y, values[:, 0].reshape(n, n), values[:, 1].reshape(n, n)


def plot_limits(*trajectories, margin=0.25):
    """Axis limits that contain every trajectory with some margin."""
    stacked = np.concatenate(trajectories)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    pad = margin * (high - low)
    return (low[0] - pad[0], high[0] + pad[0]), (low[1] - pad[1], high[1] + pad[1])


def scatter_observations(ax, data):
    """The observations as small, light dots coloured by time, drawn below the curves."""
    return ax.scatter(data.observed[:, 0], data.observed[:, 1], c=data.times,
                      s=8 if len(data.times) <= 200 else 4, alpha=0.5, linewidths=0, zorder=1,
                      label="observations")


def plot_true_trajectory(ax, data):
    """The true trajectory, dashed, on top of everything else."""
    ax.plot(data.clean[:, 0], data.clean[:, 1], "k--", lw=1, zorder=4, label="true trajectory")


def plot_phase(name, data, learned, limits, out):
    """Observations coloured by time, the true and the learned trajectory."""
    fig, ax = plots.figure(figsize=(5.5, 5))
    points = scatter_observations(ax, data)
    plot_true_trajectory(ax, data)
    ax.plot(learned[:, 0], learned[:, 1], color="crimson", lw=2.5, alpha=0.6, zorder=3,
            label="learned trajectory")
    fig.colorbar(points, ax=ax, label="time of the observation")
    ax.set(title=f"{FIELD_TITLES[name]}: data and learned trajectory", xlabel="z1",
           ylabel="z2", xlim=limits[0], ylim=limits[1])
    ax.legend(loc="best", markerscale=2)
    return plots.save_png(fig, out / f"{name}_phase.png")


# light grey to black: the slowest streamlines stay visible on the white background
SPEED_COLORS = matplotlib.colors.LinearSegmentedColormap.from_list(
    "speed", matplotlib.colormaps["Greys"](np.linspace(0.25, 1.0, 256)))


def plot_fields(name, data, params, learned, limits, out):
    """Streamlines of the true and the learned field, each with its trajectory, shaded by the
    speed |f(z)| on one scale shared by both panels."""
    (true_field, true_params), model_field = TRUE_DYNAMICS[name], MODELS[name][1]
    panels = [("true", field_on_grid(true_field, true_params, limits), data.clean,
               "true trajectory"),
              (f"learned by {MODEL_TITLES[name]}", field_on_grid(model_field, params, limits),
               learned, "learned trajectory")]
    speeds = [np.hypot(u, v) for _, (_, _, u, v), _, _ in panels]
    shading = matplotlib.cm.ScalarMappable(
        matplotlib.colors.Normalize(0.0, max(speed.max() for speed in speeds)), SPEED_COLORS)
    fig, axes = plots.figure(1, 2, figsize=(11, 4.5), sharex=True, sharey=True,
                             layout="constrained")
    for ax, (title, (gx, gy, u, v), path, label), speed in zip(axes, panels, speeds):
        ax.streamplot(gx, gy, u, v, color=speed, cmap=shading.cmap, norm=shading.norm,
                      density=1.2)
        ax.plot(path[:, 0], path[:, 1], color="crimson", lw=1.5, label=label)
        ax.set(title=f"{FIELD_TITLES[name]}: {title}", xlabel="z1", xlim=limits[0],
               ylim=limits[1])
        ax.legend(loc="upper right")
    axes[0].set_ylabel("z2")
    fig.colorbar(shading, ax=axes, label="speed |f(z)|")
    return plots.save_png(fig, out / f"{name}_field.png", tight=False)


def plot_loss(experiment, losses, out):
    """The per-batch training loss and, over 100 iterations or more, its moving average."""
    fig, ax = plots.figure(figsize=(5.5, 3.5))
    ax.semilogy(losses, lw=0.8, alpha=0.5, label="batch loss")
    window = len(losses) // 50
    if window > 1:  # an average over one iteration would hide the batch loss under it
        ax.semilogy(np.convolve(losses, np.ones(window) / window, mode="valid"), lw=2,
                    label=f"moving average ({window})")
    name = experiment.name
    ax.set(title=f"training loss of {MODEL_TITLES[name]} on the {FIELD_TITLES[name]}",
           xlabel="iteration", ylabel=LOSS_LABELS[experiment.loss])
    ax.legend()
    return plots.save_png(fig, out / f"{name}_loss.png")


def plot_training_gif(name, data, snapshots, limits, out):
    """The learned trajectory at each snapshot of training, over the data and the truth."""
    fig, ax = plots.figure(figsize=(5.5, 5), layout="constrained")
    points = scatter_observations(ax, data)
    plot_true_trajectory(ax, data)
    line, = ax.plot([], [], color="crimson", lw=2.5, alpha=0.6, zorder=3,
                    label="learned trajectory")
    fig.colorbar(points, ax=ax, label="time of the observation")
    ax.set(xlim=limits[0], ylim=limits[1], xlabel="z1", ylabel="z2")
    ax.legend(loc="upper right", markerscale=2)

    def draw(snapshot):
        iteration, trajectory = snapshot[0], backend.to_numpy(snapshot[1])
        line.set_data(trajectory[:, 0], trajectory[:, 1])
        ax.set_title(f"{FIELD_TITLES[name]}: learned trajectory, iteration {iteration + 1}")

    return plots.save_gif(fig, out / f"{name}_training.gif", draw, snapshots, fps=6)


def save_pictures(experiment, data, state, learned, out):
    """Every picture of one experiment; returns their paths."""
    limits = plot_limits(data.clean, data.observed)
    name, log = experiment.name, state["log"]
    return [plot_phase(name, data, learned, limits, out),
            plot_fields(name, data, state["params"], learned, limits, out),
            plot_loss(experiment, np.array(log["losses"]), out),
            plot_training_gif(name, data, log["snapshots"], limits, out)]


if NOTEBOOK:
    learned = predict_trajectory(experiment, state["params"], data.times, solver)
    if not args.no_plots:
        save_pictures(experiment, data, state, learned, args.out)


# %% [markdown]
# ## Numbers
#
# The training loss at the start and the end, the loss on the fixed check batch before and after,
# how far the learned trajectory is from the true one over the whole time span, and the function
# evaluations per iteration of the forward solve and of the adjoint solve. For the linear
# experiment, the learned matrix next to the true one.

# %%


def summarize(experiment, state, data, learned):
    """The numbers of one trained experiment (a JSON-ready dict)."""
    log, iters = state["log"], state["step"]
    tenth = max(1, iters // 10)
    result = {"experiment": experiment.name, "iters": iters, "seconds": log["seconds"],
              "first_loss": float(np.mean(log["losses"][:tenth])),
              "final_loss": float(np.mean(log["losses"][-tenth:])),
              "check_loss_before": log["check_loss_before"],
              "check_loss_after": log["check_loss_after"],
              "rmse": float(np.sqrt(np.mean((learned - data.clean) ** 2))),
              "nfe_forward": log["nfe_forward"] / iters,
              "nfe_backward": log["nfe_backward"] / iters}
    if experiment.name == "linear":
        learned_a = backend.to_numpy(state["params"])
        result["learned_A"] = learned_a.tolist()
        result["max_abs_error_A"] = float(np.abs(learned_a - LINEAR_A).max())
    return result


def report(result):
    """Print one experiment's numbers."""
    print(f"\n== {result['experiment']}: {result['iters']} iterations in "
          f"{result['seconds']:.1f} s")
    print(f"training loss {result['first_loss']:.4g} -> {result['final_loss']:.4g} "
          f"(mean of first / last 10% of iterations); on a fixed check batch "
          f"{result['check_loss_before']:.4g} -> {result['check_loss_after']:.4g}")
    print(f"RMSE of the learned trajectory over the whole time span: {result['rmse']:.4f}")
    print(f"function evaluations per iteration: forward {result['nfe_forward']:.1f}, "
          f"backward {result['nfe_backward']:.1f}")
    if "max_abs_error_A" in result:
        print("learned A:\n", np.round(np.array(result["learned_A"]), 4))
        print("true A:\n", LINEAR_A)
        print(f"max |A_learned - A_true| = {result['max_abs_error_A']:.4f}")
    for path in result.get("files", []):
        print(f"  wrote {path}")


def results_table(results):
    """Every experiment's numbers as a Markdown table, with the command that produced each."""
    lines = ["| Experiment | Iterations | Check loss before -> after | RMSE | NFE forward / "
             "backward per iteration | max abs error of A |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        error_a = f"{r['max_abs_error_A']:.4f}" if "max_abs_error_A" in r else "-"
        lines.append(f"| {name} | {r['iters']} | {r['check_loss_before']:.4g} -> "
                     f"{r['check_loss_after']:.4g} | {r['rmse']:.4f} | {r['nfe_forward']:.1f} / "
                     f"{r['nfe_backward']:.1f} | {error_a} |")
    lines += ["", "Commands:"] + [f"- {name}: `{r['command']}`" for name, r in results.items()]
    return "\n".join(lines)


if NOTEBOOK:
    result = summarize(experiment, state, data, learned)
    runs.write_result(args.out, experiment.name, result, options=vars(args))
    report(result)


# %% [markdown]
# ## Running it
#
# As a script, `main` runs the steps of the cells above for each chosen experiment (all three
# by default): data, model, training, pictures, numbers; then it writes the table of every
# experiment run so far in `--out`. In a notebook the cells have run them for `EXPERIMENT`.

# %%


def run_experiment(experiment, args, solver):
    """Data, model, training, pictures and numbers of one experiment, with the command-line
    options ``args`` and the solver settings ``solver``; returns its numbers."""
    rng = np.random.default_rng(args.seed)
    data = make_data(experiment, rng)
    params = MODELS[experiment.name][0](rng)
    iters = training_iters(experiment, args.iters, args.quick)
    checkpoint = make_checkpoint(experiment, args.out, seed=args.seed, quick=args.quick,
                                 solver=solver)
    state = train(experiment, data, params, rng, solver, checkpoint, iters=iters,
                  snapshot_every=snapshot_interval(iters, not args.no_plots),
                  resume=args.resume, quiet=args.quiet)
    learned = predict_trajectory(experiment, state["params"], data.times, solver)
    result = summarize(experiment, state, data, learned)
    runs.write_result(args.out, experiment.name, result, options=vars(args))
    if not args.no_plots:
        result["files"] = save_pictures(experiment, data, state, learned, args.out)
    return result


def main(argv=None):
    """Run the chosen experiments; returns their numbers (used by the tests)."""
    parser = build_parser()
    args = cli.parse_tutorial_args(parser, argv, "spiral")
    solver = cli.solver_settings(parser, args)
    runs.prepare_out_dir(args.out, args.quick)
    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    results = []
    for name in names:
        results.append(run_experiment(EXPERIMENTS[name], args, solver))
        report(results[-1])
    # the result files, this run's and those earlier commands left in --out
    table = results_table(runs.collect_results(args.out, EXPERIMENTS, {}))
    path = args.out / "table.md"
    write_text_atomically(path, table + "\n")
    print(f"\n{table}\n\nwrote {path}")
    return results


if __name__ == "__main__" and not NOTEBOOK:
    runs.run_script(main)
