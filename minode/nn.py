"""Functional neural-network layers: parameters are plain pytrees, a layer is init + apply.

``init_*(rng, sizes..., dtype="float64")`` draws parameters with a ``numpy.random.Generator``
and returns them as a dict of arrays of the active backend; the matching apply function takes
``(params, x)``. A size that is not a positive integer raises ``ValueError`` naming it, an
``rng`` that is not a Generator ``TypeError``. A model is an ordinary Python function of
(params, inputs), so autograd can differentiate it with respect to the whole parameter tree,
and `flatten` turns the tree into one vector (for an ODE solver's augmented state, say) and
back.

Initialisations follow PyTorch's defaults, so results are comparable with torchdiffeq examples.
"""
import math

import numpy

from minode import backend, ops
from minode.checks import check_positive_int
from minode.tree import flatten, tree_leaves, tree_map

__all__ = ["init_linear", "linear", "init_mlp", "mlp", "init_conv2d", "conv2d",
           "init_concat_conv2d", "concat_conv2d", "init_group_norm", "group_norm",
           "init_conv_ode_func", "conv_ode_func", "init_gru_cell", "gru_cell", "gru",
           "count_params", "flatten", "tree_leaves", "tree_map"]


def _uniform(rng, bound, shape, dtype):
    """U(-bound, bound) samples as a backend array."""
    if not isinstance(rng, numpy.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, e.g. "
                        f"numpy.random.default_rng(0), got {type(rng).__name__}")
    return backend.asarray(rng.uniform(-bound, bound, size=shape).astype(dtype))


def _check_last_axis(name, x, size, layer):
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{layer}: {name} must have {size} entries on its last axis, got "
                         f"shape {x.shape}")


def _check_channels(x, channels, layer):
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{layer}: x must be (N, {channels}, H, W), got shape {x.shape}")


# ----------------------------------------------------------------------------- Linear and MLP

def init_linear(rng, n_in, n_out, dtype="float64"):
    """Parameters of `linear`: ``{"w": (n_out, n_in), "b": (n_out,)}``.

    Both U(-k, k) with k = 1/sqrt(n_in), PyTorch's default for ``nn.Linear``.
    """
    check_positive_int("n_in", n_in)
    check_positive_int("n_out", n_out)
    bound = 1 / math.sqrt(n_in)
    return {"w": _uniform(rng, bound, (n_out, n_in), dtype),
            "b": _uniform(rng, bound, (n_out,), dtype)}


def linear(params, x):
    """``x @ w.T + b`` for ``x`` of shape (..., n_in); returns (..., n_out)."""
    _check_last_axis("x", x, params["w"].shape[1], "linear")
    return ops.linear(x, params["w"], params["b"])


def init_mlp(rng, sizes, dtype="float64"):
    """Parameters of `mlp`: a list of `init_linear` dicts, ``sizes = [n_in, hidden..., n_out]``,
    each a positive integer (``ValueError`` names the first that is not)."""
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise ValueError(f"init_mlp: sizes must be a list [n_in, hidden..., n_out] of at least "
                         f"an input and an output size, got {sizes!r}")
    for i, size in enumerate(sizes):
        check_positive_int(f"sizes[{i}]", size)
    return [init_linear(rng, n_in, n_out, dtype) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def mlp(params, x, activation=ops.tanh):
    """Linear layers with ``activation`` between them (none after the last)."""
    for layer in params[:-1]:
        x = activation(linear(layer, x))
    return linear(params[-1], x)


# ----------------------------------------------------------------------------- Convolutions

def init_conv2d(rng, c_in, c_out, kernel_size, dtype="float64"):
    """Parameters of `conv2d`: ``w`` (c_out, c_in, k, k) and ``b`` (c_out,).

    Both U(-k, k) with k = 1/sqrt(c_in * k * k): PyTorch's default ("kaiming uniform" with
    a = sqrt(5)), which keeps the output variance near a third of the input's.
    """
    for name, size in (("c_in", c_in), ("c_out", c_out), ("kernel_size", kernel_size)):
        check_positive_int(name, size)
    bound = 1 / math.sqrt(c_in * kernel_size * kernel_size)
    return {"w": _uniform(rng, bound, (c_out, c_in, kernel_size, kernel_size), dtype),
            "b": _uniform(rng, bound, (c_out,), dtype)}


def conv2d(params, x, stride=1, padding=0):
    """`minode.ops.conv2d` of NCHW ``x`` with ``params["w"]``, plus the bias per channel."""
    _check_channels(x, params["w"].shape[1], "conv2d")
    out = ops.conv2d(x, params["w"], stride, padding)
    # ops.add, not +: on NumPy a traced + sums the bias gradient with autograd's unbroadcast,
    # one axis at a time, which rounds differently from minode's sum_to over (N, H, W) at once
    # and would move the MNIST tutorial's numbers. group_norm's scale and shift likewise.
    return ops.add(out, ops.reshape(params["b"], (1, -1, 1, 1)))


def init_concat_conv2d(rng, c_in, c_out, kernel_size, dtype="float64"):
    """Parameters of `concat_conv2d`: a `conv2d` with one extra input channel for time."""
    return init_conv2d(rng, c_in + 1, c_out, kernel_size, dtype)


def concat_conv2d(params, t, x, stride=1, padding=0):
    """`conv2d` of ``x`` with a constant channel holding the time ``t`` put in front.

    The time-dependent convolution of the paper's MNIST ODE-Net (torchdiffeq's ``ConcatConv2d``):
    the dynamics f(h(t), t) see t as an extra image channel. ``t`` is a number or 0-d array.
    """
    _check_channels(x, params["w"].shape[1] - 1, "concat_conv2d")
    n, _, h, w = x.shape
    ones = backend.xp.ones((n, 1, h, w), dtype=x.dtype)
    time_channel = ops.multiply(ones, ops.astype(t, x.dtype) if hasattr(t, "shape") else t)
    return conv2d(params, ops.concatenate([time_channel, x], axis=1), stride, padding)


# ----------------------------------------------------------------------------- Normalisation

def init_group_norm(rng, num_channels, dtype="float64"):
    """Parameters of `group_norm`: ``scale`` ones and ``shift`` zeros, shape (num_channels,).

    ``rng`` is unused (the layer starts as the identity affine map); every ``init_*`` takes it
    so that they can be called alike.
    """
    check_positive_int("num_channels", num_channels)
    xp = backend.xp
    return {"scale": xp.ones(num_channels, dtype=dtype),
            "shift": xp.zeros(num_channels, dtype=dtype)}


def group_norm(params, x, groups, eps=1e-5):
    """`minode.ops.group_norm` of ``x`` (N, C, ...) followed by a per-channel scale and shift."""
    channels = params["scale"].shape[0]
    if x.ndim < 2 or x.shape[1] != channels:
        raise ValueError(f"group_norm: x must be (N, {channels}, ...), got shape {x.shape}")
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    normalized = ops.group_norm(x, groups, eps)
    return ops.add(ops.multiply(normalized, ops.reshape(params["scale"], per_channel)),
                   ops.reshape(params["shift"], per_channel))


# ----------------------------------------------------------------------------- The paper's conv ODE

def init_conv_ode_func(rng, channels, dtype="float64", time_channel=True):
    """Parameters of `conv_ode_func`: three group norms and two 3x3 convolutions.

    With ``time_channel`` (the ODE-Net's f(h, t)) the convolutions are `concat_conv2d`s, which
    see t as an extra input channel; without it they are plain `conv2d`s, the residual branch
    f(h) of a ResNet block h <- h + f(h) (the paper's ResNet baseline in Table 1).
    """
    init_conv = init_concat_conv2d if time_channel else init_conv2d
    return {"norm1": init_group_norm(rng, channels, dtype),
            "conv1": init_conv(rng, channels, channels, 3, dtype),
            "norm2": init_group_norm(rng, channels, dtype),
            "conv2": init_conv(rng, channels, channels, 3, dtype),
            "norm3": init_group_norm(rng, channels, dtype)}


def conv_ode_func(y, t, params, groups=None):
    """dy/dt of the paper's MNIST ODE-Net block, as ``func(y, t, params)`` for `minode.odeint`.

    GroupNorm -> ReLU -> ConcatConv3x3 -> GroupNorm -> ReLU -> ConcatConv3x3 -> GroupNorm, all
    with padding 1 so the state keeps its (N, C, H, W) shape (torchdiffeq's ``ODEfunc`` in
    ``examples/odenet_mnist.py``). ``groups`` defaults to min(32, C), as there. Parameters from
    ``init_conv_ode_func(..., time_channel=False)`` give the same block without the time channel
    (``t`` is then ignored and may be None).
    """
    groups = min(32, y.shape[1]) if groups is None else groups
    out = ops.relu(group_norm(params["norm1"], y, groups))
    out = ops.relu(group_norm(params["norm2"], _conv3x3(params["conv1"], t, out), groups))
    return group_norm(params["norm3"], _conv3x3(params["conv2"], t, out), groups)


def _conv3x3(params, t, x):
    """`concat_conv2d` when the weights have one input channel more than ``x``, else `conv2d`."""
    if params["w"].shape[1] == x.shape[1] + 1:
        return concat_conv2d(params, t, x, 1, 1)
    return conv2d(params, x, 1, 1)


# ----------------------------------------------------------------------------- GRU

def init_gru_cell(rng, n_in, n_hidden, dtype="float64"):
    """Parameters of `gru_cell`, PyTorch's layout and init (all U(-k, k), k = 1/sqrt(n_hidden)).

    ``w_ih`` (3H, n_in) and ``w_hh`` (3H, H) stack the reset, update and candidate gates' weights
    in that order; ``b_ih``, ``b_hh`` (3H,).
    """
    check_positive_int("n_in", n_in)
    check_positive_int("n_hidden", n_hidden)
    bound = 1 / math.sqrt(n_hidden)
    return {"w_ih": _uniform(rng, bound, (3 * n_hidden, n_in), dtype),
            "w_hh": _uniform(rng, bound, (3 * n_hidden, n_hidden), dtype),
            "b_ih": _uniform(rng, bound, (3 * n_hidden,), dtype),
            "b_hh": _uniform(rng, bound, (3 * n_hidden,), dtype)}


def _gate(stacked, index, n_hidden):
    """Gate ``index`` (0 reset, 1 update, 2 candidate) of a (..., 3H) pre-activation."""
    return stacked[..., index * n_hidden:(index + 1) * n_hidden]


def _gru_step(params, input_part, h):
    """One GRU update from the input's pre-activation ``x @ w_ih.T + b_ih`` and the state ``h``."""
    n_hidden = h.shape[-1]
    hidden_part = linear({"w": params["w_hh"], "b": params["b_hh"]}, h)
    # ops.add: either part alone may be a plain array (xs or h untraced), and a plain CuPy array
    # on the left of + does not hand over to a traced one. The other left operands are traced
    # whenever anything is.
    reset = ops.sigmoid(ops.add(_gate(input_part, 0, n_hidden), _gate(hidden_part, 0, n_hidden)))
    update = ops.sigmoid(ops.add(_gate(input_part, 1, n_hidden), _gate(hidden_part, 1, n_hidden)))
    candidate = ops.tanh(ops.add(_gate(input_part, 2, n_hidden),
                                 reset * _gate(hidden_part, 2, n_hidden)))
    # h' = (1 - z) * n + z * h  =  n - z * (n - h), with h (maybe the untraced h0) on the right
    return candidate - update * (candidate - h)


def gru_cell(params, x, h):
    """One step of a gated recurrent unit (Cho et al. 2014; PyTorch's equations).

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)        (reset gate)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)        (update gate)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     (candidate)
        h' = (1 - z) * n + z * h

    ``x``: (B, n_in), ``h``: (B, H); returns the new state (B, H).
    """
    _check_gru_args(params, x.shape, h.shape, "x")
    return _gru_step(params, linear({"w": params["w_ih"], "b": params["b_ih"]}, x), h)


def gru(params, xs, h0, return_all=False):
    """Run `gru_cell` over a sequence ``xs`` of shape (T, B, n_in) from the state ``h0`` (B, H).

    Returns the last state (B, H), or with ``return_all=True`` every state after each step,
    stacked to (T, B, H). To read a sequence backwards in time (the Latent ODE's encoder), pass
    ``xs[::-1]``. Each step projects its own input: slicing one projection of all T steps
    instead would give every step a VJP that writes a zero array of the whole projection's
    size, T of them per backward pass (quadratic in T), where slicing an untraced ``xs`` costs
    nothing to differentiate.
    """
    if xs.ndim != 3:
        raise ValueError(f"gru: xs must be (T, B, n_in), got shape {xs.shape}")
    _check_gru_args(params, xs.shape[1:], h0.shape, "xs")
    input_layer = {"w": params["w_ih"], "b": params["b_ih"]}
    h, states = h0, []
    for step in range(xs.shape[0]):
        h = _gru_step(params, linear(input_layer, xs[step]), h)
        states.append(h)
    return ops.stack(states) if return_all else h


def _check_gru_args(params, step_shape, h_shape, x_name):
    n_hidden, n_in = params["w_hh"].shape[1], params["w_ih"].shape[1]
    if len(step_shape) != 2 or step_shape[1] != n_in:
        raise ValueError(f"gru: {x_name} must have {n_in} features per step, got a step of "
                         f"shape {step_shape}")
    if h_shape != (step_shape[0], n_hidden):
        raise ValueError(f"gru: h must be (B, H) = ({step_shape[0]}, {n_hidden}), got shape "
                         f"{h_shape}")


# ----------------------------------------------------------------------------- Utilities

def count_params(params):
    """The number of scalar parameters in the tree ``params``."""
    return sum(int(leaf.size) for leaf in tree_leaves(params))
