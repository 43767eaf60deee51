"""One table of primitive test cases, shared by the NumPy, strict-backend and CuPy tests.

Each `OpCase` pairs a minode function with an independent ``autograd.numpy`` reference (its
gradient comes from autograd's own VJPs) and float64 inputs. Gradients are those of the scalar
``sum(output * cotangent)`` for a fixed random cotangent, w.r.t. the inputs in ``argnums``.
Second derivatives are those of the same scalar with the cotangent as one more argument, so
that they differentiate each VJP with respect to the inputs and to the cotangent it is given.
"""
from dataclasses import dataclass

import autograd.numpy as anp
import numpy
from autograd import grad
from autograd.scipy.special import logsumexp as anp_logsumexp

from minode import backend, ops
from minode.gradcheck import hessian_vector_product
from minode.ops.linalg import _matmul

_rng = numpy.random.default_rng(20180619)


def normal(*shape):
    return _rng.standard_normal(shape)


def positive(*shape):
    return _rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    """Entries with |x| in [0.2, 1.5]: far from the kinks of relu and abs at 0."""
    return _rng.uniform(0.2, 1.5, shape) * _rng.choice([-1.0, 1.0], shape)


@dataclass
class OpCase:
    name: str
    function: object  # minode: (*inputs) -> array
    reference: object  # autograd.numpy: (*inputs) -> array
    inputs: tuple  # NumPy arrays (float64 unless an index or a mask) and Python numbers
    argnums: tuple  # inputs to differentiate

    def __str__(self):
        return self.name


def case(name, function, reference, *inputs, argnums=None):
    if argnums is None:
        argnums = tuple(i for i, x in enumerate(inputs)
                        if isinstance(x, numpy.ndarray) and x.dtype.kind == "f")
    return OpCase(name, function, reference, inputs, argnums)


# ----------------------------------------------------------------------------- references

def _window(start, count, stride):
    return slice(start, start + stride * (count - 1) + 1, stride)


def _patches(x, kh, kw, stride, padding):
    """The (N, C, H_out, W_out) slices of the padded x, one per kernel offset (i, j)."""
    padded = anp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), "constant")
    h_out = (x.shape[2] + 2 * padding - kh) // stride + 1
    w_out = (x.shape[3] + 2 * padding - kw) // stride + 1
    return [[padded[:, :, _window(i, h_out, stride), _window(j, w_out, stride)]
             for j in range(kw)] for i in range(kh)]


def conv2d_reference(x, w, stride, padding):
    """Direct sum over kernel offsets: out[n,o] = sum_{c,i,j} w[o,c,i,j] x_pad[n,c,..]."""
    patches = _patches(x, w.shape[2], w.shape[3], stride, padding)
    return sum(anp.einsum("nchw,oc->nohw", patches[i][j], w[:, :, i, j])
               for i in range(w.shape[2]) for j in range(w.shape[3]))


def im2col_reference(x, kernel_size, stride, padding):
    """Rows (c, i, j), columns (p, q, n), as documented in minode.ops.conv.im2col."""
    kh, kw = kernel_size
    patches = _patches(x, kh, kw, stride, padding)
    stacked = anp.stack([patch for row in patches for patch in row])  # (kh*kw, N, C, Ho, Wo)
    columns = anp.transpose(stacked, (2, 0, 3, 4, 1))  # (C, kh*kw, Ho, Wo, N)
    return anp.reshape(columns, (x.shape[1] * kh * kw, -1))


def avg_pool2d_reference(x, size):
    h_out, w_out = x.shape[2] // size, x.shape[3] // size
    return sum(x[:, :, _window(i, h_out, size), _window(j, w_out, size)]
               for i in range(size) for j in range(size)) / size ** 2


def group_norm_reference(x, groups):
    grouped = anp.reshape(x, (x.shape[0], groups, -1))
    centered = grouped - anp.mean(grouped, axis=-1, keepdims=True)
    variance = anp.mean(centered ** 2, axis=-1, keepdims=True)
    return anp.reshape(centered / anp.sqrt(variance + 1e-5), x.shape)


def log_softmax_reference(x, axis=-1):
    return x - anp_logsumexp(x, axis=axis, keepdims=True)


def cross_entropy_reference(logits, labels):
    return -anp.mean(log_softmax_reference(logits)[anp.arange(len(labels)), labels])


def gaussian_reference(x, mean, log_var):
    return -0.5 * (anp.log(2 * anp.pi) + log_var + (x - mean) ** 2 / anp.exp(log_var))


def kl_reference(mean, log_var):
    return 0.5 * anp.sum(anp.exp(log_var) + mean ** 2 - 1 - log_var, axis=-1)


def device_index(*indices):
    """An integer index array on the active backend (as GPU code would build it)."""
    return backend.asarray(numpy.array(indices))


# ----------------------------------------------------------------------------- the table

CASES = [
    # Elementwise, with broadcasting and scalar operands.
    case("add-broadcast-(3,1,4)+(5,4)", ops.add, anp.add, normal(3, 1, 4), normal(5, 4)),
    case("add-0d-array", ops.add, anp.add, normal(), normal(2, 3)),
    case("add-python-scalar", lambda x: ops.add(x, 1.5), lambda x: x + 1.5, normal(2, 3)),
    case("subtract-broadcast", ops.subtract, anp.subtract, normal(4, 1), normal(1, 3)),
    case("subtract-python-scalar-left", lambda x: ops.subtract(2.0, x), lambda x: 2.0 - x,
         normal(3)),
    case("multiply-broadcast", ops.multiply, anp.multiply, normal(3, 1, 4), normal(5, 4)),
    case("multiply-python-scalar-left", lambda x: ops.multiply(2.5, x), lambda x: 2.5 * x,
         normal(2, 3)),
    case("divide-broadcast", ops.divide, anp.divide, normal(2, 3), positive(3)),
    case("divide-python-scalar-left", lambda x: ops.divide(1.0, x), lambda x: 1.0 / x,
         positive(2, 3)),
    case("power-array-exponent", ops.power, anp.power, positive(2, 3), normal(3)),
    case("power-int-exponent", lambda x: ops.power(x, 3), lambda x: x ** 3, normal(2, 3)),
    case("negative", ops.negative, anp.negative, normal(4)),
    case("square", ops.square, anp.square, normal(2, 3)),
    case("sqrt", ops.sqrt, anp.sqrt, positive(2, 3)),
    case("absolute", ops.absolute, anp.abs, away_from_zero(2, 3)),
    case("exp", ops.exp, anp.exp, normal(2, 3)),
    case("log", ops.log, anp.log, positive(2, 3)),
    case("tanh", ops.tanh, anp.tanh, normal(2, 3)),
    case("sin", ops.sin, anp.sin, 3 * normal(2, 3)),
    case("cos", ops.cos, anp.cos, 3 * normal(2, 3)),
    case("sigmoid", ops.sigmoid, lambda x: 1 / (1 + anp.exp(-x)), 3 * normal(2, 3)),
    case("relu", ops.relu, lambda x: anp.maximum(x, 0), away_from_zero(2, 3)),
    case("elu", ops.elu, lambda x: anp.where(x > 0, x, anp.exp(x) - 1), away_from_zero(2, 3)),
    case("softplus", ops.softplus, lambda x: anp.logaddexp(0, x), 3 * normal(2, 3)),
    # (autograd's own where VJP does not undo broadcasting, so the reference blends instead)
    case("where-broadcast", ops.where, lambda mask, x, y: mask * x + (1 - mask) * y,
         _rng.uniform(size=(2, 3)) > 0.5, normal(2, 3), normal(3)),
    case("astype-float64", lambda x: ops.astype(x, "float64"), lambda x: x.astype("float64"),
         normal(2, 3)),
    # Reductions.
    case("sum-all", ops.sum, anp.sum, normal(2, 3)),
    case("sum-axis1", lambda x: ops.sum(x, 1), lambda x: anp.sum(x, 1), normal(2, 3, 4)),
    case("sum-axes-keepdims", lambda x: ops.sum(x, (0, 2), keepdims=True),
         lambda x: anp.sum(x, (0, 2), keepdims=True), normal(2, 3, 4)),
    case("mean-all", ops.mean, anp.mean, normal(2, 3)),
    case("mean-negative-axis-keepdims", lambda x: ops.mean(x, -1, keepdims=True),
         lambda x: anp.mean(x, -1, keepdims=True), normal(2, 3, 4)),
    case("mean-axes", lambda x: ops.mean(x, (0, 2)), lambda x: anp.mean(x, (0, 2)),
         normal(2, 3, 4)),
    case("logsumexp-last", ops.logsumexp, lambda x: anp_logsumexp(x, axis=-1), normal(2, 5)),
    case("logsumexp-axis0-keepdims", lambda x: ops.logsumexp(x, 0, keepdims=True),
         lambda x: anp_logsumexp(x, axis=0, keepdims=True), normal(3, 4)),
    case("logsumexp-all", lambda x: ops.logsumexp(x, None), anp_logsumexp, normal(3, 4)),
    # Shapes and indexing.
    case("reshape", lambda x: ops.reshape(x, (6, -1)), lambda x: anp.reshape(x, (6, -1)),
         normal(2, 3, 4)),
    case("ravel", ops.ravel, anp.ravel, normal(2, 3)),
    case("transpose-reverse", ops.transpose, anp.transpose, normal(2, 3, 4)),
    case("transpose-axes", lambda x: ops.transpose(x, (1, 2, 0)),
         lambda x: anp.transpose(x, (1, 2, 0)), normal(2, 3, 4)),
    case("swapaxes", lambda x: ops.swapaxes(x, 0, 2), lambda x: anp.swapaxes(x, 0, 2),
         normal(2, 3, 4)),
    case("getitem-basic", lambda x: ops.getitem(x, (1, slice(None, None, -2))),
         lambda x: x[1, ::-2], normal(3, 5)),
    case("getitem-int", lambda x: ops.getitem(x, -1), lambda x: x[-1], normal(3, 5)),
    case("getitem-repeated-int-array", lambda x: ops.getitem(x, device_index(0, 2, 0, 0)),
         lambda x: x[numpy.array([0, 2, 0, 0])], normal(3, 2)),
    case("getitem-repeated-int-array-axis1",
         lambda x: ops.getitem(x, (slice(None), device_index(1, 1, 0))),
         lambda x: x[:, numpy.array([1, 1, 0])], normal(2, 3)),
    case("window", lambda x: ops.window(x, 3, (2, 3)), lambda x: anp.reshape(x[3:9], (2, 3)),
         normal(10)),
    case("concatenate-axis0", lambda a, b: ops.concatenate([a, b]),
         lambda a, b: anp.concatenate([a, b]), normal(2, 3), normal(1, 3)),
    case("concatenate-axis-1", lambda a, b, c: ops.concatenate([a, b, c], axis=-1),
         lambda a, b, c: anp.concatenate([a, b, c], axis=-1),
         normal(2, 1), normal(2, 3), normal(2, 2)),
    case("stack-axis1", lambda a, b: ops.stack([a, b], axis=1),
         lambda a, b: anp.stack([a, b], axis=1), normal(2, 3), normal(2, 3)),
    # Matrix products.
    case("matmul-2d", ops.matmul, anp.matmul, normal(3, 4), normal(4, 2)),
    case("matmul-batched-broadcast", ops.matmul, anp.matmul, normal(2, 1, 3, 4), normal(5, 4, 2)),
    case("matmul-1d-2d", ops.matmul, anp.matmul, normal(4), normal(4, 2)),
    case("matmul-2d-1d", ops.matmul, anp.matmul, normal(3, 4), normal(4)),
    case("matmul-1d-1d", ops.matmul, anp.matmul, normal(4), normal(4)),
    # The primitive's transposed operands, which VJPs of VJPs use.
    case("linear-1d", ops.linear, lambda x, w, b: anp.matmul(x, w.T) + b,
         normal(4), normal(3, 4), normal(3)),
    case("linear-2d", ops.linear, lambda x, w, b: anp.matmul(x, w.T) + b,
         normal(5, 4), normal(3, 4), normal(3)),
    case("linear-batched", ops.linear, lambda x, w, b: anp.matmul(x, w.T) + b,
         normal(2, 5, 4), normal(3, 4), normal(3)),
    case("matmul-transpose-a", lambda a, b: _matmul(a, b, True, False),
         lambda a, b: anp.matmul(anp.swapaxes(a, -1, -2), b), normal(2, 4, 3), normal(4, 2)),
    case("matmul-transpose-b", lambda a, b: _matmul(a, b, False, True),
         lambda a, b: anp.matmul(a, anp.swapaxes(b, -1, -2)), normal(3, 4), normal(5, 2, 4)),
    case("matmul-transpose-both", lambda a, b: _matmul(a, b, True, True),
         lambda a, b: anp.matmul(anp.swapaxes(a, -1, -2), anp.swapaxes(b, -1, -2)),
         normal(1, 4, 3), normal(2, 2, 4)),
    # Convolution and pooling.
    case("conv2d-stride1-pad0", lambda x, w: ops.conv2d(x, w),
         lambda x, w: conv2d_reference(x, w, 1, 0), normal(2, 3, 5, 5), normal(4, 3, 3, 3)),
    case("conv2d-stride1-pad1", lambda x, w: ops.conv2d(x, w, 1, 1),
         lambda x, w: conv2d_reference(x, w, 1, 1), normal(2, 3, 4, 5), normal(2, 3, 3, 3)),
    case("conv2d-stride2-pad1-odd", lambda x, w: ops.conv2d(x, w, stride=2, padding=1),
         lambda x, w: conv2d_reference(x, w, 2, 1), normal(2, 2, 7, 5), normal(3, 2, 3, 3)),
    case("conv2d-batch1-stride2-pad2-rect-kernel", lambda x, w: ops.conv2d(x, w, 2, 2),
         lambda x, w: conv2d_reference(x, w, 2, 2), normal(1, 2, 5, 6), normal(3, 2, 2, 3)),
    case("conv2d-1x1-stride3", lambda x, w: ops.conv2d(x, w, 3, 0),
         lambda x, w: conv2d_reference(x, w, 3, 0), normal(2, 3, 7, 7), normal(2, 3, 1, 1)),
    case("im2col-stride2-pad1", lambda x: ops.im2col(x, (3, 2), 2, 1),
         lambda x: im2col_reference(x, (3, 2), 2, 1), normal(2, 2, 5, 4)),
    case("avg_pool2d-2", lambda x: ops.avg_pool2d(x, 2),
         lambda x: avg_pool2d_reference(x, 2), normal(2, 3, 4, 6)),
    case("avg_pool2d-2-odd-crop", lambda x: ops.avg_pool2d(x, 2),
         lambda x: avg_pool2d_reference(x, 2), normal(1, 2, 7, 5)),
    case("global_avg_pool", ops.global_avg_pool, lambda x: anp.mean(x, axis=(2, 3)),
         normal(2, 3, 5, 3)),
    # Group normalisation.
    case("group_norm-2-groups", lambda x: ops.group_norm(x, 2),
         lambda x: group_norm_reference(x, 2), normal(2, 4, 3, 3)),
    case("group_norm-1-group-batch1", lambda x: ops.group_norm(x, 1),
         lambda x: group_norm_reference(x, 1), normal(1, 4, 3, 2)),
    case("group_norm-per-channel", lambda x: ops.group_norm(x, 3),
         lambda x: group_norm_reference(x, 3), normal(2, 3, 3, 3)),
    case("group_norm-2d-features", lambda x: ops.group_norm(x, 3),
         lambda x: group_norm_reference(x, 3), normal(3, 6)),
    # Losses.
    case("log_softmax-last", ops.log_softmax, log_softmax_reference, normal(3, 5)),
    case("log_softmax-axis0", lambda x: ops.log_softmax(x, 0),
         lambda x: log_softmax_reference(x, 0), normal(3, 5)),
    case("cross_entropy", ops.cross_entropy, cross_entropy_reference,
         normal(4, 5), numpy.array([0, 4, 4, 2])),
    case("mean_squared_error", ops.mean_squared_error,
         lambda p, t: anp.mean((p - t) ** 2), normal(3, 4), normal(3, 4)),
    case("mean_absolute_error", ops.mean_absolute_error,
         lambda p, t: anp.mean(anp.abs(p - t)), normal(3, 4), normal(3, 4)),
    case("gaussian_log_likelihood-broadcast-log_var", ops.gaussian_log_likelihood,
         gaussian_reference, normal(3, 4), normal(3, 4), normal(4)),
    case("gaussian_log_likelihood-number-log_var",
         lambda x, m: ops.gaussian_log_likelihood(x, m, -1.0),
         lambda x, m: gaussian_reference(x, m, -1.0), normal(3, 4), normal(3, 4)),
    case("kl_diag_gaussian_to_standard", ops.kl_diag_gaussian_to_standard, kl_reference,
         normal(3, 4), normal(3, 4)),
]


def cotangent_for(shape):
    """A fixed random cotangent (the gradient of the output) for an output of ``shape``."""
    return numpy.random.default_rng(list(shape) + [7]).standard_normal(shape)


def direction_for(shape):
    """A fixed random direction for a Hessian-vector product, for an input of ``shape``."""
    return numpy.random.default_rng(list(shape) + [11]).standard_normal(shape)


def on_backend(x):
    return backend.asarray(x) if isinstance(x, numpy.ndarray) else x


def loss_of(function, op, args, argnums, cotangent):
    """``(*differentiable_args) -> sum(function(*args) * cotangent)`` with ``op`` the module
    (``minode.ops`` or ``autograd.numpy``) that takes the sum."""
    def loss(*diff_args):
        full = list(args)
        for position, value in zip(argnums, diff_args):
            full[position] = value
        output = function(*full)
        return op.sum(op.multiply(output, cotangent))
    return loss


def loss_with_cotangent(function, op, args, argnums):
    """`loss_of` with the cotangent as its last argument: ``(*differentiable_args, cotangent)``."""
    def loss(*values):
        return loss_of(function, op, args, argnums, values[-1])(*values[:-1])
    return loss


def second_order_inputs(c, args, output_shape, convert):
    """The differentiable inputs of case ``c`` and its cotangent, and a direction for each."""
    inputs = [args[i] for i in c.argnums] + [convert(cotangent_for(output_shape))]
    return inputs, [convert(direction_for(x.shape)) for x in inputs]


def minode_second_order(c):
    """The Hessian-vector product of case ``c`` (w.r.t. its inputs and the cotangent) on the
    active backend."""
    args = [on_backend(x) for x in c.inputs]
    inputs, directions = second_order_inputs(c, args, c.function(*args).shape, on_backend)
    return hessian_vector_product(loss_with_cotangent(c.function, ops, args, c.argnums), inputs,
                                  directions)


def reference_second_order(c):
    """The same Hessian-vector product of case ``c``'s autograd.numpy reference."""
    inputs, directions = second_order_inputs(c, c.inputs, numpy.shape(c.reference(*c.inputs)),
                                             lambda x: x)
    return hessian_vector_product(loss_with_cotangent(c.reference, anp, c.inputs, c.argnums),
                                  inputs, directions)


def minode_result(c):
    """Output and gradients of case ``c`` on the active backend (arrays of that backend)."""
    args = [on_backend(x) for x in c.inputs]
    output = c.function(*args)
    loss = loss_of(c.function, ops, args, c.argnums, on_backend(cotangent_for(output.shape)))
    grads = grad(loss, tuple(range(len(c.argnums))))(*[args[i] for i in c.argnums])
    return output, grads


def reference_result(c):
    """Output and gradients of case ``c``'s autograd.numpy reference (NumPy arrays)."""
    output = c.reference(*c.inputs)
    loss = loss_of(c.reference, anp, c.inputs, c.argnums, cotangent_for(numpy.shape(output)))
    grads = grad(loss, tuple(range(len(c.argnums))))(*[c.inputs[i] for i in c.argnums])
    return output, grads


def host(x):
    """A plain NumPy copy of an array of any backend."""
    return numpy.asarray(backend.to_numpy(x))


def result_on(backend_name, c):
    """`minode_result` of case ``c`` computed on ``backend_name``, copied to NumPy arrays."""
    previous = backend.set_backend(backend_name)
    try:
        output, grads = minode_result(c)
        return host(output), [host(g) for g in grads]
    finally:
        backend.set_backend(previous)


def second_order_on(backend_name, c):
    """`minode_second_order` of case ``c`` computed on ``backend_name``, copied to NumPy."""
    previous = backend.set_backend(backend_name)
    try:
        return [host(g) for g in minode_second_order(c)]
    finally:
        backend.set_backend(previous)


def max_relative_difference(arrays, expected_arrays):
    """The largest |a - b| / max(|b|, 1e-12) over matching entries of two lists of arrays."""
    return max(float((abs(a - b) / numpy.maximum(abs(b), 1e-12)).max(initial=0.0))
               for a, b in zip(arrays, expected_arrays))
