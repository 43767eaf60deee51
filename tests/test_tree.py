"""Parameter pytrees: the walk, flatten/unflatten round trips, tree_map, and parameter files."""
import os
import re

import autograd
import numpy
import numpy as np
import pytest
from numpy.testing import assert_allclose

import strict_backend as strict
from minode import backend, ops, tree
from minode.tree import flatten, load_params, save_params, tree_leaves, tree_map, tree_paths


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


def test_tree_paths_name_every_leaf_in_the_order_of_tree_leaves():
    sample = make_tree()
    paths = tree_paths(sample, "p")
    assert [path for path, _ in paths] == ["p['layers'][0]", "p['layers'][1][0]",
                                           "p['layers'][1][1]", "p['w']"]
    for (_, leaf), expected in zip(paths, tree_leaves(sample)):
        assert leaf is expected


def test_unflatten_keeps_each_leaf_dtype_in_a_mixed_tree():
    mixed = {"a": np.ones(2, "float32"), "b": np.arange(3.0)}
    vector, unflatten = flatten(mixed)
    assert vector.dtype == np.float64  # the common dtype
    rebuilt = unflatten(vector)
    assert rebuilt["a"].dtype == np.float32 and rebuilt["b"].dtype == np.float64
    grads = autograd.grad(lambda v: ops.sum(unflatten(v)["a"]) * 2.0)(vector)
    assert_allclose(grads, [2.0, 2.0, 0.0, 0.0, 0.0])


def sample_tree():
    return {"encoder": [numpy.arange(6.0).reshape(2, 3), (numpy.ones(2, "float32"),)],
            "scale": numpy.array(2.5), "w": numpy.linspace(0, 1, 4)}


def test_save_and_load_round_trip_restores_structure_values_and_dtypes(tmp_path):
    path = tmp_path / "params.npz"
    save_params(path, sample_tree())
    for loaded in (load_params(path), load_params(path, like=sample_tree())):
        assert isinstance(loaded["encoder"], list) and isinstance(loaded["encoder"][1], tuple)
        assert loaded["encoder"][1][0].dtype == numpy.float32
        for got, expected in zip(tree_leaves(loaded), tree_leaves(sample_tree())):
            assert_allclose(got, expected)
            assert got.shape == expected.shape


def test_load_returns_arrays_of_the_active_backend(tmp_path, strict_backend):
    save_params(tmp_path / "p.npz", tree_map(backend.asarray, sample_tree()))
    loaded = load_params(tmp_path / "p.npz", like=sample_tree())
    assert all(type(leaf) is strict.StrictArray for leaf in tree_leaves(loaded))


def test_failed_save_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "params.npz"
    save_params(path, {"w": numpy.ones(3)})

    def failing_savez(file, **arrays):
        file.write(b"half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(tree.numpy, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_params(path, {"w": numpy.zeros(3)})
    with pytest.raises(OSError, match="disk full"):
        save_params(tmp_path / "new.npz", {"w": numpy.zeros(3)})
    assert sorted(os.listdir(tmp_path)) == ["params.npz"]
    assert_allclose(load_params(path)["w"], numpy.ones(3))


@pytest.mark.parametrize("like, message", [
    ({"encoder": [numpy.ones((2, 3)), (numpy.ones(2, "float32"),)], "w": numpy.ones(4)},
     r"keys \['encoder', 'scale', 'w'\], `like` has \['encoder', 'w'\]"),
    ({**sample_tree(), "w": numpy.ones(5)}, r"at params\['w'\]: the file has shape \(4,\)"),
    ({**sample_tree(), "encoder": [numpy.ones((2, 3))]}, r"at params\['encoder'\].*2 entries"),
    ({**sample_tree(), "scale": {"a": numpy.ones(1)}}, r"at params\['scale'\].*ndarray.*dict"),
    ({**sample_tree(), "w": numpy.ones(4, "float32")}, "dtype float64, `like` has"),
])
def test_loading_a_file_whose_tree_does_not_match_like_raises_value_error(tmp_path, like,
                                                                          message):
    save_params(tmp_path / "p.npz", sample_tree())
    with pytest.raises(ValueError, match=message):
        load_params(tmp_path / "p.npz", like=like)


def test_loading_a_file_not_written_by_save_params_raises_value_error(tmp_path):
    numpy.savez(tmp_path / "other.npz", w=numpy.ones(2))
    with pytest.raises(ValueError, match="not written by save_params"):
        load_params(tmp_path / "other.npz")


def test_python_scalar_leaves_are_saved_and_loaded_as_the_same_python_values(tmp_path):
    state = {"opt": {"step": 7, "m": numpy.ones(2)}, "losses": [0.5, 0.25], "name": "adam",
             "done": False, "note": None}
    save_params(tmp_path / "state.npz", state)
    loaded = load_params(tmp_path / "state.npz", like=state)
    assert loaded["opt"]["step"] == 7 and type(loaded["opt"]["step"]) is int
    assert loaded["losses"] == [0.5, 0.25] and loaded["name"] == "adam"
    assert loaded["done"] is False and loaded["note"] is None
    with pytest.raises(ValueError, match=r"at params\['opt'\]\['step'\].*int.*ndarray"):
        load_params(tmp_path / "state.npz", like={**state, "opt": {"step": numpy.ones(1),
                                                                   "m": numpy.ones(2)}})


def test_save_params_rejects_leaves_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="arrays and Python scalars.*object"):
        save_params(tmp_path / "bad.npz", {"w": object()})
    with pytest.raises(TypeError, match="string dict keys"):
        save_params(tmp_path / "bad.npz", {1: numpy.ones(1)})
    assert os.listdir(tmp_path) == []


def test_saving_into_a_missing_directory_names_the_directory(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match=r"p\.npz: its directory does not exist.*"
                                                 + re.escape(repr(str(missing)))):
        save_params(missing / "p.npz", {"w": numpy.ones(2)})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tree", [numpy.array(0.7), [numpy.ones(2)], {"a": (numpy.ones(1),)}],
                         ids=["a bare leaf", "a list", "nested"])
def test_unflatten_rebuilds_any_tree_from_its_split_leaves(tree):
    vector, unflatten = flatten(tree)
    rebuilt = unflatten.rebuild(unflatten.split(vector))
    assert type(rebuilt) is type(tree)
    numpy.testing.assert_array_equal(flatten(rebuilt)[0], vector)
