"""The array backend: which array module (`xp`) minode computes with.

Every array operation in minode goes through ``backend.xp`` -- NumPy by default, CuPy after
``set_backend("cupy")`` or with the environment variable ``MINODE_BACKEND=cupy``. Code reads the
attribute at call time (``backend.xp.exp(x)``), never ``from minode.backend import xp``, so a
switch takes effect everywhere at once.

autograd only knows NumPy arrays. For any other array type this module registers a vector space
(`XpVSpace`, built with the backend's own ``zeros``/``ones``/``vdot``) and asks `minode.ops` for a
Box whose operators route to minode's primitives, whose VJPs are written with ``xp`` too.
"""
import os

import numpy
from autograd.extend import VSpace

__all__ = ["xp", "name", "set_backend", "register_backend", "available_backends",
           "asarray", "to_numpy"]

xp = numpy
name = "numpy"
array_type = numpy.ndarray

_loaders = {}
_registered_types = set()


def register_backend(backend_name, loader):
    """Make ``set_backend(backend_name)`` available.

    ``loader()`` is called on activation and returns ``(array_module, array_type)``; it should
    raise ``RuntimeError`` with a clear message when the backend cannot run on this machine.
    """
    if not isinstance(backend_name, str) or not backend_name:
        raise ValueError(f"backend_name must be a non-empty string, got {backend_name!r}")
    if not callable(loader):
        raise TypeError(f"loader must be callable, got {type(loader).__name__}")
    _loaders[backend_name] = loader


def available_backends():
    """Names accepted by `set_backend` (registered, not necessarily usable here)."""
    return sorted(_loaders)


def set_backend(backend_name):
    """Switch the array module for all of minode; returns the previous backend's name.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the backend cannot run
    here (for CuPy: not installed, or no GPU).
    """
    global xp, name, array_type
    if backend_name not in _loaders:
        raise ValueError(f"backend must be one of {available_backends()}, got {backend_name!r}")
    module, module_array_type = _loaders[backend_name]()
    if module_array_type is not numpy.ndarray:
        _register_with_autograd(module_array_type, module)
    previous = name
    xp, name, array_type = module, backend_name, module_array_type
    return previous


def _load_numpy():
    return numpy, numpy.ndarray


def _load_cupy():
    try:
        import cupy
    except ImportError as error:
        raise RuntimeError("backend 'cupy' needs CuPy: pip install -e .[gpu] "
                           f"(import failed: {error})") from error
    try:
        device_count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDA error types here
        raise RuntimeError(f"backend 'cupy' needs a CUDA GPU, but CUDA reports: {error}") from error
    if device_count == 0:
        raise RuntimeError("backend 'cupy' needs a CUDA GPU, and none was found")
    return cupy, cupy.ndarray


register_backend("numpy", _load_numpy)
register_backend("cupy", _load_cupy)


class XpVSpace(VSpace):
    """autograd's vector space for a non-NumPy array, built with that array's own module."""

    def __init__(self, value, module):
        self.shape = value.shape
        self.dtype = value.dtype
        self.module = module

    @property
    def size(self):
        return int(numpy.prod(self.shape))

    @property
    def ndim(self):
        return len(self.shape)

    def zeros(self):
        return self.module.zeros(self.shape, dtype=self.dtype)

    def ones(self):
        return self.module.ones(self.shape, dtype=self.dtype)

    def standard_basis(self):
        for index in numpy.ndindex(*self.shape):
            basis_vector = self.module.zeros(self.shape, dtype=self.dtype)
            basis_vector[index] = 1
            yield basis_vector

    def randn(self):
        return self.module.asarray(numpy.random.randn(*self.shape).astype(self.dtype))

    def _inner_prod(self, x, y):
        return self.module.vdot(x.ravel(), y.ravel())


def _register_with_autograd(foreign_array_type, module):
    if foreign_array_type in _registered_types:
        return
    # Late import: the Box's operators are minode's primitives, one layer above this module.
    from minode.ops.box import XpArrayBox
    VSpace.register(foreign_array_type, lambda value: XpVSpace(value, module))
    XpArrayBox.register(foreign_array_type)
    _registered_types.add(foreign_array_type)


def asarray(x, dtype=None):
    """``x`` as an array of the active backend (copies from host memory where needed)."""
    return xp.asarray(x, dtype=dtype)


def to_numpy(x):
    """``x`` (any backend's array, or a Python number) as a NumPy array in host memory."""
    if type(x) is numpy.ndarray:  # not a subclass: another backend's array may be one
        return x
    if hasattr(x, "get"):  # CuPy's device-to-host copy
        return x.get()
    return numpy.asarray(x)



_requested = os.environ.get("MINODE_BACKEND", "numpy")
if _requested != "numpy":
    set_backend(_requested)
