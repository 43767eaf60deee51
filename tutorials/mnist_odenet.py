# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
# ---

# %% [markdown]
"""Tutorial 2: a convolutional ODE-Net on MNIST, with the paper's Table 1 and Figure 3 at our scale.

Chen et al. (2018), sec. 3: a residual network updates its hidden state by h_{t+1} = h_t + f(h_t),
an Euler step of dh/dt = f(h(t), t). An ODE-Net replaces a stack of residual blocks with ONE block
whose output is h(1) = ODESolve(h(0), f, 0, 1, theta) (eq. (1)-(3)); the solver decides how many
evaluations of f it needs, and the adjoint method (Algorithm 1) trains it with memory that does
not grow with that number.

Run ``python tutorials/mnist_odenet.py`` (the ODE-Net for 10 epochs: 14.4 minutes of CPU
time on one core, 13 of them training; ``--model all`` trains every model) on the
8,000 / 2,000 MNIST digits bundled with minode (``--full`` downloads all 70,000). It writes to
``results/mnist_odenet/`` (``--quick``: ``results/quick/mnist_odenet/``), relative to the
current directory (from a notebook, to the notebook's folder: ``tutorials/results/...``): a
checkpoint after every epoch (``--resume`` continues from it) and a result file per model,
``digits.png`` (a few training digits), Table 1 as ``table1.md`` and Figure 3's panels
``figure3a_nfe_vs_error.png`` ... ``figure3d_nfe_vs_epoch.png``. ``--quick`` trains on 256
digits for 2 epochs (a smoke test of seconds; its numbers mean nothing); ``--skip-training``
rebuilds the table and figures from the checkpoints in the output folder. Figure 3 is measured
with dopri5, the training solver; the paper measured it with SciPy's implicit Adams solvers,
and ``--skip-training --no-memory --sweep-method scipy:LSODA --sweep-digits 8`` repeats panels
(a)-(c) with LSODA forward and backward (files named ``..._scipy-LSODA``).

As a notebook: ``jupytext --to notebook tutorials/mnist_odenet.py``, or open the .py directly
with the Jupytext extension of Jupyter or VS Code; set the config cell and run the cells in order.
"""
# %% [markdown]
# # An ODE-Net on MNIST
#
# Four models share one downsampling stem and one head:
#
# * **ODE-Net**: stem -> one ODE block (dopri5, rtol = atol = 1e-3, adjoint gradients) -> head.
# * **RK-Net**: the same model, but the gradient backpropagates through the solver's steps.
# * **ResNet**: stem -> 6 residual blocks h <- h + f(h), f like one evaluation of the ODE function.
# * **MLP**: one hidden layer of 300 ReLU units on the raw pixels (the paper's "1-Layer MLP").
#
# We train them, measure the peak memory of one training step, tabulate Table 1 next to the
# paper's, and look inside the trained ODE-Net's solver for Figure 3.

# %%
import argparse
import math
import time
import tracemalloc
from dataclasses import asdict, dataclass, fields, replace

import autograd
import numpy as np
from matplotlib.ticker import MaxNLocator

from minode import SolverStats, backend, cli, nn, ops, optim, plots, runs
from minode.cli import nonnegative_int, positive_float, positive_int
from minode.files import write_text_atomically
from minode.mnist import load_mnist
from minode.odenet import DTYPE, MODELS, ODE_MODELS, init_model, logits, ode_block, stem

# %% [markdown]
# ## Config
# In a notebook, set these and run the cells in order; as a script, the command line sets them.
#
# `FULL_CONFIG` is the full run, `QUICK_CONFIG` the smoke test; each command-line option
# overrides one field. `SOLVER` is how the ODE block is solved: `odeint`'s keyword arguments.

# %%
QUICK = False    # True: a smoke test of seconds; its numbers mean nothing
RESUME = False   # True: continue from the checkpoints in the results folder
MODEL = "odenet"  # the model the notebook trains: "odenet", "rknet", "resnet", "mlp" or "all"
NOTEBOOK = cli.notebook_cells_run(__name__)   # run each cell's step as the cell runs

TUTORIAL = "mnist_odenet"
# The ODE-Net's solver; the RK-Net's differs in grad="backprop" (`model_solver`), and --tol and
# --seminorm set rtol = atol and the adjoint's error norm.
SOLVER = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "grad": "adjoint"}
# Figure 3's solvers: minode's adaptive pairs, and SciPy's LSODA, whose non-stiff mode is the
# implicit Adams method the paper used (sec. 3), differentiable by `minode.scipy_adjoint`.
# LSODA allocates the work array of its stiff mode up front: n^2 floats forward (n = digits x
# C x 7 x 7) and a band of about 3 n (n + parameters) backward, so it takes a few digits only.
SWEEP_METHODS = ("dopri5", "tsit5", "bosh3", "scipy:LSODA")


@dataclass(frozen=True)
class Config:
    """The settings of one run: data, model size, training and the measurements."""

    train_digits: int | None = None   # the first so many training digits; None: all of them
    test_digits: int | None = None
    channels: int = 32          # feature maps C (the paper: 64)
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-2            # Adam's learning rate, divided by 10 for the last third
    augment: int = 2            # shift training images randomly by up to this many pixels
    tol: float = SOLVER["rtol"]  # rtol = atol of the ODE block
    seminorm: bool = False      # adjoint error control on z and a only (Kidger et al. 2021)
    memory_steps: tuple = (2, 8, 32)   # rk4 step counts of Table 1's memory column
    memory_batch: int = 16
    sweep_tolerances: tuple = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)   # Figure 3
    sweep_digits: int = 128
    sweep_method: str = SOLVER["method"]   # Figure 3's solver, forward and backward


FULL_CONFIG = Config()
QUICK_CONFIG = Config(train_digits=256, test_digits=200, epochs=2, batch_size=64,
                      memory_steps=(2, 4), memory_batch=4, sweep_tolerances=(1e-1, 1e-2),
                      sweep_digits=16)
# The fields of Config that shape training: a checkpoint written with others is not resumed.
TRAINING_FIELDS = ("train_digits", "test_digits", "channels", "epochs", "batch_size", "lr",
                   "augment", "tol", "seminorm")


def _steps_list(text):
    return tuple(positive_int(piece) for piece in text.split(","))


def build_parser():
    """The command-line options. Those of `Config`'s fields are absent from the parsed options
    when not given (``argparse.SUPPRESS``): `parse_args` then takes them from `FULL_CONFIG`, or
    `QUICK_CONFIG` with ``--quick``."""
    parser = cli.tutorial_parser(__doc__.split("\n")[0])
    unset = argparse.SUPPRESS  # the default of the options that override a Config field
    cli.add_run_options(parser, TUTORIAL, quick_help="256 digits, 2 epochs, a smoke test of "
                        "seconds")
    parser.add_argument("--model", choices=MODELS + ("all",), default="odenet",
                        help="the model to train (all: each in turn)")
    parser.add_argument("--channels", type=positive_int, default=unset,
                        help="feature maps C (default 32)")
    parser.add_argument("--epochs", type=positive_int, default=unset,
                        help="epochs of training (default 10; quick 2)")
    parser.add_argument("--batch-size", type=positive_int, default=unset,
                        help="training digits per batch (default 32; quick 64)")
    parser.add_argument("--lr", type=positive_float, default=unset,
                        help="Adam's learning rate, divided by 10 for the last third of "
                        "training (default 1e-2)")
    parser.add_argument("--augment", type=nonnegative_int, default=unset, metavar="PIXELS",
                        help="shift training images randomly by up to this many pixels "
                        "(default 2; 0: no augmentation)")
    parser.add_argument("--tol", type=positive_float, default=unset,
                        help="rtol = atol of the ODE block (default 1e-3)")
    parser.add_argument("--seminorm", action="store_true", default=unset,
                        help="adjoint error control on z and a only (default off)")
    parser.add_argument("--memory-steps", type=_steps_list, default=unset,
                        help="rk4 step counts for the memory column (default 2,8,32; quick 2,4)")
    parser.add_argument("--memory-batch", type=positive_int, default=unset,
                        help="batch size of the memory measurement (default 16; quick 4)")
    parser.add_argument("--sweep-method", choices=SWEEP_METHODS, default=unset,
                        help="Figure 3's solver, forward and backward (default dopri5; "
                        "scipy:LSODA takes --sweep-digits of at most about 8)")
    parser.add_argument("--sweep-digits", type=positive_int, default=unset,
                        help="test digits solved by Figure 3's sweep (default 128; quick 16)")
    parser.add_argument("--full", action="store_true", help="download the full 60k/10k MNIST")
    parser.add_argument("--skip-training", action="store_true",
                        help="load the checkpoints in --out; only measure, tabulate and plot")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-plots", action="store_true", help="skip the pictures")
    return parser


def parse_args(argv=None):
    """Command-line options; ``args.config`` is `FULL_CONFIG` or `QUICK_CONFIG` with the
    options applied."""
    args = cli.parse_tutorial_args(build_parser(), argv, TUTORIAL)
    overrides = {field.name: getattr(args, field.name) for field in fields(Config)
                 if getattr(args, field.name, None) is not None}
    args.config = replace(QUICK_CONFIG if args.quick else FULL_CONFIG, **overrides)
    return args


def chosen_models(args):
    """The models ``--model`` names, in `MODELS`' order."""
    return MODELS if args.model == "all" else (args.model,)


if NOTEBOOK:
    args = parse_args(cli.notebook_argv(QUICK, RESUME, "--model", MODEL))
    config = args.config
    runs.prepare_out_dir(args.out, args.quick)

# %% [markdown]
# ## Data
#
# MNIST images (N, 1, 28, 28) in [0, 1] and their digits; during training each image is shifted
# by up to `augment` pixels.

# %%


def load_data(config, full=False):
    """``(x_train, y_train, x_test, y_test)``, as many digits as ``config`` asks for."""
    x_train, y_train, x_test, y_test = load_mnist(full=full)
    x_train, y_train = x_train[:config.train_digits], y_train[:config.train_digits]
    x_test, y_test = x_test[:config.test_digits], y_test[:config.test_digits]
    return x_train.astype(DTYPE), y_train, x_test.astype(DTYPE), y_test


def shuffled_batches(x, y, batch_size, rng, max_shift=0):
    """The training set in random order, cut into batches (the last one may be smaller).

    With ``max_shift`` > 0 every image is moved by a random whole number of pixels in
    [-max_shift, max_shift] along each axis (zeros fill in): data augmentation.
    """
    order = rng.permutation(len(x))
    for start in range(0, len(x), batch_size):
        index = order[start:start + batch_size]
        images = random_shifts(x[index], max_shift, rng) if max_shift else x[index]
        yield backend.asarray(images), backend.asarray(y[index])


def random_shifts(images, max_shift, rng):
    """``images`` (N, 1, H, W), each translated by its own random offset."""
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    rows, cols = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    return np.stack([padded[i, :, rows[i]:rows[i] + h, cols[i]:cols[i] + w] for i in range(n)])


def plot_digits(x, y, out, count=12):
    """The first ``count`` images of ``x`` with their labels ``y``, as ``out/digits.png``."""
    fig, axes = plots.figure(1, count, figsize=(count * 0.8, 1.2))
    for ax, image, label in zip(axes, x, y):
        ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"label {label}", fontsize=8)
        ax.axis("off")
    return plots.save_png(fig, out / "digits.png")


if NOTEBOOK:
    data = load_data(config, full=args.full)
    print(f"{len(data[0]):,} training and {len(data[2]):,} test digits")
    plot_digits(data[0], data[1], args.out)


# %% [markdown]
# ## Model
#
# Parameters are dicts of arrays; `logits(model, params, images, solver)` is a plain function of
# them (`solver`: `odeint`'s keyword arguments, like `SOLVER`), so autograd differentiates the
# whole network, ODE solve included. The ODE function and the ResNet's residual branch are one
# block of `minode.nn` (GroupNorm, ReLU, 3x3 convolutions), with and without the time channel.

# %%


def model_solver(model, config):
    """The solver settings of ``model``: the RK-Net backpropagates, the ODE-Net uses the adjoint."""
    return {**SOLVER, "rtol": config.tol, "atol": config.tol,
            "grad": "backprop" if model == "rknet" else "adjoint", "seminorm": config.seminorm}


def count_model_params(model, channels):
    """The number of parameters of ``model`` with ``channels`` feature maps."""
    return nn.count_params(init_model(model, np.random.default_rng(0), channels))


if NOTEBOOK:
    for model in chosen_models(args):
        print(f"{model}: {count_model_params(model, config.channels):,} parameters")


# %% [markdown]
# ## Loss
#
# The mean cross-entropy of a batch; the test accuracy uses forward solves only.

# %%


def loss_fn(params, model, images, labels, solver, stats=None):
    """Mean cross-entropy of one batch."""
    return ops.cross_entropy(logits(model, params, images, solver, stats), labels)


loss_and_grad = autograd.value_and_grad(loss_fn)


def accuracy(model, params, x, y, solver, batch_size=500):
    """Fraction of ``x`` classified correctly."""
    correct = 0
    for start in range(0, len(x), batch_size):
        scores = logits(model, params, backend.asarray(x[start:start + batch_size]), solver)
        predicted = backend.to_numpy(scores).argmax(axis=1)
        correct += int((predicted == y[start:start + batch_size]).sum())
    return correct / len(x)


def untrained_loss(model, data, config, seed):
    """The loss of ``model`` as initialised for training, on the first batch of training digits."""
    params = init_model(model, np.random.default_rng(seed), config.channels)
    images, labels = (backend.asarray(part[:config.batch_size]) for part in data[:2])
    return float(loss_fn(params, model, images, labels, model_solver(model, config)))


if NOTEBOOK:
    for model in chosen_models(args):
        print(f"{model}, untrained: loss {untrained_loss(model, data, config, args.seed):.4f} "
              "(ln 10 = 2.3026: a uniform guess)")


# %% [markdown]
# ## Training loop
#
# Adam, the learning rate divided by 10 for the last third of the steps. The state is
# checkpointed after every epoch (`minode.runs`); the batches of epoch k are drawn from
# `default_rng([seed, k])`, so a resumed run repeats an uninterrupted one.

# %%


def steps_per_epoch(config, n_train):
    """Batches in one epoch over ``n_train`` digits."""
    return math.ceil(n_train / config.batch_size)


def make_optimizer(config, n_train):
    """Adam with ``config.lr``, divided by 10 after two thirds of all steps."""
    decay_at = max(1, math.ceil(2 / 3 * config.epochs * steps_per_epoch(config, n_train)))
    return optim.Adam(lr=optim.step_decay(config.lr, 0.1, every=decay_at))


def fresh_state(model, config, seed, optimizer):
    """The training state before the first epoch: step (epochs done) 0, no history yet."""
    params = init_model(model, np.random.default_rng(seed), config.channels)
    return {"step": 0, "params": params, "opt": optimizer.init(params), "log": {"history": []}}


def epoch_record(epoch, losses, nfe, seconds, cpu_seconds, test_accuracy):
    """What one epoch leaves in the history: means over its batches, timings, test accuracy."""
    return {"epoch": epoch + 1, "loss": float(np.mean(losses)), "test_accuracy": test_accuracy,
            "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
            "nfe_forward": float(np.mean([forward for forward, _ in nfe])),
            "nfe_backward": float(np.mean([backward for _, backward in nfe]))}


def print_epoch(model, record):
    """One line per epoch: loss, test accuracy, time and, for an ODE block, its evaluations
    (backward ones only for the adjoint: backprop solves no ODE backwards)."""
    nfe = f", NFE forward {record['nfe_forward']:.1f}" if model in ODE_MODELS else ""
    if model == "odenet":
        nfe += f" backward {record['nfe_backward']:.1f}"
    print(f"{model} epoch {record['epoch']}: loss {record['loss']:.4f}, test accuracy "
          f"{100 * record['test_accuracy']:.2f}%, {record['train_seconds']:.1f} s "
          f"({record['train_cpu_seconds']:.1f} s CPU){nfe}", flush=True)


def run_config(model, config, seed, full, quick):
    """What a checkpoint of ``model`` records and a resumed run must repeat."""
    return {"model": model, "seed": seed, "full": full, "quick": quick,
            **{name: getattr(config, name) for name in TRAINING_FIELDS}}


def train(model, data, config, checkpoint, seed, resume=False, quiet=False):
    """Train ``model`` for ``config.epochs`` epochs; returns the final training state.

    One checkpoint step is one epoch. The batches of an epoch update local copies of the
    parameters and the optimizer state, and the epoch's end commits them, so that Ctrl-C saves
    the state after the last completed epoch (`runs.Checkpoint.saved_on_interrupt`).
    """
    x_train, y_train, x_test, y_test = data
    optimizer = make_optimizer(config, len(x_train))
    solver, stats = model_solver(model, config), SolverStats()
    state = checkpoint.load_or(fresh_state(model, config, seed, optimizer), resume)
    if state["step"]:
        print(f"{model}: resumed from {checkpoint.path} after epoch {state['step']}")
    with checkpoint.saved_on_interrupt(lambda: state, total=config.epochs):
        for epoch in range(state["step"], config.epochs):
            batches = shuffled_batches(x_train, y_train, config.batch_size,
                                       np.random.default_rng([seed, epoch]), config.augment)
            bar = runs.progress(batches, total=steps_per_epoch(config, len(x_train)),
                                quiet=quiet, desc=f"{model} epoch {epoch + 1}/{config.epochs}")
            params, opt_state, losses, nfe = state["params"], state["opt"], [], []
            start, cpu_start = time.perf_counter(), time.process_time()
            for images, labels in bar:
                stats.reset()
                loss, grads = loss_and_grad(params, model, images, labels, solver, stats)
                params, opt_state = optimizer.update(params, grads, opt_state)
                losses.append(float(loss))
                nfe.append((stats.forward.nfe, stats.backward.nfe))
                bar.set_postfix(loss=f"{float(loss):.3f}",
                                nfe=f"{stats.forward.nfe}+{stats.backward.nfe}", refresh=False)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            record = epoch_record(epoch, losses, nfe, seconds, cpu_seconds,
                                  accuracy(model, params, x_test, y_test, solver))
            with runs.deferred_interrupt():
                state["params"], state["opt"] = params, opt_state
                state["log"]["history"].append(record)
                state["step"] = epoch + 1
                checkpoint.save(state)
            print_epoch(model, record)
    return state


def model_result(model, params, history, data, config):
    """The result file's contents: test error, size, timings and the per-epoch history."""
    seconds = [h["train_seconds"] for h in history]
    return {"model": model, "channels": config.channels, "params": nn.count_params(params),
            "epochs": len(history), "test_error": 1 - history[-1]["test_accuracy"],
            "seconds_per_epoch": float(np.mean(seconds)),
            "cpu_seconds_per_epoch": float(np.mean([h["train_cpu_seconds"] for h in history])),
            "train_seconds": float(sum(seconds)), "test_digits": len(data[2]),
            "train_digits": len(data[0]), "history": history}


def trained_model(model, data, config, checkpoint, out, seed, resume=False, skip_training=False,
                  quiet=False, options=None):
    """Train ``model`` (or, with ``skip_training``, load its ``checkpoint``) and write its result
    file to ``out`` with the command's ``options``; returns ``(params, result)``."""
    if not skip_training:
        state = train(model, data, config, checkpoint, seed, resume, quiet)
    elif not checkpoint.exists():
        raise SystemExit(f"--skip-training: no checkpoint {checkpoint.path}; train {model} first")
    else:
        optimizer = make_optimizer(config, len(data[0]))
        state = checkpoint.load_or(fresh_state(model, config, seed, optimizer), resume=True)
        saved = runs.read_result(out, model)
        if saved is not None:  # it keeps the command that trained the model
            return state["params"], saved
    result = model_result(model, state["params"], state["log"]["history"], data, config)
    runs.write_result(out, model, result, options=options)
    return state["params"], runs.read_result(out, model)


def train_models(models, data, config, out, seed, *, full=False, quick=False, resume=False,
                 skip_training=False, quiet=False, options=None):
    """`trained_model` for each of ``models``, each with its checkpoint in ``out``; returns
    ``({model: params}, {model: result})``. ``full`` and ``quick`` (the data and the run's
    kind) are recorded in the checkpoints."""
    trained, results = {}, {}
    for model in models:
        checkpoint = runs.Checkpoint(out / f"{model}_checkpoint.npz",
                                     config=run_config(model, config, seed, full, quick))
        trained[model], results[model] = trained_model(
            model, data, config, checkpoint, out, seed, resume, skip_training, quiet, options)
    return trained, results


def recorded_options(args):
    """The command's options as a result file records them (the config as a dict)."""
    return {**vars(args), "config": asdict(args.config)}


if NOTEBOOK:
    trained, results = train_models(
        chosen_models(args), data, config, args.out, args.seed, full=args.full, quick=args.quick,
        resume=args.resume, skip_training=args.skip_training, quiet=args.quiet,
        options=recorded_options(args))


# %% [markdown]
# ## Pictures: Figure 3
#
# What the adaptive solver does inside the trained ODE-Net: (a) function evaluations against the
# numerical error of h(1), (b) forward time against evaluations, (c) backward against forward
# evaluations (with the full error norm and with the seminorm), (d) evaluations over training.
# `--sweep-method scipy:LSODA` repeats (a)-(c) with the solver the paper measured them with;
# SciPy's adjoint has no seminorm, and its backward solve reads z off the forward solve's dense
# output instead of solving it backwards (`minode.scipy_adjoint`), so its backward error control
# covers a and a_theta.

# %%


def has_seminorm(method):
    """Whether ``method``'s adjoint can control its error on z and a only (minode's own can)."""
    return not method.startswith("scipy:")


def tolerance_sweep(params, images, labels, tolerances, method=SOLVER["method"]):
    """Forward/backward NFE, forward seconds and numerical error of the ODE block per tolerance,
    solved by ``method`` forward and backward; the error is against dopri5 at rtol = atol = 1e-7.
    The seminorm's backward NFE is None for a method without one (`has_seminorm`)."""
    h0 = stem(params["stem"], images)
    reference = backend.to_numpy(ode_block(params["ode"], h0, {**SOLVER, "rtol": 1e-7,
                                                                 "atol": 1e-7}))
    rows = []
    for tol in tolerances:
        solver = {**SOLVER, "method": method, "rtol": tol, "atol": tol}
        stats = SolverStats()
        start = time.perf_counter()
        h1 = backend.to_numpy(ode_block(params["ode"], h0, solver, stats))
        row = {"tol": tol, "forward_seconds": time.perf_counter() - start,
               "nfe_forward": stats.forward.nfe, "nfe_backward_seminorm": None,
               "error": float(np.sqrt(np.mean((h1 - reference) ** 2))
                              / np.sqrt(np.mean(reference ** 2)))}
        for seminorm in (False, True) if has_seminorm(method) else (False,):
            stats = SolverStats()
            loss_and_grad(params, "odenet", images, labels, {**solver, "seminorm": seminorm},
                          stats)
            row["nfe_backward_seminorm" if seminorm else "nfe_backward"] = stats.backward.nfe
        rows.append(row)
    return rows


def sweep_file(out, name, method, suffix):
    """``out / name + suffix``, with the method in the name unless it is the training solver's
    (the default sweep's files keep their names)."""
    tag = "" if method == SOLVER["method"] else "_" + method.replace(":", "-")
    return out / f"{name}{tag}{suffix}"


def plot_nfe_vs_error(sweep, method, out):
    """Figure 3a, each point labelled with its tolerance."""
    fig, ax = plots.figure(figsize=(4.5, 3.5))
    ax.semilogx([r["error"] for r in sweep], [r["nfe_forward"] for r in sweep], "o-")
    for r in sweep:
        ax.annotate(f"tol {r['tol']:g}", (r["error"], r["nfe_forward"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
    ax.set(title=f"(a) forward evaluations vs numerical error ({method})",
           xlabel="relative RMS error of h(1) (against dopri5 at rtol = atol = 1e-7)",
           ylabel="NFE forward")
    return plots.save_png(fig, sweep_file(out, "figure3a_nfe_vs_error", method, ".png"))


def plot_time_vs_nfe(sweep, digits, method, out):
    """Figure 3b; ``digits`` is the size of the batch solved."""
    fig, ax = plots.figure(figsize=(4.5, 3.5))
    ax.plot([r["nfe_forward"] for r in sweep], [r["forward_seconds"] for r in sweep], "o-")
    ax.set(title=f"(b) forward time vs evaluations ({method})", xlabel="NFE forward",
           ylabel=f"seconds (ODE block, batch of {digits})")
    return plots.save_png(fig, sweep_file(out, "figure3b_time_vs_nfe", method, ".png"))


def plot_backward_vs_forward_nfe(sweep, method, out):
    """Figure 3c, with the lines backward = forward and backward = forward / 2."""
    nfe = [r["nfe_forward"] for r in sweep]
    fig, ax = plots.figure(figsize=(4.5, 3.5))
    # Large open circles under small squares: both stay visible where the two norms agree.
    ax.plot(nfe, [r["nfe_backward"] for r in sweep], "o-", ms=9, mfc="none", lw=2.5,
            label="adjoint, full norm")
    if has_seminorm(method):
        ax.plot(nfe, [r["nfe_backward_seminorm"] for r in sweep], "s--", ms=4,
                label="adjoint, seminorm")
    grid = np.array([min(nfe), max(nfe)])
    ax.plot(grid, grid, "k:", lw=1, label="backward = forward")
    ax.plot(grid, grid / 2, "k--", lw=1, label="backward = forward / 2")
    ax.set(title=f"(c) backward vs forward evaluations ({method})", xlabel="NFE forward",
           ylabel="NFE backward")
    ax.legend(fontsize=7)
    return plots.save_png(fig, sweep_file(out, "figure3c_backward_vs_forward_nfe", method,
                                          ".png"))


def plot_nfe_vs_epoch(history, out):
    """Figure 3d."""
    fig, ax = plots.figure(figsize=(4.5, 3.5))
    epochs = [h["epoch"] for h in history]
    # Large open circles under small squares: both stay visible where they coincide.
    ax.plot(epochs, [h["nfe_forward"] for h in history], "o-", ms=9, mfc="none",
            label="forward")
    ax.plot(epochs, [h["nfe_backward"] for h in history], "s-", ms=4, label="backward (adjoint)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    ax.set(title="(d) evaluations over training", xlabel="epoch",
           ylabel="mean NFE per training batch")
    ax.legend(fontsize=7)
    return plots.save_png(fig, out / "figure3d_nfe_vs_epoch.png")


def figure3(params, history, data, config, out):
    """The tolerance sweep of the trained ODE-Net by ``config.sweep_method`` on the first
    ``config.sweep_digits`` test digits and Figure 3's four panels (a)-(d) as PNGs; returns
    ``(sweep, paths)``."""
    n, method = config.sweep_digits, config.sweep_method
    images, labels = backend.asarray(data[2][:n]), backend.asarray(data[3][:n])
    sweep = tolerance_sweep(params, images, labels, config.sweep_tolerances, method)
    paths = [plot_nfe_vs_error(sweep, method, out),
             plot_time_vs_nfe(sweep, len(images), method, out),
             plot_backward_vs_forward_nfe(sweep, method, out), plot_nfe_vs_epoch(history, out)]
    return sweep, paths


if NOTEBOOK:
    sweep, files = None, []
    if "odenet" in trained:
        sweep, files = figure3(trained["odenet"], results["odenet"]["history"], data, config,
                               args.out)


# %% [markdown]
# ## Numbers: Table 1 and the backward/forward NFE ratio
#
# Memory: the peak of one training step (forward + gradient), traced by tracemalloc (NumPy
# reports its array allocations to it). With a fixed-step rk4 we control the number of steps:
# the adjoint keeps only the block's input and output, backprop keeps every stage of every step.

# %%
PAPER_NAMES = {"mlp": "1-Layer MLP", "resnet": "ResNet", "rknet": "RK-Net", "odenet": "ODE-Net"}
PAPER_ROWS = {"mlp": ("1.60%", "0.24 M", "-", "-"), "resnet": ("0.41%", "0.60 M", "O(L)", "O(L)"),
              "rknet": ("0.47%", "0.22 M", "O(L~)", "O(L~)"),
              "odenet": ("0.42%", "0.22 M", "O(1)", "O(L~)")}


def training_step_memory(model, params, images, labels, solver):
    """Peak bytes allocated during one loss-and-gradient evaluation."""
    tracemalloc.start()
    try:
        loss_and_grad(params, model, images, labels, solver)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def memory_rows(model, params, data, config):
    """{n_steps: peak MB} for the ODE models at ``config.memory_steps``; one number for others."""
    images = backend.asarray(data[0][:config.memory_batch])
    labels = backend.asarray(data[1][:config.memory_batch])
    if model not in ODE_MODELS:
        return {"-": training_step_memory(model, params, images, labels, SOLVER) / 2**20}
    grad = "backprop" if model == "rknet" else "adjoint"
    return {steps: training_step_memory(model, params, images, labels,
                                        {**SOLVER, "method": "rk4", "step_size": 1 / steps,
                                         "grad": grad})
            / 2**20 for steps in config.memory_steps}


def measured_memory(trained, data, config, out, measure=True, options=None):
    """``{model: {n_steps: peak MB}}``: measured now (when ``measure``) for the models of this
    run (each written to ``out/<model>-memory_result.json`` with the command's ``options``),
    read back for models an earlier command measured with the same steps and batch."""
    setting = {"memory_steps": list(config.memory_steps), "memory_batch": config.memory_batch}
    memory = {}
    for model in MODELS:
        if model in trained and measure:
            memory[model] = memory_rows(model, trained[model], data, config)
            runs.write_result(out, f"{model}-memory",
                              {**setting, "peak_mb": {str(k): v for k, v in memory[model].items()}},
                              options=options)
            continue
        earlier = runs.read_result(out, f"{model}-memory")
        if earlier is not None and all(earlier[key] == value for key, value in setting.items()):
            memory[model] = earlier["peak_mb"]
    return memory


def _memory_text(memory):
    if len(memory) > 1:
        return " / ".join(f"{mb:.1f}" for mb in memory.values())
    return f"{next(iter(memory.values())):.1f} (no solver)" if memory else "not measured"


def table1(results, memory, config, memory_commands=None):
    """Table 1 as Markdown: ours next to the paper's numbers, and the commands that produced
    them (``memory_commands``: ``{model: command}`` of the memory measurements)."""
    steps_label = "/".join(str(s) for s in config.memory_steps)
    lines = [f"| Model | Test error | # Params | Peak memory of a training step, MB "
             f"(rk4, {steps_label} steps; batch {config.memory_batch}) | s / epoch, wall (CPU) | "
             "Epochs | Paper: error, params, memory, time |",
             "|---|---|---|---|---|---|---|"]
    for model, result in results.items():
        seconds = f"{result['seconds_per_epoch']:.0f} ({result['cpu_seconds_per_epoch']:.0f})"
        lines.append(f"| {PAPER_NAMES[model]} | {100 * result['test_error']:.2f}% | "
                     f"{result['params']:,} | {_memory_text(memory.get(model, {}))} | {seconds} "
                     f"| {result['epochs']} | {', '.join(PAPER_ROWS[model])} |")
    first = next(iter(results.values()))
    lines.append("")
    lines.append(f"Test error on {first['test_digits']:,} test digits after training on "
                 f"{first['train_digits']:,}; C = {first['channels']} channels; ODE solves: "
                 f"dopri5, rtol = atol = {config.tol:g}. Commands:")
    lines += [f"- {PAPER_NAMES[m]}: `{r['command']}`" for m, r in results.items()]
    lines += [f"- {PAPER_NAMES[m]}, peak memory: `{command}`"
              for m, command in (memory_commands or {}).items()
              if m in results and command != results[m]["command"]]
    return "\n".join(lines)


def _claim(ratio):
    """The verdict on "about half": a ratio of at most 0.75 is closer to one half than to one."""
    return "holds" if ratio <= 0.75 else "does not hold"


def describe_backward_ratio(sweep, history, config):
    """Does "backward NFE is about half the forward NFE" (the paper, sec. 3) hold here?"""
    seminorm = has_seminorm(config.sweep_method)
    lines = ["| tol | NFE forward | NFE backward | ratio |"
             + (" NFE backward, seminorm | ratio |" if seminorm else ""),
             "|---|---|---|---|" + ("---|---|" if seminorm else "")]
    for r in sweep:
        lines.append(f"| {r['tol']:g} | {r['nfe_forward']} | {r['nfe_backward']} | "
                     f"{r['nfe_backward'] / r['nfe_forward']:.2f} |"
                     + (f" {r['nfe_backward_seminorm']} | "
                        f"{r['nfe_backward_seminorm'] / r['nfe_forward']:.2f} |" if seminorm
                        else ""))
    full = np.mean([r["nfe_backward"] / r["nfe_forward"] for r in sweep])
    summary = (f"Solver {config.sweep_method} forward and backward, the first "
               f"{config.sweep_digits} test digits. Mean backward/forward NFE ratio over the "
               f"sweep: {full:.2f} with the full norm (the claim {_claim(full)})")
    if seminorm:
        semi = np.mean([r["nfe_backward_seminorm"] / r["nfe_forward"] for r in sweep])
        summary += f", {semi:.2f} with the seminorm (the claim {_claim(semi)})"
    lines += ["", summary + "; 'about half' means a ratio <= 0.75 here."]
    training = [h["nfe_backward"] / h["nfe_forward"] for h in history if h["nfe_forward"]]
    if training:
        lines.append(f"During training ({SOLVER['method']}, full norm, tol {config.tol:g}) the "
                     f"per-epoch mean ratio ran from "
                     f"{min(training):.2f} to {max(training):.2f}.")
    return "\n".join(lines)


def save_and_print(path, text, title):
    """Write ``text`` to ``path`` (atomically) and print it under ``title``; returns the path."""
    write_text_atomically(path, text + "\n")
    print(f"\n{title}\n\n{text}")
    return path


def tabulate(trained, results, sweep, data, config, out, measure_memory=True, options=None):
    """Measure the memory of the ``trained`` models, write and print Table 1 (with the rows of
    models trained by earlier commands in ``out``) and, after a ``sweep``, the backward/forward
    NFE ratio; returns ``(memory, results, paths)``, results including the earlier ones."""
    memory = measured_memory(trained, data, config, out, measure_memory, options)
    results = runs.collect_results(out, MODELS, results)
    memory_commands = {m: runs.read_result(out, f"{m}-memory")["command"] for m in memory}
    table = table1(results, memory, config, memory_commands)
    paths = [save_and_print(out / "table1.md", table, "Table 1 at our scale")]
    if sweep is not None:
        ratio = describe_backward_ratio(sweep, results["odenet"]["history"], config)
        paths.append(save_and_print(sweep_file(out, "figure3_nfe", config.sweep_method, ".md"),
                                    ratio, "Figure 3: backward vs forward NFE of the trained "
                                    f"ODE-Net ({config.sweep_method})"))
    return memory, results, paths


if NOTEBOOK:
    memory, results, tables = tabulate(trained, results, sweep, data, config, args.out,
                                       not args.no_memory, recorded_options(args))


# %% [markdown]
# ## Running it
#
# As a script, `main` runs the cells' steps in order: data, each model's training, Figure 3,
# Table 1 (with the rows of models trained by earlier commands in the output folder) and the
# NFE ratio.

# %%


def main(argv=None):
    """Train, plot, measure and tabulate; returns {"results", "memory", "sweep", "files"}."""
    args = parse_args(argv)
    config = args.config
    runs.prepare_out_dir(args.out, args.quick)
    data = load_data(config, full=args.full)
    files = [] if args.no_plots else [plot_digits(data[0], data[1], args.out)]
    options = recorded_options(args)
    trained, results = train_models(
        chosen_models(args), data, config, args.out, args.seed, full=args.full, quick=args.quick,
        resume=args.resume, skip_training=args.skip_training, quiet=args.quiet, options=options)
    sweep = None
    if "odenet" in trained and not args.no_plots:
        sweep, pictures = figure3(trained["odenet"], results["odenet"]["history"], data, config,
                                  args.out)
        files += pictures
    memory, results, tables = tabulate(trained, results, sweep, data, config, args.out,
                                       not args.no_memory, options)
    files += tables
    print("\nwrote " + ", ".join(str(f) for f in files))
    return {"results": results, "memory": memory, "sweep": sweep, "files": files}


if __name__ == "__main__" and not NOTEBOOK:
    runs.run_script(main)
