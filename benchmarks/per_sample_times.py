"""Benchmark: `odeint` with one time grid per sample (a 2-D ``t``) against its two alternatives.

The workload is the latent ODE of ``tutorials/latent_ode.py``: B states of dimension 4 under an
MLP 4-20-4 (tanh, N(0, 0.5^2) weights), every row starting at t = 0 and wanted at its own n
further times. Two kinds of rows:

* ``grid subset``: n random points out of 100 equally spaced ones in (0, 4], the paper's
  irregular sampling (sec. 5.1); the union of the rows' times has at most 100 points;
* ``continuous``: n uniform random times in (0, 4]; the union has B * n points;
* ``grid subset + future``: the grid subset, then the same 100 equally spaced times in (4, 8]
  for every row (the latent ODE's extrapolation, where `minode.time_grids` solves the shared
  stretch as one 1-D solve).

Three ways to get every row's values, and the gradient of a random linear loss of them with
respect to y0 and the MLP's parameters:

* ``per-sample t``: ``odeint(func, y0, t)`` with ``t`` of shape (B, T) (`minode.time_grids`:
  one-interval solves in a rescaled time, all rows at once);
* ``each alone``: B solves of one row each, ``odeint(func, y0[b:b+1], t[b])``;
* ``union``: one solve at the sorted union of all rows' times, then each row's own entries.

Printed: function evaluations of the forward solve and of the adjoint's backward solve (an
evaluation of "each alone" is one row, of the others all B rows), and seconds for value and
gradient with ``grad="adjoint"`` and ``grad="backprop"`` (median of ``--repeats``).

    OPENBLAS_NUM_THREADS=1 python benchmarks/per_sample_times.py
"""
import argparse
import os
import statistics
import time

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import autograd
import numpy

from minode import SolverStats, nn, odeint, ops

DIM, HIDDEN, T_MAX, GRID_POINTS = 4, 20, 4.0, 100


def mlp_dynamics(z, t, params):
    """dz/dt = MLP(z), autonomous (the latent ODE's dynamics)."""
    return nn.mlp(params, z, activation=ops.tanh)


KINDS = ("grid subset", "continuous", "grid subset + future")


def row_times(rng, batch, n, kind):
    """Increasing times, each row 0 followed by its own n random times (see KINDS)."""
    grid = numpy.linspace(0.0, T_MAX, GRID_POINTS + 1)[1:]
    if kind == "continuous":
        rows = [numpy.sort(rng.uniform(0.0, T_MAX, size=n)) for _ in range(batch)]
    else:
        rows = [numpy.sort(rng.choice(grid, size=n, replace=False)) for _ in range(batch)]
    columns = [numpy.zeros((batch, 1)), numpy.array(rows)]
    if kind == "grid subset + future":
        columns.append(numpy.tile(T_MAX + grid, (batch, 1)))
    return numpy.concatenate(columns, axis=1)


def per_sample(y0, t, params, options):
    """(B, T, D) by one call with the 2-D t."""
    return ops.transpose(odeint(mlp_dynamics, y0, t, params, **options), (1, 0, 2))


def each_alone(y0, t, params, options):
    """(B, T, D) by one 1-D solve per row."""
    rows = [ops.getitem(odeint(mlp_dynamics, ops.getitem(y0, slice(b, b + 1)), t[b], params,
                               **options), (slice(None), 0)) for b in range(len(t))]
    return ops.stack(rows)


def union(y0, t, params, options):
    """(B, T, D) by one solve at the union of the rows' times (they share t[:, 0])."""
    times, index = numpy.unique(t, return_inverse=True)
    ys = odeint(mlp_dynamics, y0, times, params, **options)            # (U, B, D)
    rows = numpy.arange(len(t))[:, None]
    return ops.getitem(ys, (index.reshape(t.shape), rows))


MECHANISMS = {"per-sample t": per_sample, "each alone": each_alone, "union": union}


def measure(mechanism, y0, t, params, weights, grad, solver, repeats):
    """(forward NFE, backward NFE, median seconds) of value and gradient of sum(weights * ys)."""
    stats = SolverStats()

    def loss(y0, params):
        options = {**solver, "grad": grad, "stats": stats}
        return ops.sum(ops.multiply(weights, mechanism(y0, t, params, options)))

    seconds = []
    for _ in range(repeats):
        stats.reset()
        started = time.perf_counter()
        autograd.value_and_grad(loss, (0, 1))(y0, params)
        seconds.append(time.perf_counter() - started)
    return stats.forward.nfe, stats.backward.nfe, statistics.median(seconds)


def main(argv=None):
    """Print the table for each kind of row times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--n", type=int, default=30, help="times per row after t = 0")
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--atol", type=float, default=1e-7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = numpy.random.default_rng(0)
    params = [{"w": rng.normal(0.0, 0.5, layer["w"].shape), "b": layer["b"]}
              for layer in nn.init_mlp(rng, [DIM, HIDDEN, DIM])]
    y0 = rng.normal(size=(args.batch, DIM))
    solver = {"method": "dopri5", "rtol": args.rtol, "atol": args.atol}
    print(f"B = {args.batch} rows, {args.n} times each after t = 0, dopri5 rtol={args.rtol:g} "
          f"atol={args.atol:g}; seconds for value + gradient (median of {args.repeats})")
    for kind in KINDS:
        t = row_times(rng, args.batch, args.n, kind)
        weights = rng.normal(size=t.shape + (DIM,))
        print(f"\n{kind}: T = {t.shape[1]} times per row, union of the rows' times "
              f"{len(numpy.unique(t))}")
        print(f"{'mechanism':<14}{'NFE fwd':>9}{'NFE bwd':>9}{'s adjoint':>11}"
              f"{'NFE fwd':>9}{'s backprop':>12}")
        for name, mechanism in MECHANISMS.items():
            fwd, bwd, adjoint_s = measure(mechanism, y0, t, params, weights, "adjoint", solver,
                                          args.repeats)
            fwd_bp, _, backprop_s = measure(mechanism, y0, t, params, weights, "backprop",
                                            solver, args.repeats)
            print(f"{name:<14}{fwd:>9}{bwd:>9}{adjoint_s:>11.3f}{fwd_bp:>9}{backprop_s:>12.3f}")


if __name__ == "__main__":
    main()
