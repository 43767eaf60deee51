"""The autograd Box for non-NumPy arrays (CuPy): its operators call minode's primitives.

autograd wraps every traced value in a Box. For NumPy arrays that is autograd's own ``ArrayBox``,
whose operators call ``autograd.numpy``; those VJPs build NumPy arrays and break on CuPy. This Box
routes ``+ - * / ** @``, indexing and the usual methods to minode's primitives instead, whose VJPs
use ``backend.xp``. `minode.backend` registers it for each non-NumPy array type it activates.
"""
from autograd.extend import Box

from minode.ops import elementwise as ew
from minode.ops import reductions, shapes
from minode.ops.linalg import matmul


def _swap(function):
    return lambda self, other: function(other, self)


class XpArrayBox(Box):
    """A traced array of a non-NumPy backend."""

    __slots__ = []
    __array_priority__ = 100.0

    shape = property(lambda self: self._value.shape)
    ndim = property(lambda self: self._value.ndim)
    size = property(lambda self: self._value.size)
    dtype = property(lambda self: self._value.dtype)
    T = property(lambda self: shapes.transpose(self))

    def __len__(self):
        return len(self._value)

    __add__, __radd__ = ew.add, _swap(ew.add)
    __sub__, __rsub__ = ew.subtract, _swap(ew.subtract)
    __mul__, __rmul__ = ew.multiply, _swap(ew.multiply)
    __truediv__, __rtruediv__ = ew.divide, _swap(ew.divide)
    __pow__, __rpow__ = ew.power, _swap(ew.power)
    __matmul__, __rmatmul__ = matmul, _swap(matmul)
    __neg__ = ew.negative
    __abs__ = ew.absolute
    __getitem__ = shapes.getitem

    # Comparisons are not differentiable: they compare the values inside.
    __lt__ = lambda self, other: self._value < _value_of(other)  # noqa: E731
    __le__ = lambda self, other: self._value <= _value_of(other)  # noqa: E731
    __gt__ = lambda self, other: self._value > _value_of(other)  # noqa: E731
    __ge__ = lambda self, other: self._value >= _value_of(other)  # noqa: E731
    __eq__ = lambda self, other: self._value == _value_of(other)  # noqa: E731
    __ne__ = lambda self, other: self._value != _value_of(other)  # noqa: E731
    __hash__ = Box.__hash__

    def reshape(self, *shape):
        """Differentiable ``reshape``."""
        return shapes.reshape(self, shape[0] if len(shape) == 1 else shape)

    def ravel(self):
        """Differentiable ``ravel``."""
        return shapes.ravel(self)

    def sum(self, axis=None, keepdims=False):
        """Differentiable ``sum``."""
        return reductions.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        """Differentiable ``mean``."""
        return reductions.mean(self, axis, keepdims)

    def astype(self, dtype):
        """Differentiable ``astype``."""
        return ew.astype(self, dtype)


def _value_of(x):
    return x._value if isinstance(x, Box) else x
