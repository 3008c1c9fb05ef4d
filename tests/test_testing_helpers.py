"""fg.testing: check_gradients, compare_devices, and the Hypothesis strategies."""
import doctest
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.testing import strategies as fgst


# --- check_gradients -------------------------------------------------------------------

def test_check_gradients_returns_the_largest_error():
    x = fg.placeholder(fg.float64, (3,))
    err = fg.testing.check_gradients(fg.exp(x) * x, [x], {x: [0.1, -0.5, 1.0]})
    assert 0.0 <= err < 1e-6


def test_check_gradients_names_the_input_element_and_both_values():
    x = fg.placeholder(fg.float64, (2, 2), name="inp")
    # a gradient rule that is wrong on purpose: stop_gradient hides part of the function
    y = x * x + fg.stop_gradient(x * x)
    with pytest.raises(AssertionError) as info:
        fg.testing.check_gradients(y, [x], {x: np.array([[1.0, 2.0], [3.0, -4.0]])})
    text = str(info.value)
    assert "inp:0" in text and "(1, 1)" in text  # the worst element: |2x| largest at -4
    assert "symbolic -8.0" in text and "finite differences -15.99999" in text


def test_check_gradients_perturbs_variables_in_the_session_and_restores_them():
    w = fg.Variable(np.array([0.5, -1.5]), name="w")
    x = fg.placeholder(fg.float64, (2,))
    y = fg.reduce_sum(fg.tanh(w * x))
    err = fg.testing.check_gradients(y, [w, x], {x: [1.0, 2.0]})
    assert err < 1e-6
    with pytest.raises(ValueError, match="neither fed nor a variable"):
        fg.testing.check_gradients(y, [fg.placeholder(fg.float64, ())], {x: [1.0, 2.0]})


def test_check_gradients_float32_uses_looser_defaults():
    x = fg.placeholder(fg.float32, (3,))
    assert fg.testing.check_gradients(fg.sigmoid(x) * 3.0, [x], {x: [0.0, 1.0, -1.0]}) < 1e-2


# --- compare_devices -------------------------------------------------------------------

def test_compare_devices_runs_each_device_in_a_fresh_graph():
    graphs = []

    def build():
        graphs.append(fg.get_default_graph())
        x = fg.placeholder(fg.float64, (2,))
        return {"y": fg.tanh(x), "n": [fg.no_op()]}, {x: [0.5, 1.0]}

    results = fg.testing.compare_devices(build, devices=("/cpu:0", "cpu"))
    assert len(set(map(id, graphs))) == 2
    np.testing.assert_allclose(results["cpu"]["y"], np.tanh([0.5, 1.0]))
    assert results["/cpu:0"]["n"] == [None]


def test_compare_devices_names_the_fetch_that_differs():
    calls = itertools.count()

    def build():
        k = next(calls)
        return [fg.constant(1.0, name="same"), fg.constant([1.0, 2.0 + k], name="drifts")], {}

    with pytest.raises(AssertionError) as info:
        fg.testing.compare_devices(build, devices=("/cpu:0", "cpu"))
    assert "drifts:0" in str(info.value) and "index (1,)" in str(info.value)


# --- strategies ------------------------------------------------------------------------

def test_strategy_docstring_examples_run():
    failures, tried = doctest.testmod(fgst, verbose=False)
    assert tried > 5 and failures == 0


@settings(max_examples=20)
@given(pair=fgst.broadcastable_shapes(), triple=fgst.broadcastable_shapes(3, max_rank=2))
def test_broadcastable_shapes_broadcast(pair, triple):
    np.broadcast_shapes(*pair)
    np.broadcast_shapes(*triple)
    assert len(pair) == 2 and len(triple) == 3 and all(len(s) <= 2 for s in triple)


@settings(max_examples=20)
@given(shape=fgst.shapes(min_rank=1, max_rank=3, max_side=3), data=st.data())
def test_static_shapes_accept_their_concrete_shape(shape, data):
    static = data.draw(fgst.static_shapes(shape))
    assert fg.shapes.compatible(static, shape)
    assert data.draw(fgst.static_shapes(shape, unknown=False)) == shape


@settings(max_examples=20)
@given(dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_]),
       data=st.data())
def test_arrays_have_the_dtype_and_bounded_finite_values(dtype, data):
    a = data.draw(fgst.arrays(dtype, fgst.shapes(), -1.5, 0.75))
    assert a.dtype == dtype
    if a.dtype.kind in "fi":
        assert np.isfinite(a).all() and (a >= -1.5).all() and (a <= 0.75).all()


@settings(max_examples=20)
@given(recipe=fgst.graphs(ops=["tanh", "matmul", "concat"], min_ops=2, max_ops=4))
def test_graph_recipes_use_only_the_requested_ops(recipe):
    assert {s.op for s in recipe.steps} <= {"tanh", "matmul", "concat"}
    assert len(recipe.steps) >= 2
    with fg.Graph().as_default():
        out, placeholders, feed = recipe.build()
        assert set(feed) == set(placeholders) and all(p.op.type == "Placeholder"
                                                       for p in placeholders)
        assert out.graph is fg.get_default_graph()
    assert "GraphRecipe" in repr(recipe)


def test_graph_recipes_reject_unknown_ops():
    from hypothesis import find
    with pytest.raises(ValueError, match="unknown ops"):
        find(fgst.graphs(ops=["tanh", "fft"]), lambda r: True)
