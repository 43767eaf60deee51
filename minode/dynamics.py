"""The user's vector field ``func(y, t, params)`` as the engine calls it: ``rhs(y, t)``.

The time reaches ``func`` as a 0-d array of the state's dtype, so that ``t * y`` keeps a float32
state float32, and so that autograd can differentiate with respect to it on any backend.
Every result is checked: a wrong shape or dtype is a bug in ``func`` best reported at once.
"""
from autograd.tracer import getval, isbox

from minode import backend, ops


def time_as_array(t, dtype):
    """``t`` (a Python float or a traced scalar) as a 0-d array of ``dtype``."""
    if isbox(t):
        return ops.astype(t, dtype)
    return backend.xp.asarray(t, dtype=dtype)


def check_derivative(dy_dt, y, t):
    """Raise ``ValueError`` unless ``dy_dt`` has ``y``'s shape and dtype."""
    shape = getattr(dy_dt, "shape", None)
    if shape != y.shape:
        raise ValueError(f"func must return dy/dt with the shape of y {tuple(y.shape)}, got "
                         f"{shape if shape is not None else type(dy_dt).__name__} "
                         f"at t={float(getval(t)):.6g}")
    if dy_dt.dtype != y.dtype:
        raise ValueError(f"func must return dy/dt with the dtype of y ({y.dtype}), got "
                         f"{dy_dt.dtype} at t={float(getval(t)):.6g}; cast inside func")


def vector_field(func, params):
    """``rhs(y, t) = func(y, t, params)`` with the time converted and the result checked."""
    def rhs(y, t):
        dy_dt = func(y, time_as_array(t, y.dtype), params)
        check_derivative(dy_dt, y, t)
        return dy_dt
    return rhs
