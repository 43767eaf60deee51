"""Parameter pytrees: nested tuples, lists and dicts of arrays, walked, flattened and saved.

One walk serves everything here: `_children` lists a node's children in a fixed order (dict keys
sorted), `_rebuild` puts a node of the same kind back together. On it stand

    tree_leaves(tree)         the leaves in that order
    tree_paths(tree, prefix)  (path, leaf) pairs, e.g. ("params['w'][0]", array)
    tree_map(f, tree, ...)    f leaf by leaf
    flatten(tree)             one 1-D vector and the function that rebuilds the tree
    save_params / load_params a tree in an ``.npz`` file, written atomically

autograd's own ``autograd.misc.flatten`` builds NumPy arrays; these use minode's primitives, so
they work (and are differentiable) on every backend. The walk reads a node's kind through
autograd's container boxes (``getval``), so a tree traced as a whole (a DictBox, a SequenceBox)
is walked like a plain one, and indexing the box gives traced leaves.
"""
import json
import os

import numpy  # only for the .npz file format of save_params / load_params
from autograd.tracer import getval

from minode import backend, ops
from minode.files import atomic_file

__all__ = ["tree_leaves", "tree_paths", "tree_map", "flatten", "save_params", "load_params",
           "check_same_tree"]


def _children(tree):
    """``[(key, child), ...]`` of a dict (keys sorted), tuple or list; None for a leaf."""
    structure = getval(tree)
    if isinstance(structure, dict):
        return [(key, tree[key]) for key in sorted(structure)]
    if isinstance(structure, (tuple, list)):
        return [(index, tree[index]) for index in range(len(structure))]
    return None


def _rebuild(like, keys, children):
    """A node of ``like``'s kind (dict, tuple or list) holding ``children`` under ``keys``."""
    kind = type(getval(like))
    if issubclass(kind, dict):
        return dict(zip(keys, children))
    return kind(children)


def tree_leaves(tree):
    """The leaves of ``tree`` (anything that is not a dict, tuple or list) in the walk's order."""
    children = _children(tree)
    if children is None:
        return [tree]
    return [leaf for _, child in children for leaf in tree_leaves(child)]


def tree_paths(tree, prefix=""):
    """``(path, leaf)`` pairs in the order of `tree_leaves`; a path reads like Python indexing,
    ``prefix['encoder'][1]``."""
    children = _children(tree)
    if children is None:
        return [(prefix, tree)]
    return [pair for key, child in children for pair in tree_paths(child, f"{prefix}[{key!r}]")]


def tree_map(function, tree, *other_trees):
    """Apply ``function`` leaf by leaf; ``other_trees`` must have ``tree``'s structure.

    The result is built from plain dicts, lists and tuples.
    """
    children = _children(tree)
    if children is None:
        return function(tree, *other_trees)
    keys = [key for key, _ in children]
    for other in other_trees:
        _check_same_node(tree, other, keys)
    mapped = [tree_map(function, child, *(other[key] for other in other_trees))
              for key, child in children]
    return _rebuild(tree, keys, mapped)


def _check_same_node(tree, other, keys):
    other_children = _children(other)
    same_kind = isinstance(getval(other), dict) == isinstance(getval(tree), dict)
    if other_children is None or not same_kind or [k for k, _ in other_children] != keys:
        raise ValueError(f"tree structures differ: {_node_name(tree)} vs {_node_name(other)}")


def _node_name(tree):
    """A dict by its keys, a tuple or list by its length, a leaf by its type."""
    structure = getval(tree)
    if isinstance(structure, dict):
        return f"dict with keys {sorted(structure)}"
    if isinstance(structure, (tuple, list)):
        return f"{type(structure).__name__} of length {len(structure)}"
    return type(structure).__name__


def _unflattened(tree, pieces):
    """``tree``'s structure with its leaves replaced, in order, by ``next(pieces)``."""
    children = _children(tree)
    if children is None:
        return next(pieces)
    return _rebuild(tree, [key for key, _ in children],
                    [_unflattened(child, pieces) for _, child in children])


def flatten(tree):
    """Concatenate the leaves of ``tree`` into one 1-D array; returns ``(vector, unflatten)``.

    The vector has the leaves' common (promoted) dtype; ``unflatten(vector)`` (an `Unflatten`)
    rebuilds a tree of the same structure, shapes and leaf dtypes (a float32 leaf beside a
    float64 one comes back float32). Both directions are differentiable. An empty tree (or
    None) gives an empty vector.
    """
    leaves = [] if tree is None else tree_leaves(tree)
    for leaf in leaves:
        if not hasattr(getval(leaf), "shape"):
            raise TypeError(f"every leaf of params must be an array, got {type(leaf).__name__}")
    if leaves:
        vector = ops.concatenate([ops.ravel(leaf) for leaf in leaves])
    else:
        vector = backend.xp.zeros(0)
    return vector, Unflatten(tree, leaves)


class Unflatten:
    """``unflatten(vector)``: the tree of `flatten` back from its vector, in two halves that
    can be used apart: `split` cuts the vector into the leaves, `rebuild` puts leaves into
    the tree's structure (the adjoint cuts once and traces each leaf on its own)."""

    def __init__(self, tree, leaves):
        # The structure alone, in plain containers: a tree traced as a whole may hold traced
        # containers inside (a DictBox in a tuple), and indexing those at every rebuild would
        # add traced nodes that nothing uses.
        self._empty = tree is None
        self._skeleton = None if tree is None else tree_map(lambda leaf: "leaf", tree)
        self._shapes = [getval(leaf).shape for leaf in leaves]
        self._sizes = [int(getval(leaf).size) for leaf in leaves]
        self._dtypes = [getval(leaf).dtype for leaf in leaves]

    def __call__(self, vector):
        return self.rebuild(self.split(vector))

    def split(self, vector):
        """The leaves, in `tree_leaves` order, each of its own shape and dtype."""
        if vector.shape != (sum(self._sizes),):
            raise ValueError(f"unflatten expected a vector of shape ({sum(self._sizes)},), "
                             f"got {vector.shape}")
        pieces, start = [], 0
        for shape, size, dtype in zip(self._shapes, self._sizes, self._dtypes):
            piece = ops.window(vector, start, shape)  # one primitive: a slice, reshaped
            pieces.append(ops.as_dtype(piece, dtype))
            start += size
        return pieces

    def rebuild(self, leaves):
        """The tree with ``leaves`` (in `tree_leaves` order) in place of its own."""
        return None if self._empty else _unflattened(self._skeleton, iter(leaves))


# ----------------------------------------------------------------------------- Saving to disk

_STRUCTURE_KEY = "__tree_structure__"
_SCALARS = (bool, int, float, str, type(None))


def _describe(tree, arrays):
    """``tree`` as JSON-ready data; its arrays are appended to ``arrays`` and named by index.

    Leaves that are Python scalars (int, float, bool, str, None: a step counter, a loss history)
    are kept in the JSON itself, so they load back as the same Python values.
    """
    children = _children(tree)
    if children is None:
        if isinstance(tree, _SCALARS):
            return {"value": tree}
        if not hasattr(tree, "shape"):
            raise TypeError(f"save_params stores arrays and Python scalars, got "
                            f"{type(tree).__name__}")
        arrays.append(numpy.asarray(backend.to_numpy(tree)))
        return {"array": len(arrays) - 1}
    if isinstance(tree, dict) and not all(isinstance(key, str) for key, _ in children):
        raise TypeError(f"save_params needs string dict keys, got {[k for k, _ in children]}")
    return {type(tree).__name__: [[key, _describe(child, arrays)] for key, child in children]}


def _restore(description, arrays):
    if "value" in description:
        return description["value"]
    if "array" in description:
        return backend.asarray(arrays[description["array"]])
    (kind, children), = description.items()
    keys = [key for key, _ in children]
    values = [_restore(child, arrays) for _, child in children]
    return dict(zip(keys, values)) if kind == "dict" else {"tuple": tuple, "list": list}[kind](
        values)


def save_params(path, params):
    """Write the pytree ``params`` to the ``.npz`` file ``path``, atomically.

    Arrays are stored as ``leaf_0, leaf_1, ...`` (copied to host memory); the tree structure,
    with any Python-scalar leaves, as JSON. The file is complete or absent: it is written to a
    temporary file beside ``path`` and renamed over it (`minode.files.atomic_file`), so
    ``path``'s directory must exist (else ``FileNotFoundError`` names it).
    """
    arrays = []
    structure = _describe(params, arrays)
    contents = {f"leaf_{i}": array for i, array in enumerate(arrays)}
    contents[_STRUCTURE_KEY] = numpy.array(json.dumps(structure))
    with atomic_file(path) as file:
        numpy.savez(file, **contents)


def load_params(path, like=None):
    """Read a pytree written by `save_params`; its arrays come back on the active backend.

    With ``like`` (a pytree, e.g. freshly initialised parameters) the file must hold the same
    structure with the same shapes and dtypes, else ``ValueError`` says where they differ.
    """
    with numpy.load(os.fspath(path), allow_pickle=False) as data:
        if _STRUCTURE_KEY not in data:
            raise ValueError(f"{path} was not written by save_params (no tree structure in it)")
        structure = json.loads(str(data[_STRUCTURE_KEY]))
        arrays = [data[f"leaf_{i}"] for i in range(len(data.files) - 1)]
    params = _restore(structure, arrays)
    if like is not None:
        check_same_tree(params, like, "params")
    return params


def check_same_tree(tree, like, where="params", *, names=("the file", "`like`"),
                    dtypes=True):
    """Raise ``ValueError`` unless ``tree`` has ``like``'s structure and leaf shapes, and with
    ``dtypes`` their leaf dtypes too (Python-scalar leaves: the same type).

    The message names the first place (``where['key'][index]``, ``where`` being the path of
    ``tree``) at which the two differ, calling the two trees by ``names``: `load_params`
    compares the file's tree with ``like``, `minode.optim` the gradients with the parameters.
    """
    tree_children, like_children = _children(tree), _children(like)
    if (tree_children is None) != (like_children is None) or (
            like_children is not None and isinstance(like, dict) != isinstance(tree, dict)):
        raise _mismatch(where, names, type(tree).__name__, type(like).__name__)
    if like_children is None:
        _check_same_leaf(tree, like, where, names, dtypes)
        return
    tree_keys, like_keys = [k for k, _ in tree_children], [k for k, _ in like_children]
    if tree_keys != like_keys:
        if isinstance(like, dict):
            raise _mismatch(where, names, f"keys {tree_keys}", like_keys)
        raise _mismatch(where, names, f"{len(tree_keys)} entries", len(like_keys))
    for (key, child), (_, like_child) in zip(tree_children, like_children):
        check_same_tree(child, like_child, f"{where}[{key!r}]", names=names, dtypes=dtypes)


def _check_same_leaf(tree, like, where, names, dtypes):
    if dtypes and (isinstance(like, _SCALARS) or isinstance(tree, _SCALARS)):
        if type(tree) is not type(like):
            raise _mismatch(where, names, type(tree).__name__, type(like).__name__)
        return
    got, expected = (_leaf_description(leaf, dtypes) for leaf in (tree, like))
    if got != expected:
        raise _mismatch(where, names, got, expected)


def _leaf_description(leaf, dtypes):
    shape = f"shape {tuple(getattr(leaf, 'shape', ()))}"  # a Python number has shape ()
    return f"{shape} and dtype {leaf.dtype}" if dtypes else shape


def _mismatch(where, names, got, expected):
    return ValueError(f"{names[0]} does not match {names[1]} at {where}: {names[0]} has {got}, "
                      f"{names[1]} has {expected}")
