"""A fake array backend that is as strict as CuPy, so CPU-only CI catches CuPy bugs.

``StrictArray`` is a NumPy array that NumPy's own functions refuse: calling ``numpy.exp`` (or any
ufunc or array function) on it from outside this module raises ``TypeError``, and mixing it with
a plain (non-0-d) ``numpy.ndarray`` raises too, as CuPy does for host arrays. Only the wrapper
module ``strict_numpy`` (what ``backend.xp`` becomes) and the array's own operators and methods
work on it, and they return StrictArrays.

So a primitive whose forward or VJP calls ``numpy`` directly, or autograd's stock
``autograd.numpy`` VJPs (which build NumPy arrays), fail on this backend just as they would on a
GPU. Register it with ``backend.register_backend("strict", load)`` (tests/conftest.py does).
"""
import contextlib
import types

import numpy

# Functions that copy host data onto the "device": the only ones that accept numpy.ndarray.
_HOST_TO_DEVICE = {"asarray", "array", "asanyarray"}

_operator_depth = 0  # > 0 while a StrictArray operator or method runs


@contextlib.contextmanager
def _inside_operator():
    global _operator_depth
    _operator_depth += 1
    try:
        yield
    finally:
        _operator_depth -= 1


def _to_plain(value):
    """StrictArrays (also inside tuples, lists, dicts) as plain ndarray views of the same memory."""
    if isinstance(value, StrictArray):
        return value.view(numpy.ndarray)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    return value


def _to_strict(value):
    """Arrays and NumPy scalars as StrictArrays (a reduction gives a 0-d array, as in CuPy)."""
    if isinstance(value, StrictArray):
        return value
    if isinstance(value, numpy.ndarray):
        return value.view(StrictArray)
    if isinstance(value, numpy.generic):
        return numpy.asarray(value).view(StrictArray)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_strict(item) for item in value)
    return value


def _refuse_host_arrays(value, where):
    if type(value) is numpy.ndarray and value.ndim > 0:
        raise TypeError(f"{where}: got a host numpy.ndarray of shape {value.shape}; like CuPy, "
                        "the strict backend does not mix host arrays with its own (convert "
                        "with minode.backend.asarray)")
    if isinstance(value, (tuple, list)):
        for item in value:
            _refuse_host_arrays(item, where)
    if isinstance(value, dict):
        for item in value.values():
            _refuse_host_arrays(item, where)


class StrictArray(numpy.ndarray):
    """An ndarray that only `strict_numpy` and its own operators and methods may compute with."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        if not _operator_depth:
            raise TypeError(f"{name} was called on a StrictArray: code must use backend.xp "
                            "(a stray numpy call, or an autograd.numpy VJP, would fail on CuPy)")
        _refuse_host_arrays((inputs, kwargs), name)
        result = getattr(ufunc, method)(*_to_plain(inputs), **_to_plain(kwargs))
        return _to_strict(result)

    def __array_function__(self, function, types_, args, kwargs):
        name = f"numpy.{function.__name__}"
        if not _operator_depth:
            raise TypeError(f"{name} was called on a StrictArray: code must use backend.xp "
                            "(a stray numpy call, or an autograd.numpy VJP, would fail on CuPy)")
        _refuse_host_arrays((args, kwargs), name)
        return _to_strict(function(*_to_plain(args), **_to_plain(kwargs)))

    def __getitem__(self, index):
        return _to_strict(numpy.ndarray.__getitem__(self, _to_plain(index)))

    def get(self):
        """A host copy, as ``cupy.ndarray.get`` gives."""
        return numpy.array(self.view(numpy.ndarray))

    def __repr__(self):
        return "Strict" + repr(self.view(numpy.ndarray))

    def __str__(self):
        return str(self.view(numpy.ndarray))


def _allow_inside(name):
    base = getattr(numpy.ndarray, name)

    def method(self, *args, **kwargs):
        with _inside_operator():
            return _to_strict(base(self, *args, **kwargs))

    method.__name__ = name
    return method


# Operators and reduction methods run NumPy ufuncs on the array itself; like CuPy's, they work.
_OPERATORS_AND_METHODS = (
    "__add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ "
    "__truediv__ __rtruediv__ __itruediv__ __floordiv__ __rfloordiv__ __mod__ __rmod__ "
    "__pow__ __rpow__ __ipow__ __matmul__ __rmatmul__ __neg__ __pos__ __abs__ __invert__ "
    "__and__ __rand__ __or__ __ror__ __xor__ __rxor__ "
    "__lt__ __le__ __gt__ __ge__ __eq__ __ne__ "
    "sum mean max min prod std var all any argmax argmin clip dot round cumsum").split()
for _name in _OPERATORS_AND_METHODS:
    setattr(StrictArray, _name, _allow_inside(_name))


class _StrictFunction:
    """A NumPy function (or ufunc, with its ``.at``/``.reduce`` methods) on StrictArrays."""

    def __init__(self, function, name):
        self._function, self._name = function, name

    def __call__(self, *args, **kwargs):
        if self._name not in _HOST_TO_DEVICE:
            _refuse_host_arrays((args, kwargs), f"strict_numpy.{self._name}")
        return _to_strict(self._function(*_to_plain(args), **_to_plain(kwargs)))

    def __getattr__(self, attribute):
        inner = getattr(self._function, attribute)
        if callable(inner) and isinstance(self._function, numpy.ufunc):
            return _StrictFunction(inner, f"{self._name}.{attribute}")
        return inner


class StrictNumpy:
    """The ``numpy`` module with every function taking and returning StrictArrays, like ``cupy``.

    Types (dtypes such as ``float32``) and constants are NumPy's own, as in CuPy.
    """

    ndarray = StrictArray

    def __init__(self, module=numpy):
        self._module = module

    def __getattr__(self, name):
        attribute = getattr(self._module, name)
        if isinstance(attribute, types.ModuleType):
            return StrictNumpy(attribute)
        if isinstance(attribute, type) or not callable(attribute):
            return attribute
        return _StrictFunction(attribute, name)


strict_numpy = StrictNumpy()


def load():
    """The loader for ``backend.register_backend``: ``(module, array type)``."""
    return strict_numpy, StrictArray
