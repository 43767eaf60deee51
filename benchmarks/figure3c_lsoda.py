"""Figure 3c with the paper's solver: backward against forward NFE of the trained MNIST ODE-Net,
solved by SciPy's LSODA forward and backward, two ways.

    python benchmarks/figure3c_lsoda.py [--checkpoint results/mnist_odenet/odenet_checkpoint.npz]
                                        [--digits 8]

The paper (sec. 3, Fig. 3c) reports that the backward pass takes roughly half the evaluations of
the forward pass, measured with "the implicit Adams method implemented in LSODE and VODE"; its
Appendix D code solves the augmented state [z, a, a_theta] backwards with SciPy's ``odeint``
(LSODA), z included. minode's ``method="scipy:LSODA"`` (`minode.scipy_adjoint`) instead reads z
off the forward solve's dense output, so its backward error control covers a and a_theta only.
This script measures both on the first ``--digits`` test digits, at each tolerance of the
tutorial's sweep (rtol = atol):

- "interpolated z": ``odeint(..., method="scipy:LSODA")`` under ``autograd.grad``, minode's own
  path (the tutorial's ``--sweep-method scipy:LSODA`` draws it);
- "z solved backwards": Algorithm 1 as the paper's Appendix D runs it, ``solve_ivp(LSODA)`` from
  t = 1 to 0 on [z(1), dL/dz(1), 0] with `minode.adjoint.augmented_dynamics` as the right-hand
  side (one vector-Jacobian product of f per evaluation).

Each row gives the NFE (calls of f forward; of the augmented dynamics backward) and the error of
dL/dtheta, theta the ODE block's parameters, against minode's dopri5 adjoint at
rtol = atol = 1e-7, as ||g - g_ref|| / ||g_ref|| (the model is float32, so entrywise errors of
its small entries measure rounding, not the solver). The loss is the mean cross-entropy of the
digits, as in training. LSODA allocates its stiff mode's work array up front (n^2 floats for n
state entries, `minode.scipy_bridge.lsoda_work_bytes`), hence a few digits: with 8 the backward
state [z, a, a_theta] has 2 x 12,544 + 19,616 entries (a work array of about 16 GB that the
non-stiff Adams mode never touches).
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402
import scipy.integrate  # noqa: E402
from autograd import grad  # noqa: E402

from minode import SolverStats, nn, ops, runs  # noqa: E402
from minode.adjoint import AugmentedState, augmented_dynamics  # noqa: E402
from minode.dynamics import time_as_array  # noqa: E402
from minode.mnist import load_mnist  # noqa: E402
from minode.odenet import head, ode_block, stem  # noqa: E402
from minode.scipy_adjoint import ScipyAdjointProblem  # noqa: E402
from minode.tree import flatten  # noqa: E402

TOLERANCES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)   # the tutorial's Figure 3 sweep
REFERENCE = {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7, "grad": "adjoint"}


def loss_of_block(params, h0, labels, solver, stats=None):
    """The mean cross-entropy of the digits whose stem output is ``h0``, the ODE block solved
    by ``solver``; a function of the block's parameters ``params``."""
    return lambda ode: ops.cross_entropy(head(params["head"], ode_block(ode, h0, solver, stats)),
                                         labels)


def interpolated_z(params, h0, labels, tol):
    """minode's ``scipy:LSODA`` adjoint: ``(nfe forward, nfe backward, dL/dtheta)``."""
    stats = SolverStats()
    solver = {"method": "scipy:LSODA", "rtol": tol, "atol": tol, "grad": "adjoint"}
    gradient = grad(loss_of_block(params, h0, labels, solver, stats))(params["ode"])
    return stats.forward.nfe, stats.backward.nfe, flatten(gradient)[0]


def z_solved_backwards(params, h0, labels, tol):
    """The paper's Appendix D: LSODA forward, then LSODA backwards on [z, a, a_theta];
    ``(nfe forward, nfe backward, dL/dtheta)``."""
    theta, unflatten = flatten(params["ode"])
    theta = numpy.asarray(theta, dtype=numpy.float64)
    calls = {"forward": 0, "backward": 0}

    def forward(t, z):
        calls["forward"] += 1
        return numpy.ravel(nn.conv_ode_func(z.reshape(h0.shape), time_as_array(t, z.dtype),
                                            unflatten(theta)))
    z0 = numpy.asarray(h0, dtype=numpy.float64).ravel()
    solved = scipy.integrate.solve_ivp(forward, (0.0, 1.0), z0, method="LSODA", rtol=tol,
                                       atol=tol)
    z1 = solved.y[:, -1].reshape(h0.shape)
    a1 = grad(lambda h: ops.cross_entropy(head(params["head"], ops.as_dtype(h, h0.dtype)),
                                          labels))(z1)
    layout = AugmentedState(h0.shape, theta.size, False)
    problem = ScipyAdjointProblem(nn.conv_ode_func, unflatten, None, None, SolverStats())
    dynamics = augmented_dynamics(problem, layout)

    def backward(t, state):
        calls["backward"] += 1
        return numpy.asarray(dynamics(state, time_as_array(t, state.dtype), theta))
    start = numpy.concatenate([z1.ravel(), numpy.ravel(a1), numpy.zeros(theta.size)])
    back = scipy.integrate.solve_ivp(backward, (1.0, 0.0), start, method="LSODA", rtol=tol,
                                     atol=tol)
    if not (solved.success and back.success):
        raise RuntimeError(f"LSODA failed at tol {tol:g}: {solved.message} / {back.message}")
    return calls["forward"], calls["backward"], layout.adjoints(back.y[:, -1])[1]


def normwise_error(gradient, reference):
    """||gradient - reference|| / ||reference||, in float64."""
    gradient, reference = (numpy.asarray(g, dtype=numpy.float64) for g in (gradient, reference))
    return numpy.linalg.norm(gradient - reference) / numpy.linalg.norm(reference)


def main():
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=Path("results/mnist_odenet/odenet_checkpoint.npz"),
                        help="the trained ODE-Net (python tutorials/mnist_odenet.py writes it)")
    parser.add_argument("--digits", type=int, default=8, help="test digits in the batch")
    args = parser.parse_args()
    if not args.checkpoint.exists():
        raise SystemExit(f"--checkpoint: no file {args.checkpoint}; run "
                         f"python tutorials/mnist_odenet.py first")
    params = runs.Checkpoint(args.checkpoint).load()["params"]
    _, _, test_images, test_labels = load_mnist()
    images, labels = test_images[:args.digits], test_labels[:args.digits]
    h0 = stem(params["stem"], images)
    reference = flatten(grad(loss_of_block(params, h0, labels, REFERENCE))(params["ode"]))[0]
    print(f"ODE-Net of {args.checkpoint}, the first {args.digits} test digits; gradient error "
          f"against dopri5's adjoint at rtol = atol = 1e-7\n")
    # the two forward solves are the same LSODA solve; a second count shows only if they differ
    print("| tol | NFE forward | interpolated z: NFE backward | ratio | grad error | "
          "z solved backwards: NFE backward | ratio | grad error |")
    print("|---|---|---|---|---|---|---|---|")
    for tol in TOLERANCES:
        nfe, nfe_back, gradient = interpolated_z(params, h0, labels, tol)
        nfe_paper, nfe_back_paper, gradient_paper = z_solved_backwards(params, h0, labels, tol)
        forward = str(nfe) if nfe == nfe_paper else f"{nfe} ({nfe_paper})"
        print(f"| {tol:g} | {forward} | {nfe_back} | {nfe_back / nfe:.2f} | "
              f"{normwise_error(gradient, reference):.1e} | {nfe_back_paper} | "
              f"{nfe_back_paper / nfe_paper:.2f} | "
              f"{normwise_error(gradient_paper, reference):.1e} |", flush=True)


if __name__ == "__main__":
    main()
