# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
# ---

# %% [markdown]
"""Tutorial 3: the latent ODE on irregularly sampled spirals, against an RNN (Chen et al. 2018,
sec. 5.1, Table 2, Fig. 8 and 9). Gradients come from the paper's adjoint (Algorithm 1); a
training step costs about 1.3x one by backprop through the solver here (``--grad backprop``;
0.32 s against 0.24 s of CPU time per step, measured over 100 steps), within the 2x for which
this tutorial keeps the adjoint.

Run ``python tutorials/latent_ode.py`` (Table 2 as the paper ran it: every model fits the
training spirals' observations only; 11.0 minutes of CPU time) and
``python tutorials/latent_ode.py --fit window`` (the same, fitting 25 future points of each
training spiral too; 14 minutes), and look at ``results/latent_ode/`` (relative to the
current directory): ``table2.md`` (Table 2 of each objective run so far, next to the paper's),
``reconstructions.png`` (Fig. 8), ``homotopy.png`` (Fig. 9), ``losses.png`` (``..._window.png``
for ``--fit window``). ``--quick`` is a smoke test of seconds whose numbers mean nothing,
written to ``results/quick/latent_ode/``; ``--resume`` continues from the checkpoints in
``--out`` (a run stopped by Ctrl-C keeps its last completed step); ``--data random-linear``
trains on the blog notebook's dataset instead (each spiral its own random linear ODE,
`make_spirals`).

As a notebook: ``jupytext --to notebook tutorials/latent_ode.py``, or open the .py file directly
with the Jupytext extension of Jupyter or VS Code; set ``QUICK`` and ``RESUME`` in the Config
cell and run the cells in order. Its results go to ``results/...`` relative to the notebook's
folder, i.e. ``tutorials/results/latent_ode/``.

The setup, with every choice that the paper leaves open:

* data (``--data paper``, `minode.spirals.make_archimedean_spirals`): 1000 windows of 200
  equally spaced points (time step 6 pi / 499, one radian per unit of time) of the Archimedean
  spiral r = 0.3 theta (counter-clockwise) or its mirror image (clockwise), half each, every
  window starting at its own angle; Gaussian noise of standard deviation 0.3 (the authors'
  example). The first 100 points of a window are its observation range, the last 100 its
  future. A held-out window lies whole on the spiral's three turns: its start is uniform on
  [100 * 6 pi / 499, 6 pi - 199 * 6 pi / 499] (radii 1.1 to 5.7). A training window starts
  anywhere its observation range fits on the three turns, up to 6 pi - 99 * 6 pi / 499, as the
  authors' example's windows start anywhere on the curve: so every point that a test future
  runs through, the outer turn included, lies in the observation range of some training
  spirals (when the training windows fitted whole too, the last 100 points of the curve lay in
  no training observation range, and a latent ODE fitted to observations only could not
  extrapolate there: test RMSE 1.5). The models read and predict coordinates divided by the
  RMS of the training observations.
* split: 800 spirals to train on, 100 to make choices on (validation), 100 held out for
  Table 2 (test); data seed ``[seed, 1]``.
* observations: every spiral, in training and in the tables alike, is observed at its OWN n
  random points of its observation range (without replacement, n in {30, 50, 100}), through
  `odeint` with one time grid per sample (a 2-D ``t``, `minode.time_grids`). One model is trained
  for all three n: each training batch draws its n.
* models, the paper's sizes: a GRU encoder of 25 units reads (x_i, t_{i+1} - t_i) backwards in
  time and gives q(z0) at the spiral's first observation time, latent dimension 4; dynamics
  4-20-4 and decoder 4-20-2, one hidden layer each (tanh). The RNN baseline
  (`minode.gru_forecast`) is a GRU of 25 units given the time gap to the next point,
  predicting that point; after the last observation it reads its own predictions.
* losses: the negative ELBO (eq. (11)-(13)) with the likelihood's standard deviation equal to
  the data noise (0.3) and KL weight 1, summed over a spiral's fitted points. Two RNNs, from the
  same initial parameters: "trained to forecast" reads the first half of a spiral's
  observations and predicts every later fitted point from its own predictions (a multi-step
  loss, as it must forecast at test time), with the one-step predictions of the half it reads;
  "teacher-forced" reads every fitted point and predicts the next. Both by the negative
  Gaussian log-likelihood with the same standard deviation. ``--fit observed`` (the default,
  the paper's objective) fits a training spiral's observations only; ``--fit window`` fits its
  observations and its future at 25 random points of it (the same for a batch).
* training: Adam, learning rate 0.01 halved every 800 steps, 2400 steps of batches of 100
  spirals, the same batches for all three models (``--fit window``: halved every 700 steps,
  2000 steps, as its numbers were run; its steps cost more). The step count and the schedule
  were chosen on the validation spirals (latent ODE's best validation RMSE, mean over n:
  0.264 against 0.287 for 2000 steps halved every 700, and 0.273, 0.275, 0.276 for 2400
  steps halved every 700, 500, 600), within the 15 minutes of CPU time. Every 100 steps each
  model forecasts the validation spirals; the parameters of its lowest validation RMSE (mean
  over n) are kept.
* Table 2: RMSE against the noise-free and against the noisy future (100 points) of the 100
  test spirals, the latent ODE decoding the solution from the posterior mean of z0; with
  "predict zero", "predict the last observation" and "linear extrapolation" (a least-squares
  line through the last k observations, k in {2, 5, 10, 20} chosen on validation) baselines,
  and each RMSE relative to the RMS of the targets.
* solver: dopri5, rtol = 1e-5, atol = 1e-6 (``--method``, ``--rtol``, ``--atol``, ``--grad``),
  in training and evaluation alike.
"""
# %% [markdown]
# # The latent ODE (Chen et al. 2018, sec. 5.1)
#
# A time series is observed at a few irregular times. The latent ODE is a variational
# autoencoder (the paper's eq. (11)-(13)) that explains it by one latent initial state z0:
#
#     mu, log sigma^2 = RNN encoder run backwards over (x_i, t_{i+1} - t_i)   q(z0 | x)
#     z0 = mu + sigma * eps,  eps ~ N(0, I)                                    (reparameterised)
#     z(t_1), ..., z(t_n) = ODESolve(z0, f_theta, t_1, ..., t_n)               (eq. (12))
#     x_i ~ N(decoder(z(t_i)), s^2 I)                                          (eq. (13))
#
# trained by the evidence lower bound
#
#     ELBO = E_q[ sum_i log N(x_i; decoder(z(t_i)), s^2) ] - KL( q(z0 | x) || N(0, I) ).
#
# Once trained it predicts the future of a series by solving the ODE past its last observation.
# Every spiral has its own observation times, so the batch is solved with a 2-D `t`. As in the
# paper's Appendix the sum over i runs over the observed points; `--fit window` adds 25 points
# of each training spiral's future.

# %%
import time
from dataclasses import asdict, dataclass, replace

import autograd
import numpy as np

from minode import backend, cli, gru_forecast, nn, odeint, ops, optim, plots, runs
from minode import spirals as spiral_data
from minode.files import write_text_atomically

# %% [markdown]
# ## Config
# In a notebook, set these and run the cells in order; as a script, the command line sets them.

# %%
QUICK = False    # True: a smoke test of seconds; its numbers mean nothing
RESUME = False   # True: continue from the checkpoints in the results folder
NOTEBOOK = cli.notebook_cells_run(__name__)   # run each cell's step as the cell runs

LATENT_DIM = 4
ENCODER_UNITS = 25
DYNAMICS_UNITS = 20
DECODER_UNITS = 20
RNN_UNITS = 25
OBSERVED_RANGE = 100         # grid points in which a spiral's observations fall
FUTURE_RANGE = 100           # grid points after them to predict
N_OBSERVED = (30, 50, 100)   # how many of the OBSERVED_RANGE points a spiral shows
SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-6, "grad": "adjoint"}
PAPER_TABLE_2 = {"rnn": (0.3937, 0.3202, 0.1813), "latent_ode": (0.1642, 0.1502, 0.1346)}


@dataclass(frozen=True)
class Config:
    """One run: the data, the split, the training."""

    data: str = "paper"          # "paper" or "random-linear"
    n_spirals: int = 1000
    n_validation: int = 100
    n_test: int = 100
    iters: int = 2400
    batch_size: int = 100
    lr: float = 0.01
    halve_lr_every: int = 800
    fit_future: bool = False     # also fit the future of the training spirals,
    future_points: int = 25      # at this many random points of it per batch
    read_fraction: float = 0.5   # the forecast RNN reads this part of the observations
    validate_every: int = 100    # steps between validation RMSEs (the best params are kept)
    train_on_curve: int = 100    # a training window's first points that lie on the curve
    checkpoint_every: int = 50


QUICK_CONFIG = Config(n_spirals=140, n_validation=20, n_test=20, iters=30, batch_size=16,
                      lr=0.05, halve_lr_every=1000, validate_every=15, checkpoint_every=10)
WINDOW_TRAINING = {"iters": 2000, "halve_lr_every": 700}   # --fit window: what its run used
OBJECTIVES = {"observed": "the observations only (the paper's ELBO)",
              "window": "the observations and 25 points of the future"}


@dataclass(frozen=True)
class DataSpec:
    """How one dataset is made, and the likelihood's standard deviation s for it."""

    noise_std: float
    likelihood_std: float


DATA = {
    "paper": DataSpec(noise_std=0.3, likelihood_std=0.3),
    # the blog notebook's data; s > noise keeps its loss of order 1-100 (a modelling choice)
    "random-linear": DataSpec(noise_std=0.02, likelihood_std=0.1),
}


def build_parser():
    """The command-line options (`main`'s, and the notebook's through its Config cell)."""
    parser = cli.tutorial_parser(__doc__.split("\n")[0])
    cli.add_run_options(parser, "latent_ode",
                        quick_help=f"a smoke test of seconds ({QUICK_CONFIG.n_spirals} spirals, "
                        f"{QUICK_CONFIG.iters} steps)")
    parser.add_argument("--data", choices=list(DATA), default="paper",
                        help="the paper's Archimedean spirals, or the blog notebook's spirals "
                        "of random linear ODEs")
    parser.add_argument("--iters", type=cli.positive_int, default=None,
                        help=f"Adam steps per model (default {Config.iters}, with --fit window "
                        f"{WINDOW_TRAINING['iters']}, with --quick {QUICK_CONFIG.iters})")
    parser.add_argument("--batch-size", type=cli.positive_int, default=None,
                        help=f"spirals per batch (default {Config.batch_size}, with --quick "
                        f"{QUICK_CONFIG.batch_size})")
    parser.add_argument("--fit", choices=list(OBJECTIVES), default="observed",
                        help="fit the training spirals' observations only (the paper's "
                        "objective) or their observations and future (window)")
    parser.add_argument("--no-plots", action="store_true", help="write no pictures")
    cli.add_solver_options(parser, **SOLVER)
    return parser


def parse_args(argv=None):
    """The options of ``argv`` (default: the command line's), ``out`` filled in."""
    return cli.parse_tutorial_args(build_parser(), argv, "latent_ode")


def make_config(args):
    """The `Config` of this run from the command line."""
    config = replace(QUICK_CONFIG if args.quick else Config(), data=args.data,
                     fit_future=args.fit == "window")
    if config.fit_future and not args.quick:
        config = replace(config, **WINDOW_TRAINING)
    if args.iters:
        config = replace(config, iters=args.iters)
    if args.batch_size:
        config = replace(config, batch_size=args.batch_size)
    return config


def start(argv=None):
    """``(args, config, solver)`` of a run: says where its results go and makes that folder."""
    args = parse_args(argv)
    solver = cli.solver_settings(build_parser(), args)
    runs.prepare_out_dir(args.out, args.quick)
    return args, make_config(args), solver


if NOTEBOOK:
    args, config, solver = start(cli.notebook_argv(QUICK, RESUME))

# %% [markdown]
# ## Data
#
# 1000 spirals of 200 points; each spiral is seen at its own random subset of its first 100
# points. A `Batch` holds, row by row, each spiral's own observation times and values and the
# future to predict.

# %%


def make_spirals(config, seed):
    """The dataset ``config.data``: ``config.n_spirals`` spirals of 200 points, the training
    spirals first, then the validation and the test spirals.

    With the paper's data a training window starts anywhere on the curve where its observation
    range (first 100 points) fits, as the authors' example's windows do; a held-out window fits
    whole (observation range and future), so every point a test future runs through lies in
    the observation range of some training windows."""
    rng = np.random.default_rng([seed, 1])
    spec = DATA[config.data]
    n_points = OBSERVED_RANGE + FUTURE_RANGE
    if config.data == "random-linear":
        return spiral_data.make_spirals(rng, config.n_spirals, n_points, t_max=6.29 * 2,
                                        noise_std=spec.noise_std)
    n_held_out = config.n_validation + config.n_test
    if config.n_spirals <= n_held_out:
        raise ValueError(f"n_spirals={config.n_spirals} leaves no training spirals after "
                         f"n_validation + n_test = {n_held_out}: make n_spirals larger")
    return spiral_data.concatenate_spirals([
        spiral_data.make_archimedean_spirals(rng, config.n_spirals - n_held_out, n_points,
                                             noise_std=spec.noise_std,
                                             on_curve_points=config.train_on_curve),
        spiral_data.make_archimedean_spirals(rng, n_held_out, n_points,
                                             noise_std=spec.noise_std)])


def split_spirals(config):
    """Indices of the training, validation and test spirals, in the order `make_spirals`
    lays them out (the spirals themselves are drawn at random)."""
    n_train = config.n_spirals - config.n_validation - config.n_test
    return (np.arange(n_train), np.arange(n_train, n_train + config.n_validation),
            np.arange(n_train + config.n_validation, config.n_spirals))


@dataclass(frozen=True)
class Data:
    """The spirals in units of ``scale``, the RMS of the training observations (the models
    read and predict coordinates of order 1), and the split into training, validation and test
    spirals (arrays of indices)."""

    spirals: object
    scale: float
    train_ids: np.ndarray
    validation_ids: np.ndarray
    test_ids: np.ndarray


def make_data(config, seed):
    """The dataset, scaled, and its split."""
    spirals = make_spirals(config, seed)
    train_ids, validation_ids, test_ids = split_spirals(config)
    scale = float(np.sqrt(np.mean(spirals.observations[train_ids] ** 2)))
    scaled = replace(spirals, observations=spirals.observations / scale,
                     trajectories=spirals.trajectories / scale)
    return Data(scaled, scale, train_ids, validation_ids, test_ids)


@dataclass(frozen=True)
class Batch:
    """Spirals seen at their own times: row b is one spiral, times from its window's start.

    ``t_observed`` (B, n), ``x_observed`` (B, n, 2): the irregular observations the models read.
    ``t_future`` (B, m), ``x_future`` (B, m, 2): the grid points after the observation range,
    noisy; ``clean_future`` (B, m, 2) the same without noise (what Table 2 scores against).
    """

    t_observed: np.ndarray
    x_observed: np.ndarray
    t_future: np.ndarray
    x_future: np.ndarray
    clean_future: np.ndarray


def random_subsets(rng, n_rows, n):
    """(n_rows, n) sorted indices: each row its own n of range(OBSERVED_RANGE), no repeats."""
    scores = rng.random((n_rows, OBSERVED_RANGE))
    return np.sort(np.argsort(scores, axis=1)[:, :n], axis=1)


FUTURE = np.arange(OBSERVED_RANGE, OBSERVED_RANGE + FUTURE_RANGE)   # grid points to predict


def make_batch(spirals, ids, observed_idx, future_idx=FUTURE):
    """The `Batch` of spirals ``ids``, row b observed at the grid points ``observed_idx[b]``,
    with the future at the grid points ``future_idx`` (the same for every row)."""
    rows = np.asarray(ids)[:, None]
    return Batch(t_observed=spirals.times[observed_idx],
                 x_observed=spirals.observations[rows, observed_idx],
                 t_future=np.broadcast_to(spirals.times[future_idx], (len(ids), len(future_idx))),
                 x_future=spirals.observations[ids][:, future_idx],
                 clean_future=spirals.trajectories[ids][:, future_idx])


def training_batch(data, config, rng):
    """``config.batch_size`` random training spirals, all showing the same random number n of
    points (30, 50 or 100), each spiral its own n; their future at ``config.future_points``
    random grid points of the 100 (the same for the batch)."""
    ids = rng.choice(data.train_ids, size=min(config.batch_size, len(data.train_ids)),
                     replace=False)
    n = int(rng.choice(N_OBSERVED))
    observed = random_subsets(rng, len(ids), n)
    future = np.sort(rng.choice(FUTURE, size=config.future_points, replace=False))
    return make_batch(data.spirals, ids, observed, future)


def evaluation_batch(spirals, ids, n, seed):
    """Held-out spirals ``ids``, each at its own n random points (fixed by ``seed`` and n)."""
    rng = np.random.default_rng([seed, 3, n])
    return make_batch(spirals, ids, random_subsets(rng, len(ids), n))


def describe_data(data):
    """A line on the dataset: sizes, split and scale."""
    spirals = data.spirals
    return (f"{len(spirals.observations)} spirals of {spirals.times.size} points "
            f"(t from 0 to {spirals.times[-1]:.2f}), {spirals.clockwise.sum()} of them "
            f"clockwise; {len(data.train_ids)} to train on, {len(data.validation_ids)} "
            f"validation, {len(data.test_ids)} test; coordinates divided by {data.scale:.3f}")


if NOTEBOOK:
    data = make_data(config, args.seed)
    print(describe_data(data))

# %% [markdown]
# ## Model
#
# The latent ODE: a GRU encoder for q(z0), an MLP for the latent dynamics, an MLP decoder.
# The baseline: a GRU that reads each point with the gap to the next one (`minode.gru_forecast`),
# and the baselines that need no training. Each predictor maps (params, t_observed, x_observed,
# t_future) to the forecast, so that one `rmse` scores them all.

# %%


def init_latent_ode(rng, latent_dim=LATENT_DIM, encoder_units=ENCODER_UNITS,
                    dynamics_units=DYNAMICS_UNITS, decoder_units=DECODER_UNITS):
    """Encoder (GRU + linear read-out to mean and log-variance), dynamics and decoder.

    The functions below read every size from these arrays, so the tests can use tiny ones.
    """
    return {"encoder_gru": nn.init_gru_cell(rng, 3, encoder_units),
            "encoder_out": nn.init_linear(rng, encoder_units, 2 * latent_dim),
            "dynamics": nn.init_mlp(rng, [latent_dim, dynamics_units, latent_dim]),
            "decoder": nn.init_mlp(rng, [latent_dim, decoder_units, 2])}


def gaps_to_next(times):
    """(B, T, 1): t_{i+1} - t_i of each row, 0 after its last time."""
    gaps = np.diff(times, axis=1, append=times[:, -1:])
    return gaps[..., None]


def encoder_inputs(t_observed, x_observed):
    """(n, B, 3) GRU inputs in REVERSED time: row k is (x_i, t_{i+1} - t_i) for i = n-1-k.

    Reading backwards, the GRU's final state summarises the series as seen from its first
    observation, which is where z0 lives.
    """
    inputs = np.concatenate([x_observed, gaps_to_next(t_observed)], axis=-1)   # (B, n, 3)
    return backend.asarray(np.ascontiguousarray(inputs.transpose(1, 0, 2)[::-1]))


def encode(params, t_observed, x_observed):
    """q(z0 | x) at each spiral's first observation: mean and log-variance, each (B, latent)."""
    units = params["encoder_gru"]["w_hh"].shape[1]
    latent_dim = params["encoder_out"]["w"].shape[0] // 2
    h0 = backend.xp.zeros((x_observed.shape[0], units))
    out = nn.linear(params["encoder_out"],
                    nn.gru(params["encoder_gru"], encoder_inputs(t_observed, x_observed), h0))
    return (ops.getitem(out, (slice(None), slice(0, latent_dim))),
            ops.getitem(out, (slice(None), slice(latent_dim, 2 * latent_dim))))


def latent_dynamics(z, t, params):
    """dz/dt = f_theta(z): autonomous, one hidden layer (tanh)."""
    return nn.mlp(params, z, activation=ops.tanh)


def decode(params, z):
    """The mean of p(x | z) for latent states z (..., latent) -> (..., 2)."""
    return nn.mlp(params, z, activation=ops.tanh)


def solve_latent(params, z0, times, solver):
    """z at each spiral's own ``times`` (B, T), from z0 (B, latent) at ``times[:, 0]``:
    one batched solve with a 2-D t; returns (T, B, latent)."""
    return odeint(latent_dynamics, z0, backend.asarray(times), params["dynamics"], **solver)


def reparameterise(mean, log_var, eps):
    """z0 = mean + sigma * eps, differentiable in mean and log-variance (Kingma & Welling)."""
    return ops.add(mean, ops.multiply(ops.exp(ops.multiply(0.5, log_var)), eps))


def latent_ode_predict(params, t_observed, x_observed, times, solver):
    """Decoded trajectory (B, len, 2) at each row's ``times`` (B, len), all after its first
    observation, from the posterior mean of z0 (no sampling)."""
    mean, _ = encode(params, t_observed, x_observed)
    grid = np.concatenate([t_observed[:, :1], times], axis=1)
    decoded = decode(params["decoder"], solve_latent(params, mean, grid, solver))
    return np.swapaxes(backend.to_numpy(decoded), 0, 1)[:, 1:]


RNNS = ("rnn_forecast", "rnn_teacher")   # the same GRU, trained to forecast / teacher-forced


def rnn_predict(params, t_observed, x_observed, times):
    """The GRU baseline (`minode.gru_forecast`): read the observations, then run free, each
    prediction the next step's input; (B, m, 2) at each row's later ``times`` (B, m)."""
    return gru_forecast.predict(params, t_observed, x_observed, times)


def init_models(seed):
    """``{"latent_ode": params, "rnn_forecast": params, "rnn_teacher": params}``, freshly
    initialised from ``seed``; both RNNs start from the same parameters."""
    rng = np.random.default_rng([seed, 4])
    latent_ode = init_latent_ode(rng)
    rnn = gru_forecast.init(rng, units=RNN_UNITS)
    return {"latent_ode": latent_ode, **{name: rnn for name in RNNS}}


LINEAR_POINTS = (2, 5, 10, 20)   # candidates for the linear baseline, chosen on validation


def linear_extrapolation(n_last, t_observed, x_observed, times):
    """The least-squares straight line in t through each row's last ``n_last`` observations,
    at each row's ``times`` (B, m); returns (B, m, 2): the "linear extrapolation" baseline
    (``n_last`` in the place of a model's params, see `predictors`)."""
    t, x = t_observed[:, -n_last:], x_observed[:, -n_last:]
    t_mean, x_mean = t.mean(axis=1, keepdims=True), x.mean(axis=1, keepdims=True)
    centred = (t - t_mean)[..., None]
    slope = np.sum(centred * (x - x_mean), axis=1, keepdims=True) / np.sum(centred ** 2, axis=1,
                                                                          keepdims=True)
    return x_mean + slope * (times - t_mean)[..., None]


def predictors(solver):
    """``{name: predict(params, t_observed, x_observed, t_future) -> (B, m, 2)}``; the
    baselines' params are None, except the linear one's: its number of last observations."""
    return {
        "latent_ode": lambda p, t, x, future: latent_ode_predict(p, t, x, future, solver),
        **{name: rnn_predict for name in RNNS},
        "zero": lambda p, t, x, future: np.zeros(future.shape + (2,)),
        "last_observation": lambda p, t, x, future: np.repeat(x[:, -1:], future.shape[1], axis=1),
        "linear": linear_extrapolation,
    }


def rmse(predict, params, data, ids, seed, n, noisy=False):
    """RMSE of ``predict`` on the future of spirals ``ids`` observed at n points, in the data's
    own units, against the noise-free future (or the noisy one)."""
    batch = evaluation_batch(data.spirals, ids, n, seed)
    target = batch.x_future if noisy else batch.clean_future
    error = predict(params, batch.t_observed, batch.x_observed, batch.t_future) - target
    return float(data.scale * np.sqrt(np.mean(error ** 2)))


def mean_rmse(predict, params, data, ids, seed):
    """The mean over n = 30, 50, 100 of `rmse` against the noise-free future: the score each
    choice made on the validation spirals minimises."""
    return float(np.mean([rmse(predict, params, data, ids, seed, n) for n in N_OBSERVED]))


if NOTEBOOK:
    models = init_models(args.seed)
    print({name: f"{nn.count_params(params)} parameters" for name, params in models.items()})

# %% [markdown]
# ## Loss
#
# The negative ELBO of the latent ODE and the RNNs' negative log-likelihoods (teacher-forced, or
# reading part of the observations and forecasting the rest), per spiral.

# %%


def fitted_part(batch, fit_future):
    """Times (B, T) and targets (B, T, 2) that a loss fits: the observations, and with
    ``fit_future`` the future after them."""
    if not fit_future:
        return batch.t_observed, batch.x_observed
    return (np.concatenate([batch.t_observed, batch.t_future], axis=1),
            np.concatenate([batch.x_observed, batch.x_future], axis=1))


def elbo_terms(params, batch, eps, likelihood_std, solver, fit_future=False):
    """``(nll, kl)`` of the negative ELBO, each averaged over the spirals of the batch.

    nll = -sum_i log N(x_i; decoder(z(t_i)), s^2) over each spiral's fitted points;
    kl = KL(q(z0 | observations) || N(0, I)). ``eps`` is the (B, latent) noise.
    """
    mean, log_var = encode(params, batch.t_observed, batch.x_observed)
    times, targets = fitted_part(batch, fit_future)
    zs = solve_latent(params, reparameterise(mean, log_var, eps), times, solver)
    nll = gru_forecast.negative_log_likelihood(targets, decode(params["decoder"], zs),
                                               likelihood_std)
    return nll, ops.mean(ops.kl_diag_gaussian_to_standard(mean, log_var))


def latent_ode_loss(params, batch, eps, likelihood_std, solver, fit_future=False):
    """The negative ELBO per spiral: the latent ODE's training loss."""
    nll, kl = elbo_terms(params, batch, eps, likelihood_std, solver, fit_future)
    return ops.add(nll, kl)


def rnn_loss(params, batch, likelihood_std, fit_future=False, read_fraction=None):
    """-sum log N(x_{i+1}; prediction, s^2) over each spiral's fitted points after its first,
    per spiral. With ``read_fraction`` None, teacher forcing: the GRU reads every fitted point
    with the gap to the next and predicts the next. Otherwise it reads that fraction of the
    observations (at least one) and forecasts the other fitted points from its own
    predictions, as it must past the last observation (a multi-step loss)."""
    times, xs = fitted_part(batch, fit_future)
    n_read = times.shape[1] if read_fraction is None else max(
        1, int(round(read_fraction * batch.t_observed.shape[1])))
    return gru_forecast.rollout_nll(params, times, xs, n_read, likelihood_std)


def probe_losses(models, data, config, seed, solver):
    """Each model's loss per point on one fixed batch of validation spirals (posterior mean
    for z0): a like-for-like check that training helped."""
    likelihood_std = DATA[config.data].likelihood_std / data.scale
    ids, n = data.validation_ids, N_OBSERVED[1]
    batch = evaluation_batch(data.spirals, ids, n, seed)
    zeros = backend.xp.zeros((len(ids), LATENT_DIM))
    losses = {name: float(rnn_loss(models[name], batch, likelihood_std)) / n for name in RNNS}
    return {"latent_ode": float(latent_ode_loss(models["latent_ode"], batch, zeros,
                                                likelihood_std, solver)) / n, **losses}


if NOTEBOOK:
    before = probe_losses(models, data, config, args.seed, solver)
    print("loss per point of the untrained models on validation spirals:", before)

# %% [markdown]
# ## Training loop
#
# The three models see the same batches: step k's batch and noise come from
# `default_rng([seed, k])`, so a run resumed from a checkpoint (`minode.runs`) repeats an
# uninterrupted one exactly. Every `validate_every` steps each model forecasts the validation
# spirals; the parameters of its lowest validation RMSE are the ones kept, so the training
# length is chosen on validation spirals.

# %%


def make_loss_functions(config, scale, solver):
    """``{name: loss(params, batch, rng)}`` for the latent ODE and the two RNNs, on data in
    units of ``scale``."""
    likelihood_std = DATA[config.data].likelihood_std / scale

    def latent_loss(params, batch, rng):
        eps = backend.asarray(rng.standard_normal((batch.x_observed.shape[0], LATENT_DIM)))
        return latent_ode_loss(params, batch, eps, likelihood_std, solver, config.fit_future)

    def forecast_loss(params, batch, rng):
        return rnn_loss(params, batch, likelihood_std, config.fit_future, config.read_fraction)

    def teacher_forced_loss(params, batch, rng):
        return rnn_loss(params, batch, likelihood_std, config.fit_future)
    return {"latent_ode": latent_loss, "rnn_forecast": forecast_loss,
            "rnn_teacher": teacher_forced_loss}


def fresh_state(params, optimizer):
    """The training state before the first step: ``best_params`` are those of the lowest
    validation RMSE so far, ``log["validation"]`` the [step, RMSE] pairs."""
    return {"step": 0, "params": params, "best_params": params, "opt": optimizer.init(params),
            "log": {"losses": [], "seconds": 0.0, "validation": []}}


def validate(state, validation_rmse, config):
    """Score ``state["params"]`` on the validation spirals after every ``validate_every``
    steps and at the last one; keep them as ``best_params`` when they beat every earlier
    score."""
    step = state["step"]
    if step % config.validate_every and step != config.iters:
        return
    rmse = validation_rmse(state["params"])
    scores = [score for _, score in state["log"]["validation"]]
    if not scores or rmse < min(scores):
        state["best_params"] = state["params"]
    state["log"]["validation"].append([step, rmse])


def run_config(name, config, seed, solver):
    """What shapes model ``name``'s training, saved with its checkpoint so that a resume with
    other options is refused. The step count and the checkpoint interval are left out: step k
    is the same in a longer run, so a finished run may be resumed with more ``--iters``."""
    shaped = {"seed": seed, **asdict(config)}
    del shaped["iters"], shaped["checkpoint_every"]
    return {**shaped, "solver": solver} if name == "latent_ode" else shaped


def train(name, loss_fn, params, data, config, seed, checkpoint, validation_rmse, resume=False,
          quiet=False):
    """Adam on ``loss_fn(params, batch, rng)`` for ``config.iters`` steps, from the state in
    `runs.Checkpoint` ``checkpoint`` when ``resume``, scored by ``validation_rmse(params)``
    (see `validate`); returns the state. Ctrl-C leaves the state of the last completed step in
    ``checkpoint``."""
    optimizer = optim.Adam(lr=optim.step_decay(config.lr, 0.5, config.halve_lr_every))
    state = checkpoint.load_or(fresh_state(params, optimizer), resume)
    loss_and_grad = autograd.value_and_grad(loss_fn)
    with checkpoint.saved_on_interrupt(lambda: state, total=config.iters):
        progress = runs.progress(range(state["step"], config.iters), quiet=quiet,
                                 initial=state["step"], total=config.iters, desc=f"{name:>10}")
        for step in progress:
            started = time.perf_counter()
            rng = np.random.default_rng([seed, step])
            batch = training_batch(data, config, rng)
            loss, grads = loss_and_grad(state["params"], batch, rng)
            points = fitted_part(batch, config.fit_future)[0].shape[1]
            with runs.deferred_interrupt():
                state["params"], state["opt"] = optimizer.update(state["params"], grads,
                                                                 state["opt"])
                state["log"]["losses"].append(float(loss) / points)
                state["log"]["seconds"] += time.perf_counter() - started
                state["step"] = step + 1
                validate(state, validation_rmse, config)
                checkpoint.save_if_due(state, config.iters)
            progress.set_postfix(loss_per_point=f"{state['log']['losses'][-1]:.4g}",
                                 refresh=False)
    return state


def objective_suffix(config):
    """What the names of a run's files add for its objective: nothing for the paper's
    (observations only), ``_window`` for the observations and the future."""
    return "_window" if config.fit_future else ""


def train_models(models, data, config, solver, seed, out, resume=False, quiet=False):
    """Train the models on the same batches, each with its checkpoint in the folder ``out``;
    returns ``{name: state}``."""
    losses = make_loss_functions(config, data.scale, solver)
    predict = predictors(solver)
    states = {}
    for name, params in models.items():
        def validation_rmse(params, name=name):
            return mean_rmse(predict[name], params, data, data.validation_ids, seed)
        path = out / f"{name}{objective_suffix(config)}_checkpoint.npz"
        states[name] = train(name, losses[name], params, data, config, seed,
                             runs.Checkpoint(path, config.checkpoint_every,
                                             config=run_config(name, config, seed, solver)),
                             validation_rmse, resume, quiet)
    return states


def final_params(states):
    """``{name: params}`` of the trained models: those of each one's best validation RMSE."""
    return {name: state["best_params"] for name, state in states.items()}


if NOTEBOOK:
    states = train_models(models, data, config, solver, args.seed, args.out, args.resume,
                          args.quiet)
    print("loss per point of the trained models on validation spirals:",
          probe_losses(final_params(states), data, config, args.seed, solver))

# %% [markdown]
# ## Pictures
#
# Fig. 8: held-out spirals, their observations, the latent ODE's reconstruction and
# extrapolation, the RNN's extrapolation. Fig. 9: the latent ODE decoded along a straight line
# in z0 from a clockwise spiral's posterior mean to a counter-clockwise one's.

# %%


def plot_reconstructions(models, data, out, n_observed, seed, solver, suffix=""):
    """3x3 test spirals (Fig. 8), in the data's own units, with the forecast-trained RNN."""
    spirals, ids = data.spirals, data.test_ids[:9]
    batch = evaluation_batch(spirals, ids, n_observed, seed)
    split, end = spirals.times[OBSERVED_RANGE - 1], spirals.times[-1]
    # each spiral's fine grid runs from its own first observation to the end of the window
    fine = np.stack([np.linspace(first, end, 300)[1:] for first in batch.t_observed[:, 0]])
    paths = latent_ode_predict(models["latent_ode"], batch.t_observed, batch.x_observed, fine,
                               solver)
    rnn = rnn_predict(models["rnn_forecast"], batch.t_observed, batch.x_observed,
                      batch.t_future)
    fig, axes = plots.figure(3, 3, figsize=(11, 11.8), layout="constrained")
    for k, ax in enumerate(axes.ravel()):
        draw_spiral(ax, data.scale * spirals.trajectories[ids[k]],
                    data.scale * batch.x_observed[k], data.scale * paths[k], fine[k] <= split,
                    data.scale * rnn[k])
        ax.set_title(f"test spiral {ids[k]}, "
                     f"{'clockwise' if spirals.clockwise[ids[k]] else 'counter-clockwise'}")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    for ax in axes[:, 0]:
        ax.set_ylabel("y")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=3)
    fig.suptitle(f"Fig. 8: test spirals, each observed (noisy) at its own {n_observed} of its "
                 f"first {OBSERVED_RANGE} points; predicted over the next {FUTURE_RANGE}")
    return plots.save_png(fig, out / f"reconstructions{suffix}.png", tight=False)


def draw_spiral(ax, truth, x_observed, path, reconstructed, rnn):
    """One panel of `plot_reconstructions`: the noise-free truth drawn last, on top of the
    thinner, translucent predictions, and the observations as light dots beneath them."""
    ax.scatter(x_observed[:, 0], x_observed[:, 1], s=7, color="0.6", zorder=1,
               label="observations")
    ax.plot(path[reconstructed, 0], path[reconstructed, 1], color="tab:blue", lw=1.3,
            alpha=0.75, zorder=2, label="latent ODE: reconstruction")
    ax.plot(path[~reconstructed, 0], path[~reconstructed, 1], color="tab:red", lw=1.3,
            alpha=0.75, zorder=2, label="latent ODE: extrapolation")
    ax.plot(rnn[:, 0], rnn[:, 1], color="tab:orange", lw=1.3, alpha=0.75, zorder=2,
            label="RNN (trained to forecast): extrapolation")
    ax.plot(truth[:OBSERVED_RANGE, 0], truth[:OBSERVED_RANGE, 1], color="0.3", lw=1, ls="--",
            zorder=3, label="true trajectory, observation range")
    ax.plot(truth[OBSERVED_RANGE:, 0], truth[OBSERVED_RANGE:, 1], color="black", lw=1.4,
            ls=":", zorder=3, label="true future (scored in Table 2)")
    ax.set_aspect("equal", adjustable="datalim")


def plot_homotopy(models, data, out, solver, suffix="", n_steps=7):
    """Decode z0 interpolated between a clockwise and a counter-clockwise test spiral's
    posterior means (Fig. 9): what the latent space holds between the two directions."""
    spirals, test_ids = data.spirals, data.test_ids
    cw = test_ids[spirals.clockwise[test_ids]][0]
    ccw = test_ids[~spirals.clockwise[test_ids]][0]
    batch = make_batch(spirals, np.array([cw, ccw]), np.tile(np.arange(OBSERVED_RANGE), (2, 1)))
    mean = backend.to_numpy(encode(models["latent_ode"], batch.t_observed, batch.x_observed)[0])
    alphas = np.linspace(0.0, 1.0, n_steps)
    z0 = backend.asarray((1 - alphas)[:, None] * mean[0] + alphas[:, None] * mean[1])
    fine = np.linspace(0.0, spirals.times[-1], 400)
    decoded = decode(models["latent_ode"]["decoder"],
                     odeint(latent_dynamics, z0, backend.asarray(fine),
                            models["latent_ode"]["dynamics"], **solver))
    paths = data.scale * np.swapaxes(backend.to_numpy(decoded), 0, 1)
    fig, axes = plots.figure(1, n_steps, figsize=(2.3 * n_steps, 3.6), sharex=True, sharey=True,
                             layout="constrained")
    for ax, alpha, path in zip(axes, alphas, paths):
        dots = ax.scatter(path[:, 0], path[:, 1], c=fine, cmap="viridis", s=2, vmin=fine[0],
                          vmax=fine[-1])
        ax.set_title(f"alpha = {alpha:.2f}")
        ax.set_xlabel("x")
        ax.set_aspect("equal", adjustable="box")
    axes[0].set_ylabel("y")
    colorbar = fig.colorbar(dots, ax=axes, location="bottom", shrink=0.4, aspect=40,
                            label="time (white line: the end of the observation range)")
    colorbar.ax.axvline(spirals.times[OBSERVED_RANGE - 1], color="white", lw=1.5)
    fig.suptitle(f"Fig. 9: the latent ODE decoded from z0 = (1 - alpha) m_cw + alpha m_ccw, "
                 f"m_cw and m_ccw the posterior means of test spirals {cw} (clockwise) and "
                 f"{ccw} (counter-clockwise)")
    return plots.save_png(fig, out / f"homotopy{suffix}.png", tight=False)


def plot_losses(states, out, suffix=""):
    """Training loss per point of the three models (moving average)."""
    fig, ax = plots.figure(figsize=(6, 3.8))
    for name, label in [("latent_ode", "latent ODE: -ELBO"),
                        ("rnn_forecast", "RNN trained to forecast: -log-likelihood"),
                        ("rnn_teacher", "RNN, teacher forcing: -log-likelihood")]:
        losses = np.array(states[name]["log"]["losses"])
        window = max(1, len(losses) // 40)
        # the mean of steps k - window + 1 .. k, drawn at step k (counted from 1)
        ax.plot(np.arange(window, len(losses) + 1),
                np.convolve(losses, np.ones(window) / window, mode="valid"), label=label)
    ax.set(yscale="symlog", xlabel="Adam step",
           ylabel=f"training loss per point\n(moving average over {window} steps)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    return plots.save_png(fig, out / f"losses{suffix}.png")


def make_pictures(models, states, data, config, out, seed, solver):
    """Fig. 8 (with the spirals observed at 30 points), Fig. 9 and the loss curves, named
    after the run's objective (`objective_suffix`)."""
    suffix = objective_suffix(config)
    plot_reconstructions(models, data, out, N_OBSERVED[0], seed, solver, suffix)
    plot_homotopy(models, data, out, solver, suffix)
    plot_losses(states, out, suffix)


if NOTEBOOK and not args.no_plots:
    make_pictures(final_params(states), states, data, config, args.out, args.seed, solver)

# %% [markdown]
# ## Numbers
#
# Table 2: predictive RMSE on the 100 future points of held-out spirals observed at 30, 50 or
# 100 of their first 100 points, against the noise-free future.

# %%


def choose_linear_points(data, seed):
    """The number of last observations of the linear baseline, chosen on the validation
    spirals from `LINEAR_POINTS`."""
    return min(LINEAR_POINTS, key=lambda k: mean_rmse(linear_extrapolation, k, data,
                                                      data.validation_ids, seed))


def predictive_rmse(models, data, ids, seed, solver):
    """``{name: {"clean" | "noisy": {n: RMSE}}}`` of every predictor on the spirals ``ids``
    (``models`` holds each one's params), plus ``"target_rms"`` of the same form: the RMS of
    the targets. All in the data's own units."""
    table = {name: {"clean": {}, "noisy": {}} for name in models}
    table["target_rms"] = {"clean": {}, "noisy": {}}
    for name, predict in predictors(solver).items():
        for n in N_OBSERVED:
            for target, noisy in (("clean", False), ("noisy", True)):
                table[name][target][n] = rmse(predict, models[name], data, ids, seed, n, noisy)
    zero = predictors(solver)["zero"]
    for n in N_OBSERVED:   # "predict zero" scores the RMS of the targets
        table["target_rms"]["clean"][n] = rmse(zero, None, data, ids, seed, n)
        table["target_rms"]["noisy"][n] = rmse(zero, None, data, ids, seed, n, noisy=True)
    return table


ROW_LABELS = {"latent_ode": "Latent ODE", "rnn_forecast": "RNN, trained to forecast",
              "rnn_teacher": "RNN, teacher-forced", "zero": "predict zero",
              "last_observation": "predict the last observation",
              "linear": "linear extrapolation of the last observations"}
PAPER_LABELS = {"rnn": "RNN", "latent_ode": "Latent ODE"}
RESULT_NAMES = {"observed": "latent_ode", "window": "latent_ode_window"}
COMMANDS = {"observed": "python tutorials/latent_ode.py",
            "window": "python tutorials/latent_ode.py --fit window"}


def objective_table(result):
    """One objective's Table 2: the paper's rows, then minode's, RMSE against the noise-free
    and the noisy future, each with its ratio to the targets' RMS."""
    rmse_table, targets = result["rmse"], result["rmse"]["target_rms"]
    columns = [(target, n) for target in ("clean", "noisy") for n in N_OBSERVED]
    header = " | ".join(f"{n}/{OBSERVED_RANGE}, {'noise-free' if target == 'clean' else 'noisy'}"
                        for target, n in columns)
    lines = [f"| Model | {header} |", "|---|" + "---|" * len(columns)]
    for key, values in PAPER_TABLE_2.items():
        # the paper does not say which future it scores against: its numbers sit in the first
        # columns, a dash in the others
        cells = [f"{v:.4f}" for v in values] + ["-"] * len(N_OBSERVED)
        lines.append(f"| paper: {PAPER_LABELS[key]} | " + " | ".join(cells) + " |")
    for key, label in ROW_LABELS.items():
        cells = [f"{rmse_table[key][t][str(n)]:.4f} "
                 f"({rmse_table[key][t][str(n)] / targets[t][str(n)]:.1%})" for t, n in columns]
        if key == "linear":
            label += f" ({result['linear_points']})"
        lines.append(f"| minode: {label} | " + " | ".join(cells) + " |")
    return lines


def table_markdown(results):
    """Table 2 for each objective in ``results`` (``{objective: result}``), with how each was
    run."""
    parts = []
    for objective, result in results.items():
        config = result["config"]
        targets = result["rmse"]["target_rms"]
        parts += [f"## Training on {OBJECTIVES[objective]} (`{COMMANDS[objective]}`)", "",
                  f"Predictive RMSE on the {FUTURE_RANGE} future points of {config['n_test']} "
                  f"held-out spirals (data `{config['data']}`), against the noise-free and the "
                  f"noisy future, the latent ODE from the posterior mean of z0; in brackets each "
                  f"RMSE relative to the RMS of the targets (noise-free "
                  f"{targets['clean']['30']:.3f}, noisy {targets['noisy']['30']:.3f}). Each "
                  f"model's parameters are those of its best validation RMSE over "
                  f"{config['iters']} Adam steps (batch {config['batch_size']}; steps kept: "
                  + ", ".join(f"{name} {step}" for name, step in result["best_step"].items())
                  + "); the linear baseline's number of last observations (in brackets) was "
                  "chosen on the validation spirals too.", ""]
        parts += objective_table(result) + [""]
    return "\n".join(parts)


def best_step(state):
    """The step whose parameters were kept (the lowest validation RMSE)."""
    steps, scores = zip(*state["log"]["validation"])
    return int(steps[int(np.argmin(scores))])


def run_result(states, before, data, config, seed, solver):
    """The run's numbers: the probe losses before and after training, the RMSE tables of the
    validation and test spirals, the steps kept, the training times and loss curves."""
    models = {**final_params(states), "zero": None, "last_observation": None,
              "linear": choose_linear_points(data, seed)}
    return {"config": asdict(config), "grad": solver["grad"],
            "probe_loss_before": before,
            "probe_loss_after": probe_losses(models, data, config, seed, solver),
            "linear_points": models["linear"],
            "best_step": {name: best_step(state) for name, state in states.items()},
            "validation": {name: state["log"]["validation"] for name, state in states.items()},
            "validation_rmse": predictive_rmse(models, data, data.validation_ids, seed, solver),
            "rmse": predictive_rmse(models, data, data.test_ids, seed, solver),
            "train_seconds": {name: s["log"]["seconds"] for name, s in states.items()},
            "losses": {name: s["log"]["losses"] for name, s in states.items()}}


def write_table(out):
    """Write Table 2 of every objective whose result is in ``out`` (this run's and an earlier
    command's) to ``out/table2.md``; returns its text."""
    results = runs.collect_results(out, RESULT_NAMES.values(), {})
    table = table_markdown({objective: results[name] for objective, name in RESULT_NAMES.items()
                            if name in results})
    write_text_atomically(out / "table2.md", table)
    return table


if NOTEBOOK:
    result = run_result(states, before, data, config, args.seed, solver)
    runs.write_result(args.out, RESULT_NAMES[args.fit], result, options=vars(args))
    print(write_table(args.out))

# %% [markdown]
# ## Running it
#
# `main` runs the cells above in order: data, models, training, pictures, numbers.

# %%


def main(argv=None):
    """Run the experiment; returns its results (used by the tests)."""
    args, config, solver = start(argv)
    started, cpu_started = time.perf_counter(), time.process_time()
    data = make_data(config, args.seed)
    models = init_models(args.seed)
    before = probe_losses(models, data, config, args.seed, solver)
    states = train_models(models, data, config, solver, args.seed, args.out, args.resume,
                          args.quiet)
    result = run_result(states, before, data, config, args.seed, solver)
    if not args.no_plots:
        make_pictures(final_params(states), states, data, config, args.out, args.seed, solver)
    result["wall_seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu_started
    runs.write_result(args.out, RESULT_NAMES[args.fit], result, options=vars(args))
    print("\n" + write_table(args.out))
    print("training: " + ", ".join(f"{name} {seconds:.0f} s"
                                   for name, seconds in result["train_seconds"].items())
          + f"; whole run {result['wall_seconds']:.0f} s, CPU {result['cpu_seconds']:.0f} s; "
          f"outputs in {args.out}")
    return result


if __name__ == "__main__" and not NOTEBOOK:
    runs.run_script(main)
