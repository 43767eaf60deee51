"""A reference solver: SciPy's ``solve_ivp`` behind minode's ``odeint`` interface.

``method="scipy:RK45"`` (or DOP853, LSODA, Radau, BDF, RK23) runs ``scipy.integrate.solve_ivp``
on NumPy arrays. It is forward-only: use it to check minode's own solvers, not to train.
"""
import numpy
import scipy.integrate

SCIPY_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")


def solve_with_scipy(rhs, y0, times, options, counts):
    """Solve with ``solve_ivp`` and return y at every time, shape (len(times),) + y0.shape.

    ``options`` (a `minode.solve.ScipyOptions`) name the method, its tolerances and first step.
    ``rhs(y, t)`` works on arrays of y0's shape; SciPy sees the state flattened. Only
    ``counts.nfe`` is filled: SciPy does not report its steps.
    """
    if not isinstance(y0, numpy.ndarray):
        raise TypeError("scipy methods run on NumPy arrays only; switch to the numpy backend")

    def flat_rhs(t, y_flat):
        counts.nfe += 1
        return numpy.asarray(rhs(y_flat.reshape(y0.shape), t)).ravel()

    times = numpy.asarray(times, dtype=numpy.float64)
    solution = scipy.integrate.solve_ivp(flat_rhs, (times[0], times[-1]), y0.ravel(),
                                         method=options.method, t_eval=times, rtol=options.rtol,
                                         atol=options.atol, first_step=options.first_step)
    if not solution.success:
        raise RuntimeError(f"scipy.integrate.solve_ivp(method={options.method!r}) failed: "
                           f"{solution.message}")
    return solution.y.T.reshape((len(times),) + y0.shape).astype(y0.dtype)
