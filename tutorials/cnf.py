# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
# ---

# %% [markdown]
"""Tutorial 4: continuous normalizing flows (Chen et al. 2018, sec. 4.1, Figures 4 and 5).

A normalizing flow turns a simple base density into a complex one by an invertible map and keeps
track of the density by the change of variables (eq. (6)). A continuous normalizing flow (CNF)
makes the map an ODE solve, and Theorem 1 (eq. (8)) replaces the log-determinant by the integral
of a trace. Two experiments, each comparing the planar CNF (eq. (9)-(10)) with the discrete
planar flow (NF, eq. (7)) of Rezende & Mohamed 2015:

* Figure 4, density matching: fit q to p = exp(-U) / Z by minimising KL(q || p) from base
  samples, for the targets U1, U2c, U3c; NF with K = 2, 8, 32 layers, CNF with M = 2, 8, 32
  units; a KL table on fresh samples solved at rtol = atol = 1e-7.
* Figure 5, maximum likelihood: fit Two Circles and Two Moons by maximum likelihood, CNF M = 64
  and NF K = 64; densities and samples along the flow, a GIF, and a table of held-out NLL next to
  the best Gaussian and the data's own entropy.

Run ``python tutorials/cnf.py`` (14 minutes of CPU time on one core; as long in wall time on an
otherwise idle machine) and look at ``results/cnf/``: ``figure4.png``, ``figure5_circles.png``,
``figure5_moons.png``, ``flow_circles.gif``, ``flow_moons.gif`` and ``table.md``. ``--targets
U1`` or ``--datasets moons`` run parts (``--targets`` alone skips Figure 4, ``--datasets`` alone
Figure 5); each model saves a checkpoint every 50 steps and ``--resume`` continues from it (a
finished model is loaded, not trained again; Ctrl-C saves the last completed step);
``--quick`` is a smoke test of seconds whose results go to ``results/quick/cnf/``. The folders
are relative to the current directory.

As a notebook: ``jupytext --to notebook tutorials/cnf.py``, or open the .py directly with the
Jupytext extension of Jupyter or VS Code. Its config cell picks one target and one data set
(8 of the 22 models) and each cell runs its step; the results
go to ``tutorials/results/cnf/`` (relative to the notebook's folder).

Reduced scale: the paper trains the CNF for 10,000 Adam steps and the NF for 500,000 RMSprop
steps. Here the density-matching CNFs take 1,000 Adam steps (lr 6e-3, halved every 400) and the
NFs 3,000 (Adam, lr 1e-2); the likelihood CNF 800 and the NF 1,500 (Adam, lr 1e-2); 256
samples per step throughout. The NF uses Adam, not RMSprop: in 2,000 steps RMSprop left the
K = 8 NF at KL 0.62-0.72 on U1 (near ln 2 = 0.69, one of its two modes) where Adam reached 0.15.
dopri5 at rtol = atol = 1e-5 for training (the paper's sec. 6), 1e-7 for every reported number.
"""
# %% [markdown]
# # Continuous normalizing flows
#
# For dz/dt = f(z(t), t), Theorem 1 says d log p(z(t))/dt = -tr(df/dz). `minode.cnf.flow`
# solves z and log_det(t) = int tr(df/dz) dt together, so for base samples z(t0) ~ N(0, I)
#
#     log q(z(t1)) = log N(z(t0)) - log_det(t1),
#
# and for a data point x = z(t1), solving backwards to t0 gives log p(x). The planar CNF
# (`minode.planar`) is a gated sum of M units u_n tanh(w_n^T z + b_n) whose parameters are a
# network of t; its trace has a closed form, so no autograd is needed for it.

# %%
import math
import time
from dataclasses import asdict, dataclass, field

import autograd
import numpy as np

from minode import SolverStats, backend, cli, cnf, densities, optim, ops, planar, plots, runs
from minode import tree
from minode.files import write_text_atomically

# %% [markdown]
# ## Config
# In a notebook, set these and run the cells in order; as a script, the command line sets them.
#
# `DEFAULT_CONFIG` is the full run, `QUICK_CONFIG` the smoke test. A `Task` is one model trained
# on one problem: a target energy of Figure 4 ("kl") or a data set of Figure 5 ("nll"). The
# notebook runs Figure 4 for `TARGET` and Figure 5 for `DATASET`; the script runs every one
# unless `--targets` / `--datasets` choose.

# %%
QUICK = False    # True: a smoke test of seconds; its numbers mean nothing
RESUME = False   # True: continue from the checkpoints in the results folder
NOTEBOOK = cli.notebook_cells_run(__name__)   # run each cell's step as the cell runs
TARGET = "U1"        # the notebook's Figure 4 target: U1, U2c or U3c
DATASET = "circles"  # the notebook's Figure 5 data set: circles or moons

TARGETS = tuple(densities.ENERGIES)          # U1, U2c, U3c
DATASETS = ("circles", "moons")
DATASET_TITLES = {"circles": "Two Circles", "moons": "Two Moons"}
FRACTIONS = (0.05, 0.2, 0.4, 0.6, 0.8, 1.0)  # of the integration time, Figure 5's columns
HELD_OUT_SEED = 2018                         # the 2,000 held-out points of Figure 5
KL_SEED = 4                                  # the fresh samples of the KL table
# odeint's keyword arguments while training (rtol = atol = 1e-5, the paper's sec. 6) and for
# every reported number
SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5, "grad": "adjoint"}
EVAL_SOLVER = {**SOLVER, "rtol": 1e-7, "atol": 1e-7}


@dataclass(frozen=True)
class Training:
    """How one kind of model is trained: Adam steps, learning rate (halved every
    ``halve_lr_every`` steps when that is set), samples per step."""

    steps: int
    lr: float
    batch: int = 256
    halve_lr_every: int | None = None


@dataclass(frozen=True)
class Config:
    """The settings of one run."""

    sizes: tuple = (2, 8, 32)      # Figure 4: NF layers K = CNF units M
    likelihood_size: int = 64      # Figure 5: K = M
    hidden: int = 32               # width of the CNF's hypernetwork
    t_end: float = 10.0            # the CNF flows from the base at t = 0 to the data at t_end
    matching_cnf: Training = Training(steps=1000, lr=6e-3, halve_lr_every=400)
    matching_nf: Training = Training(steps=3000, lr=1e-2)
    likelihood_cnf: Training = Training(steps=800, lr=1e-2)
    likelihood_nf: Training = Training(steps=1500, lr=1e-2)
    train_solver: dict = field(default_factory=lambda: dict(SOLVER))
    eval_solver: dict = field(default_factory=lambda: dict(EVAL_SOLVER))
    kl_samples: int = 10_000       # fresh samples per KL estimate
    held_out: int = 2000           # held-out points per data set
    entropy_draws: int = 200_000   # fresh draws for the data's entropy
    grid: int = 120                # points per axis of the density pictures
    gif_frames: int = 40
    checkpoint_every: int = 50


DEFAULT_CONFIG = Config()
QUICK_CONFIG = Config(sizes=(2,), likelihood_size=3, hidden=4,
                      matching_cnf=Training(steps=3, lr=3e-3, batch=16),
                      matching_nf=Training(steps=3, lr=1e-2, batch=16),
                      likelihood_cnf=Training(steps=3, lr=1e-2, batch=16),
                      likelihood_nf=Training(steps=3, lr=1e-2, batch=16),
                      train_solver={**SOLVER, "rtol": 1e-3, "atol": 1e-3},
                      eval_solver={**SOLVER, "rtol": 1e-4, "atol": 1e-4},
                      kl_samples=64, held_out=64, entropy_draws=1000, grid=16,
                      gif_frames=3, checkpoint_every=2)


@dataclass(frozen=True)
class Task:
    """One model (``"cnf"`` or ``"nf"`` of ``size`` units or layers) on one ``problem``."""

    objective: str     # "kl" (a target of Figure 4) or "nll" (a data set of Figure 5)
    problem: str
    model: str
    size: int

    @property
    def name(self):
        return f"{self.problem}-{self.model}-{self.size}"


def matching_tasks(config, targets):
    """Figure 4's models: for each target, the NF and the CNF at every size."""
    return [Task("kl", target, model, size) for target in targets for model in ("nf", "cnf")
            for size in config.sizes]


def likelihood_tasks(config, names):
    """Figure 5's models: for each data set, the CNF and the NF."""
    return [Task("nll", name, model, config.likelihood_size) for name in names
            for model in ("cnf", "nf")]


def training_of(task, config):
    """The `Training` of ``task``."""
    kind = {"kl": "matching", "nll": "likelihood"}[task.objective]
    return getattr(config, f"{kind}_{task.model}")


def build_parser():
    """The command-line options."""
    parser = cli.tutorial_parser(__doc__.split("\n")[0])
    cli.add_run_options(parser, "cnf", quick_help="3 steps per model on tiny models and grids")
    parser.add_argument("--targets", nargs="*", choices=TARGETS, default=list(TARGETS),
                        help="Figure 4's targets (none: skip Figure 4)")
    parser.add_argument("--datasets", nargs="*", choices=DATASETS, default=list(DATASETS),
                        help="Figure 5's data sets (none: skip Figure 5)")
    return parser


def parse_args(argv=None):
    """The options of ``argv`` (default: the command line's)."""
    return cli.parse_tutorial_args(build_parser(), argv, "cnf")


def chosen_config(args):
    """`QUICK_CONFIG` for ``--quick``, else `DEFAULT_CONFIG`."""
    return QUICK_CONFIG if args.quick else DEFAULT_CONFIG


def chosen_tasks(config, targets, names):
    """Figure 4's models for ``targets``, then Figure 5's for the data sets ``names``."""
    return matching_tasks(config, targets) + likelihood_tasks(config, names)


if NOTEBOOK:
    args = parse_args(cli.notebook_argv(QUICK, RESUME, "--targets", TARGET,
                                        "--datasets", DATASET))
    runs.prepare_out_dir(args.out, args.quick)
    config = chosen_config(args)
    tasks = chosen_tasks(config, args.targets, args.datasets)
    print("models:", ", ".join(task.name for task in tasks))

# %% [markdown]
# ## Data
#
# Density matching needs no data, only base samples z ~ N(0, I) and the target p = exp(-U) / Z,
# with log Z by quadrature. Maximum likelihood draws a fresh batch of Two Circles or Two Moons
# every step (as torchdiffeq's example does); the held-out points come from a generator no
# training step uses. Step k's draws come from the generator seeded by [seed, k], so a resumed
# run repeats an uninterrupted one.

# %%
MAKE_DATA = {"circles": densities.make_two_circles, "moons": densities.make_two_moons}
DATA_LOG_DENSITY = {"circles": densities.two_circles_log_density,
                    "moons": densities.two_moons_log_density}
LOG_Z = {}


def log_normalizer(target):
    """log Z of a target energy, computed once per process."""
    if target not in LOG_Z:
        LOG_Z[target] = densities.log_normalizer(densities.ENERGIES[target])
    return LOG_Z[target]


def training_batch(task, batch, seed, step):
    """Step ``step``'s samples: base draws (kl) or data points (nll), shape (batch, 2)."""
    rng = np.random.default_rng([seed, step])
    if task.objective == "kl":
        return backend.asarray(rng.standard_normal((batch, 2)))
    return backend.asarray(MAKE_DATA[task.problem](rng, batch))


def held_out_points(name, config):
    """The held-out points of data set ``name`` (NumPy, (held_out, 2))."""
    return MAKE_DATA[name](np.random.default_rng(HELD_OUT_SEED), config.held_out)


BOX = {"kl": 4.0, "circles": 1.6, "moons": 2.0}   # half-width of the picture squares


def square_grid(half_width, points):
    """A (points^2, 2) grid over [-half_width, half_width]^2 and the axis values."""
    axis = np.linspace(-half_width, half_width, points)
    return np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2), axis


def target_density(target, grid):
    """p = exp(-U) / Z of a Figure 4 target at the grid points (NumPy)."""
    energy = backend.to_numpy(densities.ENERGIES[target](backend.asarray(grid)))
    return np.exp(-energy - log_normalizer(target))


def show_density(ax, values, axis, title, vmax):
    """A density image over the square of ``axis``, coloured from 0 to ``vmax`` (one scale
    for the panels compared); returns the image, for a colorbar."""
    side = len(axis)
    image = ax.imshow(values.reshape(side, side), origin="lower", cmap="viridis", vmin=0.0,
                      vmax=vmax, extent=(axis[0], axis[-1], axis[0], axis[-1]))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def scatter(ax, points, half_width, title):
    """Samples as small dots in the picture's square."""
    ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.5)
    ax.set(xlim=(-half_width, half_width), ylim=(-half_width, half_width), title=title,
           xticks=[], yticks=[], aspect="equal")


def plot_data(target, name, config, out):
    """The problems: a Figure 4 target density and a Figure 5 data set's density and held-out
    points; writes ``data.png``."""
    fig, axes = plots.figure(1, 3, figsize=(9, 3.2), layout="constrained")
    grid, axis = square_grid(BOX["kl"], config.grid)
    image = show_density(axes[0], target_density(target, grid), axis,
                         f"Figure 4 target {target}: p = exp(-U) / Z", vmax=None)
    fig.colorbar(image, ax=axes[0], shrink=0.8, label="density")
    grid, axis = square_grid(BOX[name], config.grid)
    image = show_density(axes[1], np.exp(DATA_LOG_DENSITY[name](grid)), axis,
                         f"{DATASET_TITLES[name]}: data density", vmax=None)
    fig.colorbar(image, ax=axes[1], shrink=0.8, label="density")
    points = held_out_points(name, config)
    scatter(axes[2], points, BOX[name], f"{DATASET_TITLES[name]}: {len(points):,} held-out "
            "points")
    return plots.save_png(fig, out / "data.png", tight=False)


if NOTEBOOK:
    plot_data(TARGET, DATASET, config, args.out)
    for task in tasks[:1] + tasks[-1:]:
        batch = training_batch(task, training_of(task, config).batch, args.seed, 0)
        print(f"{task.name}: step 0's batch has shape {batch.shape}")

# %% [markdown]
# ## Models
#
# Both models are written in the direction they are trained in. For density matching the flow
# maps base samples to q, so the CNF runs t = 0 -> t_end and the NF applies its layers in order.
# For maximum likelihood the density direction comes first: the CNF solves data -> base (t_end
# -> 0) and the NF maps data to base, x -> z = f(x); the NF samples with its inverse. Every
# solve takes `solver`, a dict of `odeint`'s keyword arguments (`SOLVER`, `EVAL_SOLVER`).

# %%


def init_model(task, config, rng):
    """Fresh parameters: the CNF's hypernetwork or the NF's K layers."""
    if task.model == "cnf":
        return planar.init_planar_cnf(rng, dim=2, units=task.size, hidden=config.hidden)
    return planar.init_planar_flow(rng, dim=2, layers=task.size)


def initial_params(task, config, seed):
    """The parameters training starts from."""
    return init_model(task, config, np.random.default_rng([seed, 1]))


def cnf_times(config, fraction=1.0):
    """The CNF's time grid from the base (t = 0) to ``fraction`` of t_end."""
    return backend.asarray(np.array([0.0, fraction * config.t_end]))


def push_forward(task, params, z, config, solver, stats=None):
    """``(x, log q(x))`` for base samples ``z``: the flow applied in its forward direction."""
    if task.model == "cnf":
        xs, log_det = cnf.flow(planar.planar_cnf_with_trace, z, cnf_times(config), params,
                               trace="closed_form", stats=stats, **solver)
        x, log_det = ops.getitem(xs, -1), ops.getitem(log_det, -1)
    else:
        x, log_det = planar.planar_flow(params, z)
    return x, ops.subtract(cnf.normal_log_prob(z), log_det)     # Theorem 1 / eq. (6)


def log_likelihood(task, params, x, config, solver, fraction=1.0, stats=None):
    """log p(x) per point under the model (for the CNF: pushed to ``fraction`` of t_end)."""
    if task.model == "cnf":
        return cnf.log_prob(planar.planar_cnf_with_trace, x, cnf_times(config, fraction),
                            params, trace="closed_form", stats=stats, **solver)
    z, log_det = planar.planar_flow(params, x)
    return ops.add(cnf.normal_log_prob(z), log_det)


def parameter_count(params):
    """The number of scalars in a pytree of parameters."""
    return sum(int(np.size(leaf)) for leaf in tree.tree_leaves(params))


if NOTEBOOK:
    for task in tasks:
        print(f"{task.name}: {parameter_count(initial_params(task, config, args.seed))} "
              "parameters")

# %% [markdown]
# ## Losses
#
# Density matching: KL(q || p) = E_q[log q(x) + U(x)] + log Z, with log Z by quadrature so the
# loss is a true KL (0 only for q = p). Maximum likelihood: the mean of -log p(x).

# %%


def kl_terms(task, params, z, config, solver, stats=None):
    """log q(x) + U(x) + log Z per base sample: its mean is KL(q || p)."""
    x, log_q = push_forward(task, params, z, config, solver, stats)
    energy = densities.ENERGIES[task.problem](x)
    return ops.add(ops.add(log_q, energy), log_normalizer(task.problem))


def loss(params, task, batch, config, stats=None):
    """The training loss of ``task`` on one batch, solved with ``config.train_solver``."""
    if task.objective == "kl":
        return ops.mean(kl_terms(task, params, batch, config, config.train_solver, stats))
    return ops.negative(ops.mean(log_likelihood(task, params, batch, config,
                                                config.train_solver, stats=stats)))


loss_and_grad = autograd.value_and_grad(loss)

if NOTEBOOK:
    for task in tasks:
        batch = training_batch(task, training_of(task, config).batch, args.seed, 0)
        untrained = loss(initial_params(task, config, args.seed), task, batch, config)
        print(f"{task.name}: untrained loss on step 0's batch {float(untrained):.3f}")

# %% [markdown]
# ## Training loop
#
# One loop for every task: Adam on the task's loss, the solver's function evaluations counted
# forward and backward (the adjoint's), the state checkpointed atomically every few steps and
# on Ctrl-C.

# %%


def fresh_state(task, config, seed, optimizer):
    """The state before step 0."""
    params = initial_params(task, config, seed)
    return {"step": 0, "params": params, "opt": optimizer.init(params),
            "log": {"losses": [], "nfe_forward": [], "nfe_backward": [], "seconds": 0.0,
                    "cpu_seconds": 0.0}}


def record_step(log, value, stats, seconds, cpu_seconds):
    """Add one step's loss, function evaluations and times to the log."""
    log["losses"].append(float(value))
    log["nfe_forward"].append(stats.forward.nfe)
    log["nfe_backward"].append(stats.backward.nfe)
    log["seconds"] += seconds
    log["cpu_seconds"] += cpu_seconds


def training_config(task, config, seed):
    """What shapes ``task``'s training, recorded in its checkpoint: a resume must match it."""
    return {"seed": seed, "task": task.name, "hidden": config.hidden, "t_end": config.t_end,
            "training": asdict(training_of(task, config)), "solver": config.train_solver}


def train(task, config, out, seed, resume=False, quiet=False):
    """Train ``task``, checkpointing to ``out`` (or, with ``resume``, continue from its
    checkpoint there: a finished model is loaded); returns the state."""
    training = training_of(task, config)
    optimizer = optim.Adam(lr=training.lr if training.halve_lr_every is None else
                           optim.step_decay(training.lr, 0.5, every=training.halve_lr_every))
    checkpoint = runs.Checkpoint(out / f"{task.name}_checkpoint.npz",
                                 every=config.checkpoint_every,
                                 config=training_config(task, config, seed))
    state = checkpoint.load_or(fresh_state(task, config, seed, optimizer), resume)
    stats = SolverStats()
    with checkpoint.saved_on_interrupt(lambda: state, total=training.steps):
        progress = runs.progress(range(state["step"], training.steps), initial=state["step"],
                                 total=training.steps, desc=f"{task.name:>14}", quiet=quiet)
        for step in progress:
            wall, cpu = time.perf_counter(), time.process_time()
            batch = training_batch(task, training.batch, seed, step)
            stats.reset()
            value, grads = loss_and_grad(state["params"], task, batch, config, stats)
            with runs.deferred_interrupt():
                state["params"], state["opt"] = optimizer.update(state["params"], grads,
                                                                 state["opt"])
                record_step(state["log"], value, stats, time.perf_counter() - wall,
                            time.process_time() - cpu)
                state["step"] = step + 1
                checkpoint.save_if_due(state, training.steps)
            progress.set_postfix(loss=f"{float(value):.3f}", nfe=stats.forward.nfe,
                                 refresh=False)
    return state


def train_all(tasks, config, out, seed, resume=False, quiet=False):
    """`train` each task; returns ``{task name: state}``."""
    return {task.name: train(task, config, out, seed, resume, quiet) for task in tasks}


if NOTEBOOK:
    trained = train_all(tasks, config, args.out, args.seed, args.resume, args.quiet)
    for name, state in trained.items():
        print(f"{name}: final training loss {state['log']['losses'][-1]:.3f}")

# %% [markdown]
# ## Evaluation
#
# Every reported number is solved with `eval_solver`: the KL on fresh samples with its standard
# error, the held-out NLL, and for the Two Circles CNF two checks of the trained flow: its density
# integrates to 1 over a grid (FFJORD, App. C), and base -> data -> base returns the start.

# %%
def training_summary(task, state):
    """The numbers of training itself: steps, times, the final loss and NFE per step."""
    log = state["log"]
    last = max(1, len(log["losses"]) // 10)
    return {"task": task.name, "objective": task.objective, "problem": task.problem,
            "model": task.model, "size": task.size, "steps": state["step"],
            "seconds": log["seconds"], "cpu_seconds": log["cpu_seconds"],
            "final_train_loss": float(np.mean(log["losses"][-last:])),
            "nfe_forward": float(np.mean(log["nfe_forward"][-last:])),
            "nfe_backward": float(np.mean(log["nfe_backward"][-last:]))}


def evaluate_kl(task, params, config):
    """KL(q || p) and its standard error on ``kl_samples`` fresh base samples."""
    z = backend.asarray(np.random.default_rng(KL_SEED).standard_normal((config.kl_samples, 2)))
    terms = backend.to_numpy(kl_terms(task, params, z, config, config.eval_solver))
    return {"kl": float(terms.mean()), "kl_se": float(terms.std() / math.sqrt(len(terms)))}


def best_gaussian_nll(name, config):
    """Held-out NLL of the Gaussian fitted (maximum likelihood) to 100,000 training draws."""
    x = MAKE_DATA[name](np.random.default_rng([HELD_OUT_SEED, 1]), 100_000)
    mean, cov = x.mean(axis=0), np.cov(x.T, bias=True)
    y = held_out_points(name, config) - mean
    mahalanobis = np.einsum("ni,ij,nj->n", y, np.linalg.inv(cov), y)
    return float(np.mean(0.5 * mahalanobis + 0.5 * np.log(np.linalg.det(2 * np.pi * cov))))


def evaluate_nll(task, params, config):
    """Held-out NLL of the model, of the best Gaussian, and of the data's own density on the
    same points (the floor no model can beat on them)."""
    x = held_out_points(task.problem, config)
    nll = -float(np.mean(backend.to_numpy(log_likelihood(task, params, backend.asarray(x),
                                                         config, config.eval_solver))))
    return {"nll": nll, "gaussian_nll": best_gaussian_nll(task.problem, config),
            "entropy": -float(np.mean(DATA_LOG_DENSITY[task.problem](x)))}


def data_entropy(name, config):
    """The entropy -E log p of data set ``name``'s distribution, from fresh draws."""
    x = MAKE_DATA[name](np.random.default_rng([HELD_OUT_SEED, 2]), config.entropy_draws)
    return -float(np.mean(DATA_LOG_DENSITY[name](x)))


def density_integral(task, params, config, limit=4.0, points=201):
    """The model's density summed over a grid of [-limit, limit]^2 times the cell area."""
    xs, step = np.linspace(-limit, limit, points, retstep=True)
    grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
    log_p = backend.to_numpy(log_likelihood(task, params, backend.asarray(grid), config,
                                            config.eval_solver))
    return float(np.exp(log_p).sum() * step ** 2)


def round_trip_error(task, params, config, n=500):
    """max |z - z'| for base samples z carried to the data and back again."""
    z = backend.asarray(np.random.default_rng(KL_SEED).standard_normal((n, 2)))
    x = cnf.flow(planar.planar_cnf_with_trace, z, cnf_times(config), params,
                 trace="closed_form", **config.eval_solver)[0]
    back = cnf.flow(planar.planar_cnf_with_trace, ops.getitem(x, -1), cnf_times(config)[::-1],
                    params, trace="closed_form", **config.eval_solver)[0]
    return float(np.abs(backend.to_numpy(ops.getitem(back, -1) - z)).max())


def evaluate(task, state, config):
    """The task's result: training numbers plus its evaluation."""
    result = training_summary(task, state)
    if task.objective == "kl":
        result.update(evaluate_kl(task, state["params"], config))
        return result
    result.update(evaluate_nll(task, state["params"], config))
    if task.model == "cnf" and task.problem == "circles":
        result["density_integral"] = density_integral(task, state["params"], config)
        result["round_trip_error"] = round_trip_error(task, state["params"], config)
    return result


def print_result(result):
    """One line per trained model."""
    score = (f"KL {result['kl']:.3f} ± {result['kl_se']:.3f}" if "kl" in result
             else f"held-out NLL {result['nll']:.3f} (floor {result['entropy']:.3f})")
    print(f"{result['task']}: {score}; {result['steps']} steps, {result['seconds']:.0f} s "
          f"wall, {result['cpu_seconds']:.0f} s CPU; NFE {result['nfe_forward']:.0f} / "
          f"{result['nfe_backward']:.0f}")


def evaluate_all(tasks, trained, config, out, options=None):
    """`evaluate` each trained task, write its result file to ``out`` (with the run's
    ``options``) and print it; returns ``{task name: result}``."""
    results = {}
    for task in tasks:
        results[task.name] = evaluate(task, trained[task.name], config)
        runs.write_result(out, task.name, results[task.name], options=options)
        print_result(results[task.name])
    return results


if NOTEBOOK:
    results = evaluate_all(tasks, trained, config, args.out, vars(args))

# %% [markdown]
# ## Pictures
#
# Figure 4 in the paper's layout: per target, the target density, the NF's q for K = 2, 8, 32,
# the CNF's for M = 2, 8, 32 (each evaluated on a grid: the NF through its inverse, the CNF by
# solving back to the base; one colour scale per row) and panel (d), KL against K / M. Figure 5
# per data set: the CNF's density and samples at 5% ... 100% of the integration time, where the
# density at time t is the base density pushed through [0, t], then the target and the NF's
# density and samples (the densities on one colour scale); and a GIF of samples flowing from
# the base to the data.

# %%


def model_density_on_grid(task, params, config, grid, fraction=1.0):
    """The density of ``task``'s model at the grid points (NumPy)."""
    points = backend.asarray(grid)
    if task.model == "nf" and task.objective == "kl":  # points are outputs x: invert to z
        z = planar.planar_flow_inverse(params, points)
        log_q = push_forward(task, params, z, config, config.eval_solver)[1]
    else:  # the CNF solved back to the base, or the likelihood NF applied directly
        log_q = log_likelihood(task, params, points, config, config.eval_solver, fraction)
    return np.exp(backend.to_numpy(log_q))


def plot_kl_against_size(ax, results, target, sizes):
    """Panel (d): the KL of NF and CNF against K = M."""
    for model, marker in (("nf", "s"), ("cnf", "o")):
        rows = [results.get(f"{target}-{model}-{size}") for size in sizes]
        kl = [row["kl"] if row else np.nan for row in rows]
        ax.plot(sizes, kl, marker=marker, label=model.upper())
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(list(sizes), [str(s) for s in sizes])
    ax.set(xlabel="K (NF layers) / M (CNF units)", ylabel="KL(q || p), nats",
           title=f"(d) KL(q || p) on {target}")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.legend()


def plot_figure4(trained, results, config, targets, out):
    """Figure 4: one row per target."""
    sizes = config.sizes
    columns = 2 + 2 * len(sizes)
    fig, axes = plots.figure(len(targets), columns, figsize=(2.3 * columns, 2.4 * len(targets)),
                             squeeze=False, layout="constrained")
    grid, axis = square_grid(BOX["kl"], config.grid)
    models = [(m, s) for m in ("nf", "cnf") for s in sizes]
    for row, target in zip(axes, targets):
        values = [target_density(target, grid)] + [
            model_density_on_grid(Task("kl", target, model, size),
                                  trained[f"{target}-{model}-{size}"]["params"], config, grid)
            for model, size in models]
        vmax = max(v.max() for v in values)
        titles = [f"(a) target p: {target}"] + [
            f"(b) NF q, K={size}" if model == "nf" else f"(c) CNF q, M={size}"
            for model, size in models]
        for ax, value, title in zip(row, values, titles):
            image = show_density(ax, value, axis, title, vmax)
        fig.colorbar(image, ax=row[:-1], shrink=0.8, label="density")
        plot_kl_against_size(row[-1], results, target, sizes)
    half = BOX["kl"]
    fig.suptitle(f"Figure 4: density matching; densities on [-{half:g}, {half:g}]², one colour "
                 "scale per row")
    return plots.save_png(fig, out / "figure4.png", tight=False)


SAMPLES_SHOWN = 1000


def flow_frames(params, config, times, n=SAMPLES_SHOWN):
    """CNF samples: base draws carried to every time in ``times``, NumPy (len(times), n, 2)."""
    xs, _ = cnf.sample(planar.planar_cnf_with_trace, n, backend.asarray(times), params,
                       rng=np.random.default_rng(KL_SEED), trace="closed_form",
                       **config.eval_solver)
    return backend.to_numpy(xs)


def nf_samples(params, n=SAMPLES_SHOWN):
    """Samples of the likelihood NF: base draws through its inverse (data = f^-1(z))."""
    z = np.random.default_rng(KL_SEED).standard_normal((n, 2))
    return backend.to_numpy(planar.planar_flow_inverse(params, backend.asarray(z)))


def plot_figure5(name, trained, config, out):
    """Figure 5 for one data set: density and samples rows, the target, the NF."""
    cnf_task, nf_task = likelihood_tasks(config, [name])
    cnf_params, nf_params = trained[cnf_task.name]["params"], trained[nf_task.name]["params"]
    half = BOX[name]
    grid, axis = square_grid(half, config.grid)
    samples = flow_frames(cnf_params, config, np.array([0.0] + [f * config.t_end
                                                                for f in FRACTIONS]))
    values = [model_density_on_grid(cnf_task, cnf_params, config, grid, fraction)
              for fraction in FRACTIONS]
    values += [np.exp(DATA_LOG_DENSITY[name](grid)),
               model_density_on_grid(nf_task, nf_params, config, grid)]
    vmax = max(v.max() for v in values)
    times = [f"t = {fraction * config.t_end:g}" for fraction in FRACTIONS]
    held_out = held_out_points(name, config)[:SAMPLES_SHOWN]
    columns = len(FRACTIONS) + 2
    fig, axes = plots.figure(2, columns, figsize=(2.0 * columns, 4.6), layout="constrained")
    titles = [f"CNF density, {t}" for t in times] + ["data density",
                                                      f"NF density, K={nf_task.size}"]
    for ax, value, title in zip(axes[0], values, titles):
        image = show_density(ax, value, axis, title, vmax)
    fig.colorbar(image, ax=axes[0, :], shrink=0.8, label="density")
    for k, t in enumerate(times):
        scatter(axes[1, k], samples[k + 1], half, f"CNF samples, {t}")
    scatter(axes[1, -2], held_out, half, f"{len(held_out):,} held-out points")
    scatter(axes[1, -1], nf_samples(nf_params), half, f"NF samples, K={nf_task.size}")
    fig.suptitle(f"Figure 5, {DATASET_TITLES[name]}: the CNF (M={cnf_task.size}) flows the base "
                 f"N(0, I) at t = 0 to the data at t = {config.t_end:g}; densities on one "
                 "colour scale")
    return plots.save_png(fig, out / f"figure5_{name}.png", tight=False)


def plot_flow_gif(name, trained, config, out):
    """Samples flowing from the base (t = 0) to the data (t_end), coloured by base angle."""
    task = likelihood_tasks(config, [name])[0]
    times = np.linspace(0.0, config.t_end, config.gif_frames + 1)
    frames = flow_frames(trained[task.name]["params"], config, times)
    angle = np.arctan2(frames[0, :, 1], frames[0, :, 0])
    fig, ax = plots.figure(figsize=(4, 4.2))
    dots = ax.scatter(frames[0, :, 0], frames[0, :, 1], c=angle, cmap="hsv", s=3)
    half = max(BOX[name], 2.5)
    ax.set(xlim=(-half, half), ylim=(-half, half), aspect="equal", xticks=[], yticks=[],
           xlabel="colour: the sample's angle in the base")

    def draw(k):
        dots.set_offsets(frames[k])
        ax.set_title(f"CNF samples flowing to {DATASET_TITLES[name]}\n"
                     f"t = {times[k]:.2f} of {config.t_end:g}")

    return plots.save_gif(fig, out / f"flow_{name}.gif", draw, range(len(times)), fps=8)


def draw_pictures(trained, results, config, targets, names, out):
    """Figure 4 for ``targets`` (when any), Figure 5 and the GIF for each data set of
    ``names``; returns the files written."""
    files = [plot_figure4(trained, results, config, targets, out)] if targets else []
    for name in names:
        files += [plot_figure5(name, trained, config, out),
                  plot_flow_gif(name, trained, config, out)]
    return files


if NOTEBOOK:
    draw_pictures(trained, results, config, args.targets, args.datasets, args.out)

# %% [markdown]
# ## Numbers
#
# The paper prints no numbers for sec. 4.1, only Figures 4 and 5; its claims are qualitative
# (the CNF matches the targets at least as well as the NF with as many layers as it has units,
# and fits the two data sets where the NF does not). The tables put our numbers next to those
# claims: KL(q || p) on 10,000 fresh samples, and held-out NLL in nats next to the best single
# Gaussian and the data's entropy (no model can go below it).

# %%
def kl_table(results, config):
    """Markdown: KL(q || p) +- standard error per target (rows) and model size (columns)."""
    header = " | ".join(f"{m} {'K' if m == 'NF' else 'M'}={s}" for m in ("NF", "CNF")
                        for s in config.sizes)
    lines = [f"| target | {header} |", "|---" + "|---:" * 2 * len(config.sizes) + "|"]
    for target in TARGETS:
        cells = []
        for model in ("nf", "cnf"):
            for size in config.sizes:
                row = results.get(f"{target}-{model}-{size}")
                cells.append(f"{row['kl']:.3f} ± {row['kl_se']:.3f}" if row else "-")
        if any(cell != "-" for cell in cells):
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def nll_table(results, config):
    """Markdown: held-out NLL (nats) of CNF, NF, the best Gaussian and the data's entropy."""
    size = config.likelihood_size
    lines = [f"| data | CNF M={size} | NF K={size} | best Gaussian | data density on these "
             f"points (floor) | data entropy ({config.entropy_draws:,} draws) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in DATASETS:
        rows = [results.get(f"{name}-{model}-{size}") for model in ("cnf", "nf")]
        known = [row for row in rows if row]
        if known:
            cells = [f"{row['nll']:.3f}" if row else "-" for row in rows]
            lines.append(f"| {name} | {' | '.join(cells)} | {known[0]['gaussian_nll']:.3f} | "
                         f"{known[0]['entropy']:.3f} | {data_entropy(name, config):.3f} |")
    return "\n".join(lines)


def details_table(results):
    """Markdown: per model, training steps, times, final training loss, NFE per step."""
    lines = ["| model | steps | wall s | CPU s | final training loss | NFE forward / backward |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, row in results.items():
        lines.append(f"| {name} | {row['steps']} | {row['seconds']:.0f} | "
                     f"{row['cpu_seconds']:.0f} | {row['final_train_loss']:.3f} | "
                     f"{row['nfe_forward']:.0f} / {row['nfe_backward']:.0f} |")
    return "\n".join(lines)


def checks_text(results, config):
    """The trained circles CNF's density integral and round-trip error, when it was run."""
    row = results.get(f"circles-cnf-{config.likelihood_size}")
    if not row:
        return ""
    return (f"Two Circles CNF: density summed over a grid of [-4, 4]^2 = "
            f"{row['density_integral']:.4f}; base -> data -> base at tol "
            f"{config.eval_solver['rtol']:g}: "
            f"max error {row['round_trip_error']:.2e}.")


def tables(results, config):
    """The whole ``table.md``: KL table, NLL table, checks, training details, commands."""
    commands = sorted({row["command"] for row in results.values() if "command" in row})
    return "\n\n".join([
        "## Figure 4: KL(q || p) on fresh samples (nats, ± standard error)",
        kl_table(results, config),
        f"## Figure 5: held-out negative log-likelihood (nats, {config.held_out:,} points)",
        nll_table(results, config), checks_text(results, config),
        "## Training", details_table(results),
        "Commands:\n" + "\n".join(f"- `{command}`" for command in commands)]) + "\n"


def write_tables(out, config):
    """Write ``table.md`` from the result files in ``out`` (this run's and earlier commands')
    and return its text."""
    names = [task.name for task in chosen_tasks(config, TARGETS, DATASETS)]
    text = tables(runs.collect_results(out, names, {}), config)
    write_text_atomically(out / "table.md", text)
    return text


if NOTEBOOK:
    print(write_tables(args.out, config))

# %% [markdown]
# ## Running it
#
# `main` trains and evaluates every chosen task (data, model, loss and loop above), draws the
# figures, and writes `table.md` from this run's results and those earlier commands left.

# %%


def main(argv=None):
    """Run the chosen parts; returns ``{task name: result}`` of this run."""
    args = parse_args(argv)
    runs.prepare_out_dir(args.out, args.quick)
    config = chosen_config(args)
    tasks = chosen_tasks(config, args.targets, args.datasets)
    trained = train_all(tasks, config, args.out, args.seed, args.resume, args.quiet)
    results = evaluate_all(tasks, trained, config, args.out, vars(args))
    files = draw_pictures(trained, results, config, args.targets, args.datasets, args.out)
    text = write_tables(args.out, config)
    print("\n" + text + "\n" + "\n".join(f"wrote {path}" for path in files))
    return results


if __name__ == "__main__" and not NOTEBOOK:
    runs.run_script(main)
