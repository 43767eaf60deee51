"""Parameter pytrees: nested tuples, lists and dicts of arrays, flattened to one vector and back.

autograd's own ``autograd.misc.flatten`` builds NumPy arrays; these use minode's primitives, so
they work (and are differentiable) on every backend.
"""
from autograd.tracer import getval

from minode import backend, ops

_CONTAINERS = (tuple, list, dict)


def tree_leaves(tree):
    """The arrays of ``tree`` in a fixed order (dict keys sorted).

    ``tree`` may be traced by autograd as a whole (a DictBox or SequenceBox when the gradient is
    taken w.r.t. a dict or tuple): the structure is read from its value, and indexing the box
    gives traced leaves.
    """
    structure = getval(tree)
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in tree_leaves(tree[key])]
    if isinstance(structure, (tuple, list)):
        return [leaf for i in range(len(structure)) for leaf in tree_leaves(tree[i])]
    return [tree]


def tree_map(function, tree, *other_trees):
    """Apply ``function`` leaf by leaf; ``other_trees`` must have ``tree``'s structure.

    Like `tree_leaves`, it reads structure through autograd's container boxes; the result is
    built from plain dicts, lists and tuples.
    """
    structure = getval(tree)
    if isinstance(structure, dict):
        _check_same_keys(structure, other_trees)
        return {key: tree_map(function, tree[key], *(o[key] for o in other_trees))
                for key in structure}
    if isinstance(structure, (tuple, list)):
        _check_same_length(structure, other_trees)
        mapped = [tree_map(function, tree[i], *(o[i] for o in other_trees))
                  for i in range(len(structure))]
        return type(structure)(mapped)
    return function(tree, *other_trees)


def _check_same_keys(structure, other_trees):
    for other in map(getval, other_trees):
        if not isinstance(other, dict) or set(other) != set(structure):
            raise ValueError(f"tree structures differ: dict with keys {sorted(structure)} vs "
                             f"{other!r}")


def _check_same_length(structure, other_trees):
    for other in map(getval, other_trees):
        if not isinstance(other, (tuple, list)) or len(other) != len(structure):
            raise ValueError(f"tree structures differ: sequence of length {len(structure)} vs "
                             f"{type(other).__name__}")


def flatten(tree):
    """Concatenate the leaves of ``tree`` into one 1-D array; returns ``(vector, unflatten)``.

    ``unflatten(vector)`` rebuilds a tree of the same structure, shapes and dtypes. Both
    directions are differentiable. An empty tree (or None) gives an empty vector.
    """
    leaves = [] if tree is None else tree_leaves(tree)
    for leaf in leaves:
        if not hasattr(getval(leaf), "shape"):
            raise TypeError(f"every leaf of params must be an array, got {type(leaf).__name__}")
    shapes = [getval(leaf).shape for leaf in leaves]
    sizes = [int(getval(leaf).size) for leaf in leaves]
    if leaves:
        vector = ops.concatenate([ops.ravel(leaf) for leaf in leaves])
    else:
        vector = backend.xp.zeros(0)

    def unflatten(flat_vector):
        if flat_vector.shape != (sum(sizes),):
            raise ValueError(f"unflatten expected a vector of shape ({sum(sizes)},), "
                             f"got {flat_vector.shape}")
        pieces, start = [], 0
        for shape, size in zip(shapes, sizes):
            # ops.getitem, not [...]: autograd's own slicing VJP scatters with the slow add.at
            pieces.append(ops.reshape(ops.getitem(flat_vector, slice(start, start + size)), shape))
            start += size
        return None if tree is None else _rebuild(getval(tree), iter(pieces))

    return vector, unflatten


def _rebuild(tree, pieces):
    if isinstance(tree, dict):
        return {key: _rebuild(tree[key], pieces) for key in sorted(tree)}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_rebuild(child, pieces) for child in tree)
    return next(pieces)
