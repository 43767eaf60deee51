"""A reference solver: SciPy's ``solve_ivp`` behind minode's ``odeint`` interface.

``method="scipy:RK45"`` (or DOP853, LSODA, Radau, BDF, RK23) runs ``scipy.integrate.solve_ivp``
on NumPy arrays. The explicit ones (RK23, RK45, DOP853) are forward-only: use them to check
minode's own solvers. Radau, BDF and LSODA are differentiable with ``grad="adjoint"``, by a
backward solve of their own (`minode.scipy_adjoint`), whose forward solve is this one.
"""
import numpy
import scipy.integrate

SCIPY_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
SCIPY_CANNOT = "A scipy method runs on plain NumPy arrays and cannot differentiate it"


def solve_with_scipy(rhs, y0, times, options, counts):
    """Solve with ``solve_ivp`` and return y at every time, shape (len(times),) + y0.shape.

    ``options`` (a `minode.solve.ScipyOptions`) name the method, its tolerances and first step.
    ``rhs(y, t)`` works on arrays of y0's shape; SciPy sees the state flattened.
    ``counts.nfe`` counts every call of ``rhs`` (a finite-difference Jacobian's included),
    ``counts.jacobians`` and ``counts.factorisations`` are SciPy's ``njev`` and ``nlu``;
    ``counts.steps`` stays as it is: ``solve_ivp`` does not report its steps.
    """
    return _solve_ivp(rhs, y0, times, options, counts, dense_output=False)[0]


def solve_with_scipy_densely(rhs, y0, times, options, counts):
    """`solve_with_scipy`'s outputs (the same values) and the solution between them:
    ``(ys, interpolant)``, ``interpolant(t)`` the flattened state in float64 at any t of the
    span, from SciPy's dense output (``OdeSolution``: one interpolant per step)."""
    return _solve_ivp(rhs, y0, times, options, counts, dense_output=True)


def _solve_ivp(rhs, y0, times, options, counts, dense_output):
    if not isinstance(y0, numpy.ndarray):
        raise TypeError("scipy methods run on NumPy arrays only; switch to the numpy backend")

    def flat_rhs(t, y_flat):
        counts.nfe += 1
        return numpy.asarray(rhs(y_flat.reshape(y0.shape), t)).ravel()

    times = numpy.asarray(times, dtype=numpy.float64)
    solution = scipy.integrate.solve_ivp(flat_rhs, (times[0], times[-1]), y0.ravel(),
                                         method=options.method, t_eval=times, rtol=options.rtol,
                                         atol=options.atol, first_step=options.first_step,
                                         dense_output=dense_output)
    if not solution.success:
        raise RuntimeError(f"scipy.integrate.solve_ivp(method={options.method!r}) failed: "
                           f"{solution.message}")
    counts.jacobians += int(solution.njev)
    counts.factorisations += int(solution.nlu)
    return solution.y.T.reshape((len(times),) + y0.shape).astype(y0.dtype), solution.sol
