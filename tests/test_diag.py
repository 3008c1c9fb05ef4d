"""TF1's tf.linalg.diag / diag_part / trace (tf.matrix_diag, tf.matrix_diag_part,
tf.trace) against NumPy, batched, rectangular both ways, on both paths; gradients first
and second order against finite differences; errors naming the function and call site."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 2), (2, 3, 3), (2, 1, 3, 2)])
def test_diag_part_trace_and_diag_match_numpy(shape):
    value = np.random.default_rng(0).normal(size=shape)
    x = fg.placeholder(fg.float64, (None,) + shape[1:] if len(shape) > 2 else shape)
    d = fg.linalg.diag_part(x)
    outs = [d, fg.linalg.trace(x), fg.linalg.diag(d)]
    want_d = np.diagonal(value, axis1=-2, axis2=-1)
    want = [want_d, np.trace(value, axis1=-2, axis2=-1),
            want_d[..., :, None] * np.eye(want_d.shape[-1])]
    for got in run_both(outs, {x: value}):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-14)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_gradients_first_and_second_order(config):
    value = np.random.default_rng(1).normal(size=(2, 3, 4))
    x = fg.placeholder(fg.float64, (2, 3, 4))
    y = fg.linalg.diag(fg.linalg.diag_part(x) ** 3) + fg.expand_dims(
        fg.expand_dims(fg.trace(x * x), -1), -1)
    assert check_gradients(y, [x], {x: value}, config=config) < 1e-6
    g, = fg.gradients(fg.reduce_sum(y * y), [x])
    assert check_gradients(g, [x], {x: value}, config=config) < 1e-5


def test_errors_name_the_function_and_the_call_site():
    with pytest.raises(fg.errors.ShapeError, match=r"diag_part \(called at .*test_diag.py:\d+"
                                                   r"\): expected the last 2 dimension"):
        fg.linalg.diag_part(fg.placeholder(fg.float32, (3, None)))
    with pytest.raises(fg.errors.ShapeError, match=r"trace \(called at .*rank 2 or more"):
        fg.trace(fg.ones([3]))
    with pytest.raises(ValueError, match=r"diag \(called at .*only the main diagonal"):
        fg.linalg.diag(fg.ones([3]), k=1)
