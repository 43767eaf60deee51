"""The MNIST ODE-Net of Chen et al. (2018), sec. 3, as functions of a parameter pytree.

A downsampling stem (28x28 -> 7x7 feature maps), then either one ODE block
h(1) = h(0) + int_0^1 f(h(t), t) dt (eq. (1)-(3); the ODE-Net, and the RK-Net when the solve is
differentiated by backprop) or `N_RESIDUAL_BLOCKS` residual blocks h <- h + f(h) (the ResNet),
then a head (GroupNorm, ReLU, global average pool, linear -> 10 classes); or a one-layer MLP on
the raw pixels. f is `minode.nn.conv_ode_func` (torchdiffeq's ``ODEfunc`` of
``examples/odenet_mnist.py``). Used by ``tutorials/mnist_odenet.py`` and
``tutorials/regularised.py``.
"""
import numpy as np

from minode import backend, nn, ops
from minode.checks import check_choice
from minode.odeint import odeint

__all__ = ["DTYPE", "MODELS", "ODE_MODELS", "N_RESIDUAL_BLOCKS", "init_stem", "stem", "init_head",
           "head", "init_model", "ode_block", "logits"]

DTYPE = "float32"  # half the memory traffic of float64
MODELS = ("odenet", "rknet", "resnet", "mlp")
ODE_MODELS = ("odenet", "rknet")  # the models with an ODE block
N_RESIDUAL_BLOCKS = 6


def _groups(channels):
    return min(32, channels)


def init_stem(rng, channels):
    """conv3x3 1->C, GN, relu, conv4x4/s2 C->C, GN, relu, conv4x4/s2 C->C: 28x28 -> 7x7."""
    return {"conv1": nn.init_conv2d(rng, 1, channels, 3, DTYPE),
            "norm1": nn.init_group_norm(rng, channels, DTYPE),
            "conv2": nn.init_conv2d(rng, channels, channels, 4, DTYPE),
            "norm2": nn.init_group_norm(rng, channels, DTYPE),
            "conv3": nn.init_conv2d(rng, channels, channels, 4, DTYPE)}


def stem(params, images):
    """Images (N, 1, 28, 28) to feature maps (N, C, 7, 7)."""
    groups = _groups(params["conv1"]["w"].shape[0])
    h = nn.conv2d(params["conv1"], images, stride=1, padding=1)                # C x 28 x 28
    h = nn.conv2d(params["conv2"], ops.relu(nn.group_norm(params["norm1"], h, groups)),
                  stride=2, padding=1)                                         # C x 14 x 14
    return nn.conv2d(params["conv3"], ops.relu(nn.group_norm(params["norm2"], h, groups)),
                     stride=2, padding=1)                                      # C x 7 x 7


def init_head(rng, channels):
    """GN, relu, global average pool, linear C->10."""
    return {"norm": nn.init_group_norm(rng, channels, DTYPE),
            "linear": nn.init_linear(rng, channels, 10, DTYPE)}


def head(params, h):
    """Feature maps (N, C, H, W) to class scores (N, 10)."""
    h = ops.relu(nn.group_norm(params["norm"], h, _groups(h.shape[1])))
    return nn.linear(params["linear"], ops.global_avg_pool(h))


def init_model(model, rng, channels):
    """Parameters of ``model`` ("odenet", "rknet", "resnet" or "mlp") with ``channels``
    feature maps."""
    check_choice("model", model, MODELS)
    if model == "mlp":
        return {"mlp": nn.init_mlp(rng, [28 * 28, 300, 10], DTYPE)}
    params = {"stem": init_stem(rng, channels), "head": init_head(rng, channels)}
    if model in ODE_MODELS:
        # f(h, t): GN -> relu -> conv3x3 [t, h] -> GN -> relu -> conv3x3 [t, h] -> GN.
        params["ode"] = nn.init_conv_ode_func(rng, channels, DTYPE)
    else:
        params["blocks"] = [nn.init_conv_ode_func(rng, channels, DTYPE, time_channel=False)
                            for _ in range(N_RESIDUAL_BLOCKS)]
    return params


def ode_block(params, h, solver, stats=None):
    """h(1) = h(0) + int_0^1 f(h(t), t) dt, the ODE block (eq. (1)-(3))."""
    t = backend.asarray(np.array([0.0, 1.0], dtype=DTYPE))
    ys = odeint(nn.conv_ode_func, h, t, params, **solver, stats=stats)
    return ys[-1]


def logits(model, params, images, solver, stats=None):
    """Class scores (N, 10) of ``images`` (N, 1, 28, 28); ``solver``: `odeint`'s keyword
    arguments for the ODE block."""
    check_choice("model", model, MODELS)
    if model == "mlp":
        return nn.mlp(params["mlp"], ops.reshape(images, (images.shape[0], -1)),
                      activation=ops.relu)
    h = stem(params["stem"], images)
    if model in ODE_MODELS:
        h = ode_block(params["ode"], h, solver, stats)
    else:
        for block in params["blocks"]:  # h <- h + f(h): one Euler step of size 1
            h = ops.add(h, nn.conv_ode_func(h, None, block))
    return head(params["head"], h)
