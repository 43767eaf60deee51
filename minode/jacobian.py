"""The linearisation of a vector field at a point, by autograd: f, df/dy and df/dt.

An implicit method needs the Jacobian J = df/dy of ``rhs(y, t)`` at the start of each step
(and, for a non-autonomous f, the time derivative f_t = df/dt). autograd is reverse mode, so
the Jacobian is built row by row:

    one trace of f with respect to y and t   (f itself, the step's first stage)
    n vector-Jacobian products e_i^T J       (row i of J, and df_i/dt with it)

for a state of n entries (the state is flattened in C order, whatever its shape). The trace is
one function evaluation, counted as one; each product costs about as much as the trace (60 and
100 microseconds for Van der Pol, whose plain evaluation takes 7). When autograd is tracing
the solve itself (``grad="backprop"``), these products are traced too, so the gradient sees J
as the function of y, t and the parameters that it is.

Quadratures. When the last q entries of the state are quadratures -- the vector field never
reads them, as a_theta and a_t of the adjoint's augmented state [z, a, a_theta, a_t] -- J has
the block form [[J11, 0], [J21, 0]], and only the m x m block J11 (m = n - q) needs a
factorisation. Then only m rows are built, and the coupling J21 v is computed as the
Jacobian-vector product J (v, 0) without forming J21: the map w -> J^T w that the trace gives is
linear, so its own vector-Jacobian product is w' -> J w' (the "transpose of the transpose";
J. Townsend, "A new trick for calculating Jacobian vector products", 2017). That is one more
trace per step and one product per use, instead of q more rows.
"""
from dataclasses import dataclass

from autograd import make_vjp
from autograd.tracer import getval, isbox

from minode import backend, ops
from minode.tracing import vjp_per_argument


# Coupling quadratures through Jacobian-vector products costs about as much as ten more rows
# (a trace of the VJP per step and one product per stage). Measured on the adjoint of a stiff
# problem with an MLP (2 states): equal at 10 quadratures, 3 times faster at 80; 3 times slower
# at 1 (Van der Pol). Fewer quadratures than this are treated as ordinary entries.
FEWEST_QUADRATURES_TO_COUPLE = 12


@dataclass
class Linearisation:
    """f, its Jacobian and its time derivative at one point (y, t), y of any shape.

    ``value`` is f(y, t) (y's shape); ``jacobian`` the (m, m) block of df/dy over the first m
    flat entries (all n of them without quadratures); ``time_derivative`` df/dt (y's shape);
    ``coupling(v)`` returns J21 v (q entries) for a flat v of m entries, None without
    quadratures.
    """

    value: object
    jacobian: object
    time_derivative: object
    coupling: object = None


def linearise(rhs, y, t, quadratures=0):
    """The `Linearisation` of ``rhs`` at (``y``, ``t``); the last ``quadratures`` flat entries
    of the state are quadratures (``rhs`` does not read them), coupled as the module docstring
    says when there are at least `FEWEST_QUADRATURES_TO_COUPLE` of them.

    ``t`` is a float or a traced scalar. Raises ``ValueError`` when the rows that were built
    show that ``rhs`` does read a quadrature entry.
    """
    xp = backend.xp
    shape, n = y.shape, y.size
    if not 0 <= quadratures < max(n, 1):
        raise ValueError(f"quadratures must be at least 0 and less than the state's size {n} "
                         f"(the implicit part cannot be empty), got {quadratures}")
    if quadratures < FEWEST_QUADRATURES_TO_COUPLE:
        quadratures = 0
    m = n - quadratures
    if isbox(t):
        time = t
    else:  # a 0-d array: autograd differentiates it on every backend
        time = xp.asarray(float(t))

    def flat_rhs(y_flat, time):
        return ops.ravel(rhs(ops.reshape(y_flat, shape), time))

    vjp, value = vjp_per_argument(rhs if y.ndim == 1 else flat_rhs, (ops.ravel(y), time))
    unit = xp.eye(n, dtype=value.dtype)
    rows = [vjp(unit[i]) for i in range(m)]
    jacobian_rows = _stack([row for row, _ in rows], (m, n), value.dtype)
    if quadratures == 0:
        time_derivative = _stack([ops.as_dtype(df_dt, value.dtype) for _, df_dt in rows], (n,),
                                 value.dtype)
        return Linearisation(ops.reshape(value, shape), jacobian_rows,
                             ops.reshape(time_derivative, shape))
    _check_quadratures_unread(getval(jacobian_rows), m, quadratures)
    jvp = _jacobian_vector_product(vjp, value)
    time_derivative = jvp(xp.zeros(n, dtype=value.dtype), 1.0)
    zeros_q = xp.zeros(quadratures, dtype=value.dtype)

    def coupling(v_implicit):
        return ops.getitem(jvp(ops.concatenate([v_implicit, zeros_q]), 0.0), slice(m, None))

    return Linearisation(ops.reshape(value, shape), ops.getitem(jacobian_rows, (slice(None),
                                                                               slice(0, m))),
                         ops.reshape(time_derivative, shape), coupling)


def _stack(arrays, shape, dtype):
    """The arrays stacked along a new first axis; none (a state of size 0) give an empty array
    of ``shape``."""
    if not arrays:
        return backend.xp.zeros(shape, dtype=dtype)
    return ops.stack(arrays)


def _jacobian_vector_product(vjp, value):
    """(dy, dt) -> J dy + f_t dt, from the VJP of the same trace (see the module docstring)."""
    dtype = value.dtype

    def transposed(w):  # w -> (J^T w, f_t . w), linear in w, as one array
        row, df_dt = vjp(w)
        return ops.concatenate([row, ops.reshape(ops.as_dtype(df_dt, dtype), (1,))])

    product, _ = make_vjp(transposed)(backend.xp.zeros(value.shape, dtype=dtype))

    def jvp(dy, dt):
        return product(ops.concatenate([dy, backend.xp.full((1,), dt, dtype=dtype)]))
    return jvp


def _check_quadratures_unread(jacobian_rows, m, quadratures):
    xp = backend.xp
    if m and bool(xp.any(jacobian_rows[:, m:] != 0)):
        raise ValueError(f"the last {quadratures} entries of the state were declared "
                         f"quadratures, but the vector field depends on them (df/dy is not "
                         f"zero in their columns)")
