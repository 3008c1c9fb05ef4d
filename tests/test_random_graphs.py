"""Property tests of autodiff and execution on random graphs drawn by
``flowgraph.testing.strategies.graphs``.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.testing import strategies as fgst

CONFIGS = [pytest.param(fg.SessionConfig(optimize=False), id="reference"),
           pytest.param(fg.SessionConfig(optimize=True), id="optimized")]


@pytest.mark.parametrize("config", CONFIGS)
@settings(max_examples=25)
@given(recipe=fgst.graphs(min_ops=3, max_ops=8, unknown_dims=True))
def test_random_graph_forward_matches_numpy(config, recipe):
    with fg.Graph().as_default():
        out, _, feed = recipe.build()
        with fg.Session(config=config) as sess:
            got = sess.run(out, feed)
    np.testing.assert_allclose(got, recipe.evaluate_numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=25)
@given(recipe=fgst.graphs(min_ops=3, max_ops=8, unknown_dims=True))
def test_random_graph_first_order_gradients_match_finite_differences(recipe):
    with fg.Graph().as_default():
        out, placeholders, feed = recipe.build()
        fg.testing.check_gradients(out, placeholders, feed)


@settings(max_examples=15)
@given(recipe=fgst.graphs(min_ops=2, max_ops=5), data=st.data())
def test_random_graph_second_order_gradients_match_finite_differences(recipe, data):
    with fg.Graph().as_default():
        out, placeholders, feed = recipe.build()
        grads = fg.gradients(out, placeholders)
        weights = [data.draw(fgst.arrays(np.float64, np.shape(feed[p]), 0.5, 1.5))
                   for p in placeholders]
        total = fg.add_n([fg.reduce_sum(g * w) for g, w in zip(grads, weights)])
        fg.testing.check_gradients(total, placeholders, feed)


@settings(max_examples=15)
@given(recipe=fgst.graphs(min_ops=2, max_ops=5))
def test_gradient_graphs_agree_between_reference_and_optimized_sessions(recipe):
    with fg.Graph().as_default():
        out, placeholders, feed = recipe.build()
        grads = fg.gradients(out, placeholders)
        second = fg.gradients(fg.add_n([fg.reduce_sum(g) for g in grads]), placeholders)
        results = []
        for optimize in (False, True):
            with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
                results.append(sess.run([out, grads, second], feed))
    ref, opt = results
    np.testing.assert_allclose(opt[0], ref[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(ref[1] + ref[2], opt[1] + opt[2]):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


@settings(max_examples=10)
@given(recipe=fgst.graphs(max_ops=4, dtype=np.float32))
def test_random_float32_graphs_keep_their_dtype_and_match_numpy(recipe):
    with fg.Graph().as_default():
        out, placeholders, feed = recipe.build()
        grads = fg.gradients(out, placeholders)
        with fg.Session() as sess:
            got, got_grads = sess.run([out, grads], feed)
    assert got.dtype == np.float32
    assert all(g.dtype == np.float32 for g in got_grads)
    want = recipe.evaluate_numpy([v.astype(np.float64) for v in recipe.inputs])
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


@settings(max_examples=10)
@given(recipe=fgst.graphs(max_ops=4), scale=st.floats(0.5, 1.5))
def test_gradient_is_linear_in_grad_ys(recipe, scale):
    """fg.gradients(y, x, grad_ys=c * ones) == c * fg.gradients(y, x)."""
    with fg.Graph().as_default():
        out, placeholders, feed = recipe.build()
        plain = fg.gradients(out, placeholders)
        seed = fg.ones_like(out) * scale
        scaled = fg.gradients(out, placeholders, grad_ys=seed)
        with fg.Session() as sess:
            a, b = sess.run([plain, scaled], feed)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y, scale * x, rtol=1e-12, atol=1e-12)
