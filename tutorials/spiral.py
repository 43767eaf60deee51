"""Tutorial 1: learn the dynamics of a spiral with a Neural ODE (Chen et al. 2018, sec. 3-5).

We observe points of one trajectory z(t) of an unknown ODE dz/dt = f(z). A model f_theta is
fitted so that odeint(f_theta, z(t_0), t) reproduces the observations; the gradient of the loss
comes from the adjoint method (Algorithm 1) or from backprop through the solver.

Three experiments (``--experiment``):

* linear: dz/dt = A z, the model is a 2x2 matrix; we can read off how close it gets to A.
* mlp:    a field with two spiral regimes glued by a sigmoid, the model an MLP 2-16-16-2 (ELU).
* cubic:  torchdiffeq's ``ode_demo.py`` task, dy/dt = (y**3) A, an MLP 2-50-2 (tanh) on y**3.

Run ``python tutorials/spiral.py`` (all three, a few minutes on a laptop) and look at the PNGs
and GIFs in ``results/spiral/``. ``--quick`` does a handful of iterations (a smoke test).
"""
import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import autograd
import numpy as np
from tqdm import tqdm

from minode import SolverStats, backend, nn, odeint, ops, optim
from minode.cli import positive_int

# ---------------------------------------------------------------------------------------------
# The true dynamics. Fields take a batch of states z of shape (batch, 2), as minode's models do.

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


# ---------------------------------------------------------------------------------------------
# The models: an init function and a field with odeint's signature f(z, t, params).

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


def mean_squared(prediction, target):
    """Mean squared error."""
    return ops.mean(ops.square(prediction - target))


def mean_absolute(prediction, target):
    """Mean absolute (L1) error."""
    return ops.mean(ops.absolute(prediction - target))


@dataclass(frozen=True)
class Experiment:
    """One spiral task: its data recipe, its model and how it is trained."""

    name: str
    true_field: object
    true_params: object
    z0: tuple
    t_max: float
    n_points: int
    noise_std: float
    init_model: object
    model_field: object
    loss: object
    make_optimizer: object
    iters: int
    window: str  # "random-span": 1 to 5 time units; "fixed-10": 10 consecutive points
    batch_size: int


EXPERIMENTS = {
    "linear": Experiment("linear", linear_field, LINEAR_A, (0.6, 0.3), 6.29 * 5, 200, 0.01,
                         init_linear_model, linear_field, mean_squared,
                         lambda: optim.Adam(lr=0.01), 800, "random-span", 16),
    "mlp": Experiment("mlp", two_regime_field, None, (0.6, 0.3), 6.29 * 5, 200, 0.01,
                      init_elu_mlp, elu_mlp_field, mean_squared,
                      lambda: optim.Adam(lr=optim.step_decay(0.01, 0.5, every=250)), 1000,
                      "random-span", 16),
    "cubic": Experiment("cubic", cubic_field, None, (2.0, 0.0), 25.0, 1000, 0.0,
                        init_cubic_model, cubic_mlp_field, mean_absolute,
                        lambda: optim.RMSprop(lr=1e-3), 2000, "fixed-10", 20),
}


# ---------------------------------------------------------------------------------------------
# Data: one trajectory, observed with noise.

def make_data(experiment, rng):
    """Times, the clean trajectory and noisy observations, each (n_points, 2) for states."""
    times = np.linspace(0.0, experiment.t_max, experiment.n_points)
    z0 = backend.asarray(np.array([experiment.z0]))
    clean = backend.to_numpy(odeint(experiment.true_field, z0, backend.asarray(times),
                                    experiment.true_params, rtol=1e-10, atol=1e-10))[:, 0]
    observed = clean + experiment.noise_std * rng.normal(size=clean.shape)
    return times, clean, observed


CURRICULUM_ITERS = 400


def sample_windows(experiment, times, observed, rng, iteration):
    """A batch of sub-trajectories sharing one relative time grid (the dynamics are autonomous).

    Random-span windows cover 1 to 5 time units, but the longest allowed span grows from 1 to 5
    over the first ``CURRICULUM_ITERS`` iterations: on short windows z(t) ~ z0 + t f(z0) and the
    fit is nearly a regression, while a long window from a badly initialised model (say, one
    that turns the wrong way) has a loss landscape with local minima.
    Returns (z_start (batch, 2), t_window (n,), targets (n, batch, 2)).
    """
    dt = times[1] - times[0]
    if experiment.window == "fixed-10":
        n = 10
    else:  # at most 32 points
        longest = 1.0 + 4.0 * min(1.0, iteration / CURRICULUM_ITERS)
        n = int(min(32, max(2, round(rng.uniform(1.0, longest) / dt) + 1)))
    starts = rng.choice(len(times) - n, size=experiment.batch_size, replace=False)
    targets = np.stack([observed[starts + i] for i in range(n)])
    return (backend.asarray(targets[0]), backend.asarray(times[:n] - times[0]),
            backend.asarray(targets))


# ---------------------------------------------------------------------------------------------
# Training.

def predict_trajectory(experiment, params, times, method):
    """The model's trajectory from z0 over the whole time span, shape (n_points, 2)."""
    z0 = backend.asarray(np.array([experiment.z0]))
    ys = odeint(experiment.model_field, z0, backend.asarray(times), params, method=method,
                rtol=1e-7, atol=1e-9)
    return backend.to_numpy(ys)[:, 0]


@dataclass
class TrainingRun:
    """What training produced: parameters, per-iteration losses, GIF frames and counts."""

    params: object
    losses: np.ndarray
    snapshots: list
    stats: SolverStats
    iters: int
    check_loss_before: float
    check_loss_after: float


def train(experiment, data, args, rng):
    """Fit the model to the observations; returns a `TrainingRun`.

    Besides the noisy per-batch losses, the loss on one fixed batch of windows (2 time units
    long) is measured before and after training, a like-for-like check that the fit improved.
    """
    times, _, observed = data
    params = experiment.init_model(rng)
    optimizer = experiment.make_optimizer()
    opt_state = optimizer.init(params)
    stats = SolverStats()
    iters = args.iters or (20 if args.quick else experiment.iters)
    snapshot_every = max(1, iters // 30)
    losses, snapshots = [], []

    def batch_loss(params, z_start, t_window, targets, stats=None):
        prediction = odeint(experiment.model_field, z_start, t_window, params,
                            method=args.method, rtol=1e-7, atol=1e-9, grad=args.grad,
                            stats=stats)
        return experiment.loss(prediction, targets)

    check_batch = sample_windows(experiment, times, observed, np.random.default_rng(12345),
                                 CURRICULUM_ITERS // 4)
    check_loss_before = float(batch_loss(params, *check_batch))
    loss_and_grad = autograd.value_and_grad(batch_loss)
    progress = tqdm(range(iters), desc=f"{experiment.name:>6}", disable=args.quiet)
    for iteration in progress:
        batch = sample_windows(experiment, times, observed, rng, iteration)
        loss, grads = loss_and_grad(params, *batch, stats=stats)
        params, opt_state = optimizer.update(params, grads, opt_state)
        losses.append(float(loss))
        progress.set_postfix(loss=f"{float(loss):.4g}")
        if not args.no_plots and (iteration % snapshot_every == 0 or iteration == iters - 1):
            snapshots.append((iteration, predict_trajectory(experiment, params, times,
                                                            args.method)))
    return TrainingRun(params, np.array(losses), snapshots, stats, iters, check_loss_before,
                       float(batch_loss(params, *check_batch)))


# ---------------------------------------------------------------------------------------------
# Pictures.

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


def save_plots(experiment, data, params, losses, snapshots, out_dir):
    """Phase portrait, vector fields, loss curve and the training GIF; returns the file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    times, clean, observed = data
    learned = snapshots[-1][1]
    limits = plot_limits(clean, observed)
    name = experiment.name
    files = []

    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = ax.scatter(observed[:, 0], observed[:, 1], c=times, cmap="viridis", s=10,
                        label="observations")
    ax.plot(clean[:, 0], clean[:, 1], "k--", lw=1, label="true trajectory")
    ax.plot(learned[:, 0], learned[:, 1], color="crimson", lw=2, label="Neural ODE")
    fig.colorbar(points, ax=ax, label="time")
    ax.set(title=f"{name}: data and learned trajectory", xlabel="z1", ylabel="z2",
           xlim=limits[0], ylim=limits[1])
    ax.legend(loc="best", fontsize=8)
    files.append(_save(fig, out_dir / f"{name}_phase.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    for ax, (title, field, field_params, path) in zip(axes, [
            ("true field", experiment.true_field, experiment.true_params, clean),
            ("learned field", experiment.model_field, params, learned)]):
        gx, gy, u, v = field_on_grid(field, field_params, limits)
        ax.streamplot(gx, gy, u, v, color=np.hypot(u, v), cmap="Greys", density=1.2)
        ax.plot(path[:, 0], path[:, 1], color="crimson", lw=1.5)
        ax.set(title=f"{name}: {title}", xlabel="z1", xlim=limits[0], ylim=limits[1])
    axes[0].set_ylabel("z2")
    files.append(_save(fig, out_dir / f"{name}_field.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.semilogy(losses, lw=0.8, alpha=0.5, label="batch loss")
    window = max(1, len(losses) // 50)
    ax.semilogy(np.convolve(losses, np.ones(window) / window, mode="valid"), lw=2,
                label=f"moving average ({window})")
    ax.set(title=f"{name}: training loss", xlabel="iteration", ylabel=experiment.loss.__doc__.rstrip("."))
    ax.legend(fontsize=8)
    files.append(_save(fig, out_dir / f"{name}_loss.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(observed[:, 0], observed[:, 1], c=times, cmap="viridis", s=8)
    line, = ax.plot([], [], color="crimson", lw=2)
    ax.set(xlim=limits[0], ylim=limits[1], xlabel="z1", ylabel="z2")

    def draw(frame):
        iteration, trajectory = snapshots[frame]
        line.set_data(trajectory[:, 0], trajectory[:, 1])
        ax.set_title(f"{name}: iteration {iteration + 1}")
        return line,

    animation = FuncAnimation(fig, draw, frames=len(snapshots), blit=False)
    gif_path = out_dir / f"{name}_training.gif"
    animation.save(gif_path, writer=PillowWriter(fps=6))
    plt.close(fig)
    files.append(gif_path)
    return files


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------

def run_experiment(experiment, args):
    """Data, training, evaluation and pictures for one experiment; returns its numbers."""
    rng = np.random.default_rng(args.seed)
    data = make_data(experiment, rng)
    start = time.perf_counter()
    run = train(experiment, data, args, rng)
    seconds = time.perf_counter() - start
    times, clean, _ = data
    learned = predict_trajectory(experiment, run.params, times, args.method)
    tenth = max(1, run.iters // 10)
    result = {
        "experiment": experiment.name, "iters": run.iters, "seconds": seconds,
        "first_loss": float(np.mean(run.losses[:tenth])),
        "final_loss": float(np.mean(run.losses[-tenth:])),
        "check_loss_before": run.check_loss_before, "check_loss_after": run.check_loss_after,
        "rmse": float(np.sqrt(np.mean((learned - clean) ** 2))),
        "nfe_forward": run.stats.forward.nfe / run.iters,
        "nfe_backward": run.stats.backward.nfe / run.iters,
        "params": run.params,
    }
    if experiment.name == "linear":
        result["max_abs_error_A"] = float(np.abs(backend.to_numpy(run.params) - LINEAR_A).max())
    if not args.no_plots:
        result["files"] = save_plots(experiment, data, run.params, run.losses, run.snapshots,
                                     args.out)
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
        print("learned A:\n", np.round(backend.to_numpy(result["params"]), 4))
        print("true A:\n", LINEAR_A)
        print(f"max |A_learned - A_true| = {result['max_abs_error_A']:.4f}")
    for path in result.get("files", []):
        print(f"  wrote {path}")


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=["linear", "mlp", "cubic", "all"], default="all")
    parser.add_argument("--iters", type=positive_int, default=None,
                        help="training iterations (default: per experiment)")
    parser.add_argument("--method", default="dopri5", help="an adaptive minode solver")
    parser.add_argument("--grad", choices=["adjoint", "backprop"], default="adjoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 iterations, a smoke test")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, default=Path("results/spiral"))
    return parser.parse_args(argv)


def main(argv=None):
    """Run the chosen experiments; returns their results (used by the tests)."""
    args = parse_args(argv)
    if not args.no_plots:
        args.out.mkdir(parents=True, exist_ok=True)
    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    results = []
    for name in names:
        results.append(run_experiment(EXPERIMENTS[name], args))
        report(results[-1])
    return results


if __name__ == "__main__":
    main()
