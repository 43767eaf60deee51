"""The user's vector field ``func(y, t, params)`` as the engine calls it: ``rhs(y, t)``.

The time reaches ``func`` as a 0-d array of the state's dtype, so that ``t * y`` keeps a float32
state float32, and so that autograd can differentiate with respect to it on any backend.
Every result is checked: a wrong shape or dtype is a bug in ``func`` best reported at once, with
the cause named where it can be told apart (arguments in another library's order, a NumPy
function that autograd cannot trace, a differentiated value that reaches ``func`` some other
way than through ``params``).
"""
import inspect

from autograd.tracer import getval, isbox

from minode import backend, ops
from minode.tracing import traced_beyond

_UNTRACEABLE_NUMPY = ("func called a NumPy function that autograd cannot trace (such as np.dot "
                      "or np.linalg functions) on a traced value; write func with minode.ops "
                      "(ops.matmul, ops.tanh, ...) or autograd.numpy, which autograd can "
                      "differentiate")


def time_as_array(t, dtype):
    """``t`` (a Python float or a traced scalar) as a 0-d array of ``dtype``."""
    if isbox(t):
        return ops.as_dtype(t, dtype)
    return backend.xp.asarray(t, dtype=dtype)


def check_derivative(dy_dt, y, t, func=None):
    """Raise ``ValueError`` (``TypeError`` for an untraceable result) unless ``dy_dt`` has
    ``y``'s shape and dtype; ``func``, when given, is looked at for a hint on the cause."""
    shape = getattr(dy_dt, "shape", None)
    if getattr(getval(dy_dt), "dtype", None) == object:
        raise TypeError(f"{_UNTRACEABLE_NUMPY} (func returned an array of dtype object at "
                        f"t={float(getval(t)):.6g})")
    if shape != y.shape:
        raise ValueError(f"func must return dy/dt with the shape of y {tuple(y.shape)}, got "
                         f"{shape if shape is not None else type(dy_dt).__name__} "
                         f"at t={float(getval(t)):.6g}{_argument_order_hint(func, shape)}")
    if dy_dt.dtype != y.dtype:
        raise ValueError(f"func must return dy/dt with the dtype of y ({y.dtype}), got "
                         f"{dy_dt.dtype} at t={float(getval(t)):.6g}; cast inside func")


def _argument_order_hint(func, shape):
    """A hint when ``func`` looks written for torchdiffeq's or SciPy's order ``func(t, y)``:
    its first parameter is named like a time, or it returned a 0-d array (the time's shape)."""
    first = _first_parameter_name(func)
    if shape == () or first in ("t", "time", "s"):
        return ("; note that minode calls func(y, t, params), state first (torchdiffeq and "
                "scipy.integrate.solve_ivp call func(t, y))")
    return ""


def _first_parameter_name(func):
    try:
        parameters = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return None
    return parameters[0] if parameters else None


def vector_field(func, params, refuse_traced_result=None):
    """``rhs(y, t) = func(y, t, params)`` with the time converted and the result checked.

    ``refuse_traced_result``: where ``y``, ``t`` and ``params`` are never traced (the adjoint's
    forward solve, a SciPy solve), a traced result means that ``func`` reads a differentiated
    value some other way than through ``params``. Such a result is refused instead of being
    silently treated as a constant, with this sentence saying which solver cannot
    differentiate it.
    """
    def rhs(y, t):
        try:
            dy_dt = func(y, time_as_array(t, y.dtype), params)
        except TypeError as error:
            if "Box" in str(error):  # a NumPy function met one of autograd's boxes
                raise TypeError(_UNTRACEABLE_NUMPY) from error
            raise
        if refuse_traced_result is not None and traced_beyond(dy_dt, (y, t)):
            raise ValueError(_closure_message(refuse_traced_result))
        check_derivative(dy_dt, y, t, func)
        return dy_dt
    return rhs


def _closure_message(who_cannot):
    return ("func returned a value that autograd is differentiating although y, t and params "
            "are not: func reads a differentiated value that is not passed through params (a "
            "closure over it, a global or an attribute, e.g. lambda y, t, p: -x * y with x "
            f"differentiated). {who_cannot}; treating the value as a constant would give a wrong "
            "gradient. Pass it through params, e.g. odeint(lambda y, t, p: -p * y, y0, t, "
            "params=x)")
