"""A reference solver: SciPy's ``solve_ivp`` behind minode's ``odeint`` interface.

``method="scipy:RK45"`` (or DOP853, LSODA, Radau, BDF, RK23) runs ``scipy.integrate.solve_ivp``
on NumPy arrays. The explicit ones (RK23, RK45, DOP853) are forward-only: use them to check
minode's own solvers. Radau, BDF and LSODA are differentiable with ``grad="adjoint"``, by a
backward solve of their own (`minode.scipy_adjoint`), whose forward solve is this one.
"""
import os

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


def lsoda_work_bytes(n, band=None):
    """The bytes of the work array SciPy's LSODA allocates as it starts on a state of ``n``
    entries (``scipy.integrate._ode.lsoda.reset``): the histories of its Adams (order <= 12) and
    BDF (order <= 5) modes and room for the stiff mode's Jacobian, n x n, or ``band`` diagonals
    below and above the main one when the Jacobian is banded; whether the stiff mode is ever
    used or not."""
    adams = 20 + (12 + 4) * n
    stiff = 22 + (5 + 4) * n + n * n if band is None else 22 + (5 + 5 + 3 * band) * n
    return 8 * max(adams, stiff)


def check_lsoda_fits(n, band, what):
    """Refuse an LSODA solve whose work array (`lsoda_work_bytes`) exceeds the machine's
    memory, before NumPy fails to allocate it; ``what`` names the state in the message."""
    need, have = lsoda_work_bytes(n, band), _physical_memory_bytes()
    if have is not None and need > have:
        raise ValueError(f"method 'scipy:LSODA' cannot solve {what} ({n:,} entries) here: LSODA "
                         f"allocates the work array of its stiff mode up front, "
                         f"{need / 2**30:.1f} GiB for this state, more than this machine's "
                         f"{have / 2**30:.1f} GiB of memory. Solve fewer samples per call, or "
                         f"use a minode method such as 'dopri5', whose memory grows with n only")


def _physical_memory_bytes():
    """The machine's memory in bytes; None where the OS does not say (then nothing is refused)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _solve_ivp(rhs, y0, times, options, counts, dense_output):
    if not isinstance(y0, numpy.ndarray):
        raise TypeError("scipy methods run on NumPy arrays only; switch to the numpy backend")
    if options.method == "LSODA":
        check_lsoda_fits(y0.size, None, "y0")

    def flat_rhs(t, y_flat):
        counts.nfe += 1
        return numpy.asarray(rhs(y_flat.reshape(y0.shape), t)).ravel()

    times = numpy.asarray(times, dtype=numpy.float64)
    first_step = options.first_step  # at most the span, as minode's methods cut it
    if first_step is not None:
        first_step = min(first_step, abs(times[-1] - times[0]))
    solution = scipy.integrate.solve_ivp(flat_rhs, (times[0], times[-1]), y0.ravel(),
                                         method=options.method, t_eval=times, rtol=options.rtol,
                                         atol=options.atol, first_step=first_step,
                                         dense_output=dense_output)
    if not solution.success:
        raise RuntimeError(f"scipy.integrate.solve_ivp(method={options.method!r}) failed: "
                           f"{solution.message}")
    counts.jacobians += int(solution.njev)
    counts.factorisations += int(solution.nlu)
    return solution.y.T.reshape((len(times),) + y0.shape).astype(y0.dtype), solution.sol
