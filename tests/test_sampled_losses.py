"""fg.nn.sampled_softmax_loss and fg.nn.nce_loss: TF1's _compute_sampled_logits
against NumPy with fixed candidates, accidental hits, partitioned weights, gradients
(finite differences, second order), the embedding gradient staying one GatherGrad,
and a word2vec skip-gram toy that trains, compiled == reference."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.testing import check_gradients

REF = fg.SessionConfig(optimize=False)
EAGER = fg.SessionConfig(optimize=True, compile="eager")   # kernels compiled before a run
FLT_MAX = np.float64(np.finfo(np.float32).max)

RNG = np.random.default_rng(0)
V, D, B = 7, 3, 4
W0 = RNG.normal(size=(V, D))
B0 = RNG.normal(size=V) * 0.1
X0 = RNG.normal(size=(B, D))
LABELS = np.array([[1, 4], [0, 2], [5, 5], [3, 6]], np.int64)    # num_true = 2
SAMPLED = np.array([2, 5, 6], np.int64)
TRUE_EC = RNG.uniform(0.2, 0.9, size=(B, 2)).astype(np.float32)
SAMPLED_EC = np.float32([0.3, 0.6, 0.45])


def _numpy_logits(w, b, x, labels, sampled, true_ec, sampled_ec, remove_hits):
    """TF1's _compute_sampled_logits, in NumPy (float64)."""
    num_true = labels.shape[1]
    true_logits = np.einsum("bd,btd->bt", x, w[labels]) + b[labels]
    sampled_logits = x @ w[sampled].T + b[sampled]
    if remove_hits:
        hits = (labels[:, :, None] == sampled[None, None, :]).any(axis=1)
        sampled_logits = sampled_logits + np.where(hits, -FLT_MAX, 0.0)
    true_logits = true_logits - np.log(true_ec.astype(np.float64))
    sampled_logits = sampled_logits - np.log(sampled_ec.astype(np.float64))
    logits = np.concatenate([true_logits, sampled_logits], 1)
    targets = np.concatenate([np.full(true_logits.shape, 1.0 / num_true),
                              np.zeros(sampled_logits.shape)], 1)
    return logits, targets


def _numpy_softmax_loss(logits, targets):
    m = logits.max(axis=1, keepdims=True)
    log_sm = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return -(targets * log_sm).sum(axis=1)


def _numpy_nce_loss(logits, targets):
    x = logits
    return (np.maximum(x, 0) - x * targets + np.log1p(np.exp(-np.abs(x)))).sum(axis=1)


def _build(loss_fn, remove_hits, weights=None, dtype=fg.float64):
    w = fg.Variable(W0.astype(dtype), name="w") if weights is None else weights
    b = fg.Variable(B0.astype(dtype), name="b")
    x = fg.placeholder(dtype, (None, D), name="x")
    labels = fg.placeholder(fg.int64, (None, 2), name="labels")
    loss = loss_fn(w, b, labels, x, num_sampled=3, num_classes=V, num_true=2,
                   sampled_values=(fg.constant(SAMPLED), fg.constant(TRUE_EC),
                                   fg.constant(SAMPLED_EC)),
                   remove_accidental_hits=remove_hits)
    return w, b, x, labels, loss


LOSSES = {"sampled_softmax": (fg.nn.sampled_softmax_loss, _numpy_softmax_loss),
          "nce": (fg.nn.nce_loss, _numpy_nce_loss)}


@pytest.mark.parametrize("kind", sorted(LOSSES))
@pytest.mark.parametrize("remove_hits", [False, True])
@pytest.mark.parametrize("config", [REF, EAGER], ids=["reference", "compiled"])
def test_loss_equals_numpy_with_fixed_candidates(kind, remove_hits, config):
    loss_fn, numpy_loss = LOSSES[kind]
    with fg.Graph().as_default():
        _, _, x, labels, loss = _build(loss_fn, remove_hits)
        assert len(loss.shape) == 1
        with fg.Session(config=config) as sess:
            sess.run(fg.global_variables_initializer())
            got = sess.run(loss, {x: X0, labels: LABELS})
    logits, targets = _numpy_logits(W0, B0, X0, LABELS, SAMPLED, TRUE_EC, SAMPLED_EC,
                                     remove_hits)
    np.testing.assert_allclose(got, numpy_loss(logits, targets), rtol=1e-12)


def test_accidental_hits_are_masked_as_tf1():
    # Row 1's labels (0, 2) hold sampled class 2, row 2's (5, 5) class 5, row 3's
    # (3, 6) class 6: those logits become about -FLT_MAX; the rest are untouched.
    with fg.Graph().as_default():
        labels = fg.constant(LABELS)
        sv = (fg.constant(SAMPLED), fg.constant(TRUE_EC), fg.constant(SAMPLED_EC))
        logits, targets = fg.nn.sampled_losses._compute_sampled_logits(
            fg.constant(W0), fg.constant(B0), labels, fg.constant(X0), 3, V, num_true=2,
            sampled_values=sv, remove_accidental_hits=True)
        with_hits, _ = fg.nn.sampled_losses._compute_sampled_logits(
            fg.constant(W0), fg.constant(B0), labels, fg.constant(X0), 3, V, num_true=2,
            sampled_values=sv, remove_accidental_hits=False)
        lv, tv, plain = fg.Session().run([logits, targets, with_hits])
    masked = lv[:, 2:] < -1e38
    np.testing.assert_array_equal(masked, [[False, False, False], [True, False, False],
                                           [False, True, False], [False, False, True]])
    np.testing.assert_array_equal(lv[:, 2:][~masked], plain[:, 2:][~masked])
    np.testing.assert_array_equal(tv, np.tile([0.5, 0.5, 0, 0, 0], (B, 1)))


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_gradients_match_finite_differences(kind):
    with fg.Graph().as_default():
        w, b, x, labels, loss = _build(LOSSES[kind][0], True)
        feed = {x: X0, labels: LABELS}
        check_gradients(loss, [w, b, x], feed)


@pytest.mark.parametrize("kind", sorted(LOSSES))
@pytest.mark.parametrize("config", [REF, EAGER], ids=["reference", "compiled"])
def test_second_order_gradients_match_finite_differences(kind, config):
    # The compiled plan has a reduction written straight into a window of a concat (a
    # strided output: tests/test_sampled_losses.py found it typed read-only, fixed in
    # flowgraph/backends/cpu_steps.py).
    with fg.Graph().as_default():
        w, b, x, labels, loss = _build(LOSSES[kind][0], False)
        (gx,) = fg.gradients(fg.reduce_sum(loss), [x])
        check_gradients(fg.reduce_sum(gx * gx), [x, w], {x: X0, labels: LABELS},
                        config=config)


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_embedding_gradient_stays_one_gather_grad(kind):
    # The weights' and biases' gradients are one GatherGrad each (their rows at the
    # true and sampled ids): what the optimizers apply sparsely (SparseRowsSGD).
    with fg.Graph().as_default():
        w, b, x, labels, loss = _build(LOSSES[kind][0], True)
        gw, gb = fg.gradients(fg.reduce_mean(loss), [w, b])
        assert gw.op.type == "GatherGrad" and gb.op.type == "GatherGrad"
        fg.train.GradientDescentOptimizer(0.1).minimize(fg.reduce_mean(loss))
        updates = [op for op in fg.get_default_graph().operations
                   if op.type == "SparseRowsSGD"]
        assert {op.attrs["variable"] for op in updates} == {w, b}


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_partitioned_weights_equal_the_whole_table(strategy):
    if strategy == "mod":
        shards = [W0[0::3], W0[1::3], W0[2::3]]
    else:   # 7 rows in 3 shards: 3, 2, 2
        shards = [W0[:3], W0[3:5], W0[5:]]
    with fg.Graph().as_default():
        parts = [fg.constant(s) for s in shards]
        b = fg.constant(B0)
        sv = (fg.constant(SAMPLED), fg.constant(TRUE_EC), fg.constant(SAMPLED_EC))
        split = fg.nn.sampled_softmax_loss(parts, b, LABELS, X0, 3, V, num_true=2,
                                           sampled_values=sv, partition_strategy=strategy)
        whole = fg.nn.sampled_softmax_loss(fg.constant(W0), b, LABELS, X0, 3, V,
                                           num_true=2, sampled_values=sv)
        a, c = fg.Session().run([split, whole])
    np.testing.assert_allclose(a, c, rtol=1e-12)


def test_default_sampler_is_log_uniform_unique_and_seeded():
    def run(config):
        with fg.Graph().as_default():
            fg.set_random_seed(1)
            w = fg.constant(W0.astype(np.float32))
            loss = fg.nn.sampled_softmax_loss(w, fg.zeros([V]), LABELS[:, :1],
                                              X0.astype(np.float32), 4, V, seed=2)
            samplers = [op for op in fg.get_default_graph().operations
                        if op.type == "CandidateSampler"]
            assert len(samplers) == 1
            assert samplers[0].attrs["sampler"] == "log_uniform"
            assert samplers[0].attrs["unique"]
            with fg.Session(config=config) as sess:
                return [sess.run(loss) for _ in range(3)]
    a, b = run(REF), run(EAGER)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    assert np.isfinite(np.concatenate(a)).all()


def test_errors_name_the_function_and_the_line():
    with fg.Graph().as_default():
        with pytest.raises(TypeError, match=r"integer labels.*test_sampled_losses.py:\d+"):
            fg.nn.nce_loss(fg.constant(W0), fg.constant(B0), [[0.5]], X0[:1], 2, V)
        with pytest.raises(ValueError, match=r"\[batch_size, num_true\]"):
            fg.nn.nce_loss(fg.constant(W0), fg.constant(B0), [0, 1], X0[:2], 2, V)


# --- word2vec skip-gram -----------------------------------------------------------------

CORPUS = ("the quick brown fox jumps over the lazy dog the dog sleeps the fox runs "
          "a quick dog jumps a lazy fox sleeps").split()


def _skipgram_pairs(window=1):
    vocab = sorted(set(CORPUS), key=lambda w: (-CORPUS.count(w), w))   # by frequency
    ids = np.array([vocab.index(w) for w in CORPUS])
    centers, contexts = [], []
    for i in range(len(ids)):
        for j in range(max(0, i - window), min(len(ids), i + window + 1)):
            if j != i:
                centers.append(ids[i])
                contexts.append(ids[j])
    return len(vocab), np.array(centers), np.array(contexts)[:, None]


def _train_word2vec(config, loss_name, steps=60):
    vocab, centers, contexts = _skipgram_pairs()
    with fg.Graph().as_default():
        fg.set_random_seed(0)
        emb = fg.Variable(fg.random_uniform([vocab, 8], -1.0, 1.0, seed=1), name="emb")
        nce_w = fg.Variable(fg.truncated_normal([vocab, 8], stddev=0.3, seed=2), name="nce_w")
        nce_b = fg.Variable(np.zeros(vocab, np.float32), name="nce_b")
        center = fg.placeholder(fg.int32, (None,))
        context = fg.placeholder(fg.int64, (None, 1))
        embed = fg.nn.embedding_lookup(emb, center)
        loss_fn = fg.nn.nce_loss if loss_name == "nce" else fg.nn.sampled_softmax_loss
        loss = fg.reduce_mean(loss_fn(nce_w, nce_b, context, embed, num_sampled=4,
                                      num_classes=vocab))
        train = fg.train.GradientDescentOptimizer(0.5).minimize(loss)
        full_logits = fg.matmul(embed, nce_w, transpose_b=True) + nce_b
        full = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=fg.reshape(context, [-1]), logits=full_logits))
        feed = {center: centers, context: contexts}
        with fg.Session(config=config) as sess:
            sess.run(fg.global_variables_initializer())
            before = sess.run(full, feed)
            losses = [sess.run([loss, train], feed)[0] for _ in range(steps)]
            after = sess.run(full, feed)
    return before, after, np.array(losses)


@pytest.mark.parametrize("loss_name", ["nce", "sampled_softmax"])
def test_word2vec_skipgram_trains_and_compiled_equals_reference(loss_name):
    before, after, ref_losses = _train_word2vec(REF, loss_name)
    _, after_opt, opt_losses = _train_word2vec(EAGER, loss_name)
    assert after < 0.9 * before                        # the full softmax loss falls
    assert ref_losses[-10:].mean() < 0.8 * ref_losses[:10].mean()
    np.testing.assert_allclose(opt_losses, ref_losses, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(after_opt, after, rtol=2e-4)


# --- on a GPU: the samplers on the host (random ops), the losses' ops on the device -----

@pytest.mark.usefixtures("needs_gpu")
def test_sampling_ops_and_losses_on_the_gpu_equal_the_cpu():
    def build():
        fg.set_random_seed(4)
        x = fg.placeholder(fg.float32, (None, D))
        labels = fg.placeholder(fg.int64, (None, 1))
        w = fg.constant(W0.astype(np.float32))
        b = fg.constant(B0.astype(np.float32))
        sampled = fg.nn.log_uniform_candidate_sampler(labels, 1, 3, True, V)
        nce = fg.nn.nce_loss(w, b, labels, x, 3, V, sampled_values=sampled)
        softmax = fg.nn.sampled_softmax_loss(w, b, labels, x, 3, V, seed=1)
        g = fg.gradients(fg.reduce_sum(nce) + fg.reduce_sum(softmax), [x])
        return [nce, softmax, g, list(sampled), fg.random.shuffle(x),
                fg.random.categorical(x, 5)], {x: X0.astype(np.float32), labels: LABELS[:, :1]}
    results = fg.testing.compare_devices(build)
    cpu, gpu = results["/cpu:0"], results["/gpu:0"]
    for a, b in zip(cpu[3:], gpu[3:]):          # the draws: bit-identical
        for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            np.testing.assert_array_equal(u, v)


def test_a_reduction_into_a_strided_concat_window_compiles():
    # The compiled plan writes reduce_sum(...) straight into its window of the concat
    # (a strided view of the (4, 5) buffer); the kernel then indexes that buffer. It
    # was passed as a read-only broadcast, which Numba refused to compile (eager).
    xv = RNG.normal(size=(4, 3))
    t = RNG.normal(size=(4, 2, 3))
    out = {}
    for label, config in (("ref", REF), ("opt", EAGER)):
        with fg.Graph().as_default():
            x = fg.placeholder(fg.float64, (None, 3))
            rows = fg.reduce_sum(fg.expand_dims(x, 1) * fg.constant(t), axis=2)
            loss = fg.reduce_sum(fg.sigmoid(fg.concat([rows, x], 1)))
            (gx,) = fg.gradients(loss, [x])
            fetches = [gx, fg.gradients(fg.reduce_sum(gx * gx), [x])[0]]
            with fg.Session(config=config) as sess:
                out[label] = sess.run(fetches, {x: xv})
    for a, b in zip(out["ref"], out["opt"]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
