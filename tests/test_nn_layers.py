"""Dense layer and initializers."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import ShapeError
from flowgraph.nn import init


def test_dense_computes_relu_affine_and_names_variables():
    x = fg.placeholder(fg.float64, (None, 3))
    layer = fg.nn.Dense(2, activation=fg.nn.relu, seed=0)
    y = layer(x)
    assert layer.kernel.op.name == "dense/kernel" and layer.bias.op.name == "dense/bias"
    sess = fg.Session()
    w = np.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0]])
    sess.load(layer.kernel, w)
    sess.load(layer.bias, [0.5, -0.5])
    xv = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.maximum(xv @ w + [0.5, -0.5], 0))
    with pytest.raises(ShapeError, match="built for 3 input features"):
        layer(fg.placeholder(fg.float64, (None, 4)))
    second = fg.nn.dense(x, 4, use_bias=False)
    assert second.shape == (None, 4) and fg.global_variables()[-1].op.name == "dense_1/kernel"


@pytest.mark.parametrize("shape", [(30, 50), (64, 8), (3, 4, 5)])
def test_glorot_uniform_range_variance_and_seed(shape):
    a = init.glorot_uniform(shape, seed=1, dtype=np.float64)
    fan_in, fan_out = init._fans(shape)
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert a.shape == shape and a.dtype == np.float64
    assert np.abs(a).max() <= limit
    # Var(U(-l, l)) = l^2 / 3 = 2 / (fan_in + fan_out); loose bound for small samples
    assert abs(a.var() / (limit ** 2 / 3) - 1) < 0.3
    np.testing.assert_array_equal(a, init.glorot_uniform(shape, seed=1, dtype=np.float64))
    assert not np.array_equal(a, init.glorot_uniform(shape, seed=2, dtype=np.float64))


@pytest.mark.parametrize("shape", [(6, 6), (10, 4), (4, 10), (2, 3, 6)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape):
    q = init.orthogonal(shape, seed=0, dtype=np.float64, gain=2.0)
    m = q.reshape(-1, shape[-1])
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)
    np.testing.assert_array_equal(q, init.orthogonal(shape, seed=0, dtype=np.float64,
                                                     gain=2.0))
    with pytest.raises(ValueError, match="rank >= 2"):
        init.orthogonal((5,))


def test_cells_are_reproducible_from_their_seed():
    def kernel(seed):
        with fg.Graph().as_default():
            cell = fg.nn.LSTMCell(3, seed=seed)
            cell(fg.placeholder(fg.float32, (1, 2)), cell.zero_state(1))
            return fg.Session().variable_value(cell.kernel)
    np.testing.assert_array_equal(kernel(7), kernel(7))
    assert not np.array_equal(kernel(7), kernel(8))


@pytest.mark.parametrize("module", ["flowgraph.nn.cells", "flowgraph.nn.rnn",
                                    "flowgraph.nn.layers", "flowgraph.nn.init",
                                    "flowgraph.train.optimizers", "flowgraph.train.clip",
                                    "flowgraph.train.saver"])
def test_docstring_examples_run(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
