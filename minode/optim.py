"""Optimizers on parameter pytrees, learning-rate schedules, and saving parameters to disk.

An optimizer holds only its hyperparameters; its state is a plain dict that the caller keeps:

    opt = Adam(lr=1e-3)                      # or lr=step_decay(1e-3, 0.1, every=1000)
    state = opt.init(params)
    for batch in batches:
        grads = autograd.grad(loss)(params, batch)
        params, state = opt.update(params, grads, state)

Every update is written leaf by leaf with `tree_map` and array arithmetic, so it runs on NumPy
and CuPy alike; nothing here is differentiated.
"""
import json
import math
import os
import tempfile

import numpy  # only for the .npz file format in save_params / load_params

from minode import backend
from minode.tree import tree_leaves, tree_map

__all__ = ["constant", "step_decay", "SGD", "RMSprop", "Adam", "save_params", "load_params"]


# ----------------------------------------------------------------------------- Schedules

def constant(lr):
    """The schedule ``step -> lr``."""
    _check_positive("lr", lr)
    return lambda step: lr


def step_decay(lr, factor, every):
    """The schedule ``step -> lr * factor ** (step // every)``: multiply by ``factor`` every
    ``every`` steps (steps count from 0, the first update)."""
    _check_positive("lr", lr)
    _check_positive("factor", factor)
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    return lambda step: lr * factor ** (step // every)


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_fraction(name, value):
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


# ----------------------------------------------------------------------------- Optimizers

class Optimizer:
    """Shared by the optimizers: the learning-rate schedule and the step counter.

    ``lr`` is a positive number or a schedule (a function of the step index, e.g. `step_decay`).
    Subclasses name their per-parameter buffers in ``buffers`` and implement ``_update``.
    """

    buffers = ()

    def __init__(self, lr):
        self.schedule = lr if callable(lr) else constant(lr)

    def init(self, params):
        """The state before the first update: step 0 and zero buffers shaped like ``params``."""
        return {"step": 0, **{name: tree_map(backend.xp.zeros_like, params)
                              for name in self.buffers}}

    def update(self, params, grads, state):
        """One step: returns ``(new_params, new_state)``; the inputs are left unchanged."""
        missing = [name for name in ("step",) + self.buffers if name not in state]
        if missing:
            raise ValueError(f"state is missing {missing}: create it with {type(self).__name__}"
                             f"(...).init(params)")
        step = state["step"]
        params, buffers = self._update(params, grads, state, self.schedule(step), step + 1)
        return params, {"step": step + 1, **buffers}

    def _update(self, params, grads, state, lr, step):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch:

        v <- momentum * v + g,    p <- p - lr * v.

    ``momentum=0`` is plain gradient descent.
    """

    buffers = ("velocity",)

    def __init__(self, lr, momentum=0.9):
        super().__init__(lr)
        _check_fraction("momentum", momentum)
        self.momentum = momentum

    def _update(self, params, grads, state, lr, step):
        velocity = tree_map(lambda v, g: self.momentum * v + g, state["velocity"], grads)
        params = tree_map(lambda p, v: p - lr * v, params, velocity)
        return params, {"velocity": velocity}


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012): divide by a running root mean square of the gradient.

        s <- decay * s + (1 - decay) * g**2,    p <- p - lr * g / (sqrt(s) + eps).
    """

    buffers = ("mean_square",)

    def __init__(self, lr, decay=0.99, eps=1e-8):
        super().__init__(lr)
        _check_fraction("decay", decay)
        _check_positive("eps", eps)
        self.decay, self.eps = decay, eps

    def _update(self, params, grads, state, lr, step):
        decay, sqrt = self.decay, backend.xp.sqrt
        mean_square = tree_map(lambda s, g: decay * s + (1 - decay) * g * g,
                               state["mean_square"], grads)
        params = tree_map(lambda p, g, s: p - lr * g / (sqrt(s) + self.eps),
                          params, grads, mean_square)
        return params, {"mean_square": mean_square}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias-corrected moment estimates:

        m <- b1 m + (1 - b1) g,    v <- b2 v + (1 - b2) g**2,
        p <- p - lr * (m / (1 - b1**k)) / (sqrt(v / (1 - b2**k)) + eps)     at step k = 1, 2, ...
    """

    buffers = ("m", "v")

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr)
        _check_fraction("b1", b1)
        _check_fraction("b2", b2)
        _check_positive("eps", eps)
        self.b1, self.b2, self.eps = b1, b2, eps

    def _update(self, params, grads, state, lr, step):
        b1, b2, sqrt = self.b1, self.b2, backend.xp.sqrt
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
        m_scale, v_scale = 1 / (1 - b1 ** step), 1 / (1 - b2 ** step)
        params = tree_map(lambda p, m, v: p - lr * (m * m_scale) / (sqrt(v * v_scale) + self.eps),
                          params, m, v)
        return params, {"m": m, "v": v}


# ----------------------------------------------------------------------------- Saving parameters

_STRUCTURE_KEY = "__tree_structure__"


def _structure(tree, counter):
    """The shape of ``tree`` as JSON-ready data, leaves replaced by their index in the file."""
    if isinstance(tree, dict):
        for key in tree:
            if not isinstance(key, str):
                raise TypeError(f"save_params needs string dict keys, got {key!r}")
        return {"dict": {key: _structure(tree[key], counter) for key in sorted(tree)}}
    if isinstance(tree, (tuple, list)):
        return {type(tree).__name__: [_structure(child, counter) for child in tree]}
    counter.append(None)
    return len(counter) - 1


def _rebuild(structure, leaves):
    if isinstance(structure, int):
        return leaves[structure]
    (kind, children), = structure.items()
    if kind == "dict":
        return {key: _rebuild(child, leaves) for key, child in children.items()}
    rebuilt = [_rebuild(child, leaves) for child in children]
    return tuple(rebuilt) if kind == "tuple" else rebuilt


def save_params(path, params):
    """Write the pytree ``params`` to the ``.npz`` file ``path``, atomically.

    The arrays are stored as ``leaf_0, leaf_1, ...`` (copied to host memory), the tree structure
    as JSON. The file is written to a temporary file in the same directory and then renamed over
    ``path``, so a crash or error never leaves a half-written ``path``.
    """
    path = os.fspath(path)
    arrays = {f"leaf_{i}": numpy.asarray(backend.to_numpy(leaf))
              for i, leaf in enumerate(tree_leaves(params))}
    arrays[_STRUCTURE_KEY] = numpy.array(json.dumps(_structure(params, [])))
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".params-", suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            numpy.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_params(path, like=None):
    """Read a pytree written by `save_params`; its arrays come back on the active backend.

    With ``like`` (a pytree, e.g. freshly initialised parameters) the file must hold the same
    structure with the same shapes and dtypes, else ``ValueError`` says where they differ.
    """
    with numpy.load(os.fspath(path), allow_pickle=False) as data:
        if _STRUCTURE_KEY not in data:
            raise ValueError(f"{path} was not written by save_params (no tree structure in it)")
        structure = json.loads(str(data[_STRUCTURE_KEY]))
        leaves = [data[f"leaf_{i}"] for i in range(len(data.files) - 1)]
    params = _rebuild(structure, leaves)
    if like is not None:
        _check_same_tree(params, like, "params")
    return tree_map(backend.asarray, params)


def _check_same_tree(loaded, like, where):
    if isinstance(like, dict) != isinstance(loaded, dict) or (
            isinstance(like, (tuple, list)) != isinstance(loaded, (tuple, list))):
        raise ValueError(f"the file's tree does not match `like` at {where}: the file has "
                         f"{type(loaded).__name__}, `like` has {type(like).__name__}")
    if isinstance(like, dict):
        if set(like) != set(loaded):
            raise ValueError(f"the file's tree does not match `like` at {where}: the file has "
                             f"keys {sorted(loaded)}, `like` has {sorted(like)}")
        for key in like:
            _check_same_tree(loaded[key], like[key], f"{where}[{key!r}]")
    elif isinstance(like, (tuple, list)):
        if len(like) != len(loaded):
            raise ValueError(f"the file's tree does not match `like` at {where}: the file has "
                             f"{len(loaded)} entries, `like` has {len(like)}")
        for index, (child, like_child) in enumerate(zip(loaded, like)):
            _check_same_tree(child, like_child, f"{where}[{index}]")
    elif (tuple(loaded.shape), str(loaded.dtype)) != (tuple(like.shape), str(like.dtype)):
        raise ValueError(f"the file's tree does not match `like` at {where}: the file has shape "
                         f"{tuple(loaded.shape)} and dtype {loaded.dtype}, `like` has "
                         f"{tuple(like.shape)} and dtype {like.dtype}")
