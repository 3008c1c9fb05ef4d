"""fg.losses, TF1's tf.losses: every loss and reduction against NumPy formulas, weights
that broadcast, the losses collection, gradients against finite differences."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.testing import check_gradients

R = fg.losses.Reduction
rng = np.random.default_rng(0)
LABELS = rng.uniform(0, 1, size=(4, 3))
PRED = rng.uniform(0.05, 0.95, size=(4, 3))
WEIGHTS = np.array([[1.0], [0.0], [2.0], [0.5]])      # per row, broadcast over columns


def _numpy_elementwise(kind, labels, pred):
    e = pred - labels
    if kind == "absolute_difference":
        return np.abs(e)
    if kind == "mean_squared_error":
        return e ** 2
    if kind == "huber_loss":                                  # delta 0.3
        return np.where(np.abs(e) <= 0.3, 0.5 * e ** 2, 0.3 * (np.abs(e) - 0.15))
    if kind == "log_loss":
        return -labels * np.log(pred + 1e-7) - (1 - labels) * np.log(1 - pred + 1e-7)
    if kind == "sigmoid_cross_entropy":                        # pred read as logits
        return np.maximum(pred, 0) - pred * labels + np.log1p(np.exp(-np.abs(pred)))
    raise AssertionError(kind)


def _numpy_reduce(losses, weights, reduction):
    weighted = losses * weights
    full = np.broadcast_to(weights, losses.shape)
    return {R.NONE: weighted, R.SUM: weighted.sum(),
            R.MEAN: weighted.sum() / full.sum(),
            R.SUM_OVER_BATCH_SIZE: weighted.sum() / losses.size,
            R.SUM_BY_NONZERO_WEIGHTS: weighted.sum() / np.count_nonzero(full)}[reduction]


KINDS = ["absolute_difference", "mean_squared_error", "huber_loss", "log_loss",
         "sigmoid_cross_entropy"]


def _loss(kind, labels, pred, **kw):
    if kind == "huber_loss":
        return fg.losses.huber_loss(labels, pred, delta=0.3, **kw)
    if kind == "sigmoid_cross_entropy":
        return fg.losses.sigmoid_cross_entropy(labels, pred, **kw)
    return getattr(fg.losses, kind)(labels, pred, **kw)


@pytest.mark.parametrize("reduction", R.all())
@pytest.mark.parametrize("kind", KINDS)
def test_elementwise_losses_equal_numpy(kind, reduction):
    labels = fg.placeholder(fg.float64, (None, 3))
    pred = fg.placeholder(fg.float64, (None, 3))
    loss = _loss(kind, labels, pred, weights=WEIGHTS, reduction=reduction)
    got = fg.Session().run(loss, {labels: LABELS, pred: PRED})
    want = _numpy_reduce(_numpy_elementwise(kind, LABELS, PRED), WEIGHTS, reduction)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert fg.losses.get_losses() == [loss]


@pytest.mark.parametrize("kind", KINDS)
def test_elementwise_losses_gradients(kind):
    labels = fg.placeholder(fg.float64, (None, 3))
    pred = fg.placeholder(fg.float64, (None, 3))
    loss = _loss(kind, labels, pred, weights=WEIGHTS)
    check_gradients(loss, [pred], {labels: LABELS, pred: PRED})


def test_softmax_losses_with_smoothing_and_weights_equal_numpy():
    logits_v = rng.normal(size=(5, 4))
    ids = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[ids]
    w = np.array([1.0, 0.0, 3.0, 1.0, 0.5])
    logp = logits_v - logits_v.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    logits = fg.placeholder(fg.float64, (None, 4))
    sparse = fg.losses.sparse_softmax_cross_entropy(ids, logits, weights=w)
    smooth = fg.losses.softmax_cross_entropy(onehot, logits, weights=w, label_smoothing=0.2)
    got_sparse, got_smooth = fg.Session().run([sparse, smooth], {logits: logits_v})
    nll = -logp[np.arange(5), ids]
    np.testing.assert_allclose(got_sparse, (nll * w).sum() / 4, rtol=1e-12)
    soft = onehot * 0.8 + 0.2 / 4
    np.testing.assert_allclose(got_smooth, (-(soft * logp).sum(1) * w).sum() / 4, rtol=1e-12)
    check_gradients(sparse + smooth, [logits], {logits: logits_v})


def test_total_loss_collection_and_zero_weights():
    x = fg.placeholder(fg.float64, (3,))
    a = fg.losses.mean_squared_error(fg.zeros((3,), fg.float64), x)
    fg.losses.absolute_difference(fg.zeros((3,), fg.float64), x, loss_collection=None)
    zero = fg.losses.absolute_difference(fg.zeros((3,), fg.float64), x, weights=0.0)
    fg.losses.add_loss(fg.reduce_sum(x))
    total = fg.losses.get_total_loss()
    assert len(fg.losses.get_losses()) == 3
    xv = np.array([1.0, -2.0, 3.0])
    got_a, got_zero, got_total = fg.Session().run([a, zero, total], {x: xv})
    assert got_zero == 0.0                              # every weight 0: 0, not NaN
    np.testing.assert_allclose(got_a, np.mean(xv ** 2))
    np.testing.assert_allclose(got_total, np.mean(xv ** 2) + xv.sum())


def test_errors_name_the_loss_and_what_was_found():
    with pytest.raises(ValueError, match="no losses found"):
        fg.losses.get_total_loss()
    with pytest.raises(fg.errors.ShapeError, match=r"mean_squared_error: expected labels "
                       r"of the predictions' shape \(2, 3\), found \(3, 2\)"):
        fg.losses.mean_squared_error(fg.zeros((3, 2)), fg.zeros((2, 3)))
    with pytest.raises(ValueError, match="label_smoothing in"):
        fg.losses.softmax_cross_entropy(fg.zeros((2, 3)), fg.zeros((2, 3)),
                                        label_smoothing=2)
    with pytest.raises(ValueError, match="expected a Reduction"):
        fg.losses.compute_weighted_loss(fg.zeros((2,)), reduction="mean")
