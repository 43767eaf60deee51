"""Gradient checking: autograd's gradients against central finite differences, and the three ways
minode can differentiate an ODE solve side by side.

    numerical_grad(fun, x)            dfun/dx by central differences, for any pytree x
    check_grads(fun, *args, order=1)  raise AssertionError when autograd disagrees with central
                                      differences of the derivative one order lower
    hessian_vector_product(fun, args, vectors)
                                      d/dargs <grad fun(args), vectors>: second derivatives
                                      without forming the Hessian
    compare_gradients(...)            the adjoint (Chen et al. 2018, Algorithm 1), backprop
                                      through the solver ("RK-Net") and finite differences for
                                      one odeint problem, with their relative differences and a
                                      Markdown table

Central differences, (fun(x + h e_i) - fun(x - h e_i)) / (2 h), have truncation error O(h^2) and
rounding error O(machine epsilon * |fun| / h); with h = 1e-6 in float64 both are around 1e-10
relative, which is why the checks here are meant for float64. They cost two evaluations of
``fun`` per entry of x, so they suit small test problems, not models.
"""
from dataclasses import dataclass, field

import numpy
from autograd import grad

from minode import backend, ops
from minode.checks import check_positive_int
from minode.odeint import odeint
from minode.stats import SolverStats
from minode.tree import flatten, tree_map, tree_paths

__all__ = ["numerical_grad", "check_grads", "hessian_vector_product", "relative_error",
           "compare_gradients", "GradientComparison"]


def numerical_grad(fun, x, eps=1e-6):
    """The gradient of the scalar function ``fun`` at ``x`` by central differences.

    ``x`` is an array or a pytree (nested dict/list/tuple) of arrays; the result has its
    structure. Entry i is perturbed by h_i = eps * max(1, |x_i|), so that large entries (such as
    a time t = 25) are moved by a relative amount rather than lost to rounding.
    """
    vector, unflatten = flatten(x)
    vector = vector.astype(vector.dtype if vector.dtype.kind == "f" else "float64")  # a copy
    host = backend.to_numpy(vector)
    derivative = backend.xp.zeros_like(vector)
    for i in range(vector.shape[0]):
        h = eps * max(1.0, abs(float(host[i])))
        shifted = vector.copy()
        shifted[i] = host[i] + h
        above = _scalar(fun(unflatten(shifted)))
        shifted[i] = host[i] - h
        below = _scalar(fun(unflatten(shifted)))
        derivative[i] = (above - below) / (2 * h)
    return unflatten(derivative)


def check_grads(fun, *args, order=1, rtol=1e-5, atol=1e-8, eps=1e-6):
    """Check autograd's derivatives of ``fun(*args)`` up to ``order`` by central differences.

    Each argument is an array or a pytree of arrays. Order 1 compares the gradient with central
    differences of ``fun``. Order k > 1 compares the gradient of ``g_(k-1)`` with central
    differences of ``g_(k-1)``, where ``g_1 = fun`` and ``g_k(*args) = <grad g_(k-1)(*args),
    v_k>`` for a fixed random direction ``v_k`` (seeded by k): at order 2 this is the
    Hessian-vector product against central differences of the gradient, and each order is
    checked against the one below it, as ``autograd.test_util.check_grads`` does. Every order
    uses the same tolerances: an entry passes when |autograd - numerical| <= atol + rtol *
    |numerical| (NumPy's ``allclose`` rule). On failure, raises ``AssertionError`` naming the
    order and the worst entry (the one furthest outside that tolerance: argument and index),
    both values and the relative error |autograd - numerical| / |numerical|; returns None when
    every entry passes. Floating-point arguments must be float64: float32 rounding (about 1e-7
    relative, divided by the step) would swamp the differences, so ``ValueError`` refuses them
    rather than report a spurious failure.
    """
    if not args:
        raise ValueError("check_grads needs at least one argument to differentiate")
    check_positive_int("order", order)
    _check_float64(args)
    _scalar(fun(*args))  # a clear error for a non-scalar fun, before autograd's own
    for level in range(1, order + 1):
        _check_first_order(fun, args, rtol, atol, eps, level)
        if level < order:
            fun = _gradient_along(fun, _random_directions(args, seed=level))


def hessian_vector_product(fun, args, vectors):
    """The Hessian of the scalar ``fun(*args)`` times ``vectors``, without forming the Hessian.

    ``args`` and ``vectors`` are lists (or tuples) with one entry per argument of ``fun``, each
    an array or pytree, the vector shaped like its argument: ``hessian_vector_product(f, [x],
    [v])`` for ``f(x)``. A bare array for either raises ``TypeError`` (iterating it would take
    its rows for arguments). Returns a tuple with one entry per argument: d/dargs
    <grad fun(*args), vectors>, by two reverse passes of autograd. Through `minode.odeint` this
    works with ``grad="adjoint"`` (the adjoint of the adjoint solve) and ``grad="backprop"``.
    """
    for name, value in (("args", args), ("vectors", vectors)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list with one entry per argument of fun, e.g. "
                            f"hessian_vector_product(f, [x], [v]) for f(x); got "
                            f"{_kind(value)}")
    args, vectors = tuple(args), tuple(vectors)
    if len(vectors) != len(args):
        raise ValueError(f"vectors must hold one entry per argument: got {len(vectors)} for "
                         f"{len(args)} arguments")
    return grad(_gradient_along(fun, vectors), tuple(range(len(args))))(*args)


def _gradient_along(fun, directions):
    """``(*args) -> <grad fun(*args), directions>``: a scalar that autograd can differentiate."""
    argnums = tuple(range(len(directions)))

    def directional_derivative(*args):
        gradients = grad(fun, argnums)(*args)
        return ops.sum(ops.multiply(flatten(tuple(gradients))[0], flatten(directions)[0]))
    return directional_derivative


def _random_directions(args, seed):
    """Standard normal arrays with the structure, shapes and dtypes of ``args``."""
    rng = numpy.random.default_rng(seed)
    return tree_map(lambda leaf: backend.asarray(
        rng.standard_normal(leaf.shape).astype(leaf.dtype)), tuple(args))


def _check_first_order(fun, args, rtol, atol, eps, level):
    """Raise ``AssertionError`` unless autograd's gradient of ``fun`` matches central
    differences; ``level`` is the order of ``fun``'s derivative this checks."""
    analytic = grad(fun, tuple(range(len(args))))(*args)
    numerical = numerical_grad(lambda packed: fun(*packed), tuple(args), eps)
    names = _entry_names(tuple(args), [f"argument {i}" for i in range(len(args))])
    analytic_flat = backend.to_numpy(flatten(tuple(analytic))[0])
    numerical_flat = backend.to_numpy(flatten(tuple(numerical))[0])
    difference = abs(analytic_flat - numerical_flat)
    allowed = atol + rtol * abs(numerical_flat)
    if (difference <= allowed).all():
        return
    worst = int((difference / allowed).argmax())  # the entry furthest outside its tolerance
    a, n = float(analytic_flat[worst]), float(numerical_flat[worst])
    what = "gradient check" if level == 1 else f"order-{level} derivative check"
    raise AssertionError(
        f"{what} failed at {names[worst]}: autograd gives {a:.10g}, central "
        f"differences give {n:.10g} (|difference| {abs(a - n):.3g}, relative error "
        f"{abs(a - n) / max(abs(n), 1e-300):.3g}; allowed atol={atol:g} + rtol={rtol:g} "
        f"* |numerical|); {int((difference > allowed).sum())} of {len(names)} entries fail")


def relative_error(x, y, floor=1e-6):
    """The largest entrywise relative difference of two arrays (or pytrees) of the same shape.

    Entry i contributes |x_i - y_i| / max(|x_i|, |y_i|, floor * m), where m is the largest
    magnitude in x and y: entries a million times smaller than the largest one (exact zeros
    included) are measured against that level instead of dividing by (almost) zero.
    """
    x_flat = backend.to_numpy(flatten(x)[0])
    y_flat = backend.to_numpy(flatten(y)[0])
    if x_flat.shape != y_flat.shape:
        raise ValueError(f"relative_error needs equal shapes, got {x_flat.shape} and "
                         f"{y_flat.shape}")
    if x_flat.size == 0:
        return 0.0
    magnitude = abs(x_flat).clip(min=abs(y_flat))
    largest = float(magnitude.max())
    if largest == 0.0:
        return 0.0
    return float((abs(x_flat - y_flat) / magnitude.clip(min=floor * largest)).max())


MODES = ("adjoint", "backprop", "finite differences")
_PAIRS = (("adjoint", "finite differences"), ("backprop", "finite differences"),
          ("adjoint", "backprop"))


@dataclass
class GradientComparison:
    """The gradients of one odeint problem computed three ways, from `compare_gradients`.

    ``gradients[mode][wrt]``: mode is "adjoint", "backprop" or "finite differences"; wrt is
    "y0", "t" or "params" (the latter in the structure of ``params``). ``errors[(m1, m2)][wrt]``
    is `relative_error` between two modes. ``stats`` holds the forward and backward counts of
    the adjoint gradient computation.
    """

    gradients: dict
    errors: dict
    stats: SolverStats = field(default_factory=SolverStats)

    def max_relative_error(self, pair=None):
        """The largest relative difference over all arguments, for one pair of modes or all."""
        pairs = [pair] if pair is not None else list(self.errors)
        return max(value for p in pairs for value in self.errors[p].values())

    def format_table(self, entries=False, max_rows=30):
        """A Markdown table of the comparison.

        By default one row per argument (y0, t, params) with the largest relative difference of
        each pair of modes. With ``entries=True``, one row per gradient entry (at most
        ``max_rows``) with the three values and the largest relative difference among them.
        """
        if not entries:
            rows = ["| gradient w.r.t. | entries | adjoint vs FD | backprop vs FD | "
                    "adjoint vs backprop |", "|---|---:|---:|---:|---:|"]
            for wrt, value in self.gradients["adjoint"].items():
                size = len(_entry_names((value,), [wrt]))
                errors = " | ".join(f"{self.errors[pair][wrt]:.2e}" for pair in _PAIRS)
                rows.append(f"| {wrt} | {size} | {errors} |")
            return "\n".join(rows)
        rows = ["| entry | adjoint | backprop | finite differences | max rel. difference |",
                "|---|---:|---:|---:|---:|"]
        wrts = list(self.gradients["adjoint"])
        names = _entry_names(tuple(self.gradients["adjoint"][w] for w in wrts), wrts)
        columns = [backend.to_numpy(flatten(tuple(self.gradients[m][w] for w in wrts))[0])
                   for m in MODES]
        for i, name in enumerate(names[:max_rows]):
            values = [float(column[i]) for column in columns]
            spread = (max(values) - min(values)) / max(max(abs(v) for v in values), 1e-300)
            rows.append(f"| {name} | " + " | ".join(f"{v:.10g}" for v in values)
                        + f" | {spread:.2e} |")
        if len(names) > max_rows:
            rows.append(f"| ... {len(names) - max_rows} more entries | | | | |")
        return "\n".join(rows)


def compare_gradients(loss_of_ys, func, y0, t, params=None, *, eps=1e-6, fd_options=None,
                      **odeint_options):
    """Differentiate ``loss_of_ys(odeint(func, y0, t, params, ...))`` three ways.

    The gradients w.r.t. ``y0``, every entry of ``t`` and ``params`` (when not None) come from
    ``grad="adjoint"``, ``grad="backprop"`` and central differences (`numerical_grad`, step
    ``eps``) of the forward solve. ``odeint_options`` (method, rtol, atol, step_size,
    adjoint_* options, seminorm, ...) are passed to all three; ``fd_options`` overrides them for
    the finite differences only (e.g. a tighter tolerance for the reference). Returns a
    `GradientComparison`; print ``result.format_table()`` for the three-way table.
    """
    for reserved in ("grad", "stats"):
        if reserved in odeint_options:
            raise ValueError(f"compare_gradients sets {reserved}= itself; do not pass it")
    wrts = ("y0", "t") if params is None else ("y0", "t", "params")
    inputs = (y0, t) if params is None else (y0, t, params)
    stats = SolverStats()

    def loss(mode, options, stats=None):
        def of_inputs(*values):
            solution = odeint(func, values[0], values[1], values[2] if params is not None
                              else None, grad=mode, stats=stats, **options)
            return loss_of_ys(solution)
        return of_inputs

    argnums = tuple(range(len(inputs)))
    gradients = {
        "adjoint": grad(loss("adjoint", odeint_options, stats), argnums)(*inputs),
        "backprop": grad(loss("backprop", odeint_options), argnums)(*inputs),
        "finite differences": numerical_grad(
            lambda packed: loss("backprop", {**odeint_options, **(fd_options or {})})(*packed),
            tuple(inputs), eps),
    }
    gradients = {mode: dict(zip(wrts, values)) for mode, values in gradients.items()}
    errors = {pair: {wrt: relative_error(gradients[pair[0]][wrt], gradients[pair[1]][wrt])
                     for wrt in wrts} for pair in _PAIRS}
    return GradientComparison(gradients, errors, stats)


def _check_float64(args):
    """Refuse floating-point leaves narrower than float64 (central differences need float64)."""
    for i, arg in enumerate(args):
        for path, leaf in tree_paths(arg, f"argument {i}"):
            dtype = getattr(leaf, "dtype", None)
            if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8:
                raise ValueError(f"check_grads needs float64 inputs for central differences, "
                                 f"got {dtype} for {path}: pass it as .astype('float64')")


def _kind(value):
    """A value's type, with its shape when it has one, for error messages."""
    shape = getattr(value, "shape", None)
    return type(value).__name__ + ("" if shape is None else f" of shape {tuple(shape)}")


def _scalar(value):
    """A scalar result (Python number or 0-d/size-1 array of any backend) as a float."""
    host = backend.to_numpy(value)
    if host.size != 1:
        raise ValueError(f"the function must return a scalar, got shape {host.shape}")
    return float(host.reshape(()))


def _entry_names(tree, prefixes):
    """A readable name for every entry of ``tree`` (a tuple with one subtree per prefix), in
    the order of `minode.tree.flatten`: e.g. ``argument 1['W'][0, 2]``."""
    names = []
    for prefix, subtree in zip(prefixes, tree):
        for path, leaf in tree_paths(subtree, prefix):
            shape = tuple(leaf.shape)
            if not shape:
                names.append(path)
                continue
            for flat in range(int(leaf.size)):
                index = _unravel(flat, shape)
                names.append(f"{path}[{', '.join(str(i) for i in index)}]")
    return names


def _unravel(flat, shape):
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))

