"""Parameter pytrees: flatten/unflatten round trips and tree_map, also inside autograd."""
import autograd
import numpy as np
import pytest

from minode import ops
from minode.tree import flatten, tree_leaves, tree_map


def make_tree():
    return {"w": np.arange(6.0).reshape(2, 3), "layers": [np.ones(2), (np.zeros(1), np.full(3, 2.0))]}


def test_flatten_then_unflatten_restores_structure_shapes_and_values():
    tree = make_tree()
    vector, unflatten = flatten(tree)
    assert vector.shape == (12,)
    rebuilt = unflatten(vector)
    assert isinstance(rebuilt["layers"][1], tuple)
    for original, restored in zip(tree_leaves(tree), tree_leaves(rebuilt)):
        np.testing.assert_array_equal(original, restored)


def test_unflatten_rejects_a_vector_of_the_wrong_size():
    _, unflatten = flatten(make_tree())
    with pytest.raises(ValueError, match="shape"):
        unflatten(np.zeros(5))


def test_tree_map_combines_trees_and_rejects_different_structures():
    doubled = tree_map(lambda a, b: a + b, make_tree(), make_tree())
    np.testing.assert_array_equal(doubled["w"], 2 * make_tree()["w"])
    with pytest.raises(ValueError, match="structures differ"):
        tree_map(lambda a, b: a + b, make_tree(), {"w": np.ones(1)})


def test_flatten_and_tree_map_work_on_a_tree_traced_by_autograd():
    def loss(tree):
        squared = tree_map(lambda leaf: leaf * leaf, tree)
        vector, _ = flatten(squared)
        return ops.sum(vector)

    grads = autograd.grad(loss)(make_tree())
    for leaf, grad in zip(tree_leaves(make_tree()), tree_leaves(grads)):
        np.testing.assert_allclose(grad, 2 * leaf)
