"""The linearisation of a vector field at a point, by autograd: f, df/dy and df/dt.

An implicit method needs the Jacobian J = df/dy of ``rhs(y, t)`` at the start of each step
(and, for a non-autonomous f, the time derivative f_t = df/dt). autograd is reverse mode, so
the Jacobian is built row by row:

    one trace of f with respect to y and t   (f itself, the step's first stage)
    n vector-Jacobian products e_i^T J       (row i of J, and df_i/dt with it)

for a state of n entries (the state is flattened in C order, whatever its shape). The trace is
one function evaluation, counted as one. When autograd is tracing the solve itself
(``grad="backprop"``), the products are traced too, so the gradient sees J as the function of
y, t and the parameters that it is.

The n products share one trace, so they share its node order too: `minode.tracing.Trace` sorts the
nodes once, and each row's backward pass walks that order. A row's pass skips the nodes that only
receive exact zeros: a constant (untraced) zero array that some node's VJP returns, such as the
entries of e_i that ``ops.stack`` hands to the other stacked outputs. Such a contribution is zero
and so is each of its derivatives, so skipping it changes no value and no traced gradient. Row i
then costs the part of f that output i depends on. Measured on the problems of
`benchmarks/stiff.py` (interleaved, median of 7): a Jacobian 1.2 times faster than with a full pass
per row for Van der Pol, 1.6 times for Robertson and the Oregonator, 4 times for HIRES written
entry by entry (1.1 times for HIRES as A y + b, whose matrix product has no zeros to skip). An f
that never reads t is found the same way, its time root reached by no node, and is marked
``autonomous``: the step then skips the f_t terms.

Quadratures. When the last q entries of the state are quadratures -- the vector field never
reads them, as a_theta and a_t of the adjoint's augmented state [z, a, a_theta, a_t] -- J has
the block form [[J11, 0], [J21, 0]], and only the m x m block J11 (m = n - q) needs a
factorisation. Then only m rows are built, and the coupling J21 v is computed as the
Jacobian-vector product J (v, 0) without forming J21: the map w -> J^T w that the trace gives is
linear, so its own vector-Jacobian product is w' -> J w' (the "transpose of the transpose";
J. Townsend, "A new trick for calculating Jacobian vector products", 2017). That is one more
trace per step and one product per use, instead of q more rows.

The backward pass is autograd's (`autograd.core.backward_pass`) over a stored node order, as
`minode.tracing.vjp_per_argument`'s is over one root per argument; it uses the same internals
(the trace stack, nodes and boxes).
"""
from dataclasses import dataclass

from autograd import make_vjp
from autograd.tracer import getval, isbox

from minode import backend, ops
from minode.tracing import Trace


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
    ``autonomous`` is True when f does not read t (then df/dt is zero); ``coupling(v)`` returns
    J21 v (q entries) for a flat v of m entries, None without quadratures.
    """

    value: object
    jacobian: object
    time_derivative: object
    coupling: object = None
    autonomous: bool = False


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

    graph = Trace(rhs if y.ndim == 1 else flat_rhs, (ops.ravel(y), time))
    value = graph.value
    unit = xp.eye(n, dtype=value.dtype)
    rows = [graph.vjp(unit[i]) for i in range(m)]
    jacobian_rows = _stack([row for row, _ in rows], (m, n), value.dtype)
    autonomous = not graph.reads[1]
    if quadratures == 0:
        if autonomous:
            time_derivative = xp.zeros(n, dtype=value.dtype)
        else:
            time_derivative = _stack([ops.as_dtype(df_dt, value.dtype) for _, df_dt in rows],
                                     (n,), value.dtype)
        return Linearisation(ops.as_shape(value, shape), jacobian_rows,
                             ops.as_shape(time_derivative, shape), autonomous=autonomous)
    _check_quadratures_unread(getval(jacobian_rows), m, quadratures)
    jvp = _jacobian_vector_product(graph.vjp, value)
    time_derivative = xp.zeros(n, dtype=value.dtype)
    if not autonomous:
        time_derivative = jvp(time_derivative, 1.0)
    zeros_q = xp.zeros(quadratures, dtype=value.dtype)

    def coupling(v_implicit):
        return ops.getitem(jvp(ops.concatenate([v_implicit, zeros_q]), 0.0), slice(m, None))

    return Linearisation(ops.as_shape(value, shape), ops.getitem(jacobian_rows, (slice(None),
                                                                             slice(0, m))),
                         ops.as_shape(time_derivative, shape), coupling, autonomous)


def _stack(arrays, shape, dtype):
    """The arrays stacked along a new first axis; none (a state of size 0) give an empty array
    of ``shape``."""
    if not arrays:
        return backend.xp.zeros(shape, dtype=dtype)
    if any(isbox(array) for array in arrays):
        return ops.stack(arrays)
    return backend.xp.stack(arrays)  # untraced: no primitive to pass through


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
