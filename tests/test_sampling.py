"""TF1's sampling ops (fg.random.shuffle, categorical/multinomial) and candidate
samplers: TF1's seed rules and reproducibility, reference == compiled bit for bit,
statistics (chi-square with fixed seeds), TF1's expected-count formulas, and errors
naming the op or function and the caller's line."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import candidate_sampling_ops as cs
from flowgraph.errors import DTypeError, ShapeError

REF = fg.SessionConfig(optimize=False)
OPT = fg.SessionConfig(optimize=True, compile="eager")   # the Numba Philox rounds at once

# Chi-square acceptance: with k - 1 degrees of freedom the statistic's mean is k - 1 and
# its standard deviation sqrt(2 (k - 1)); we accept below mean + 5 sd (a false alarm
# has probability < 1e-5, and the seeds are fixed, so a pass is deterministic).


def _chi2_ok(counts, expected):
    counts, expected = np.asarray(counts, float), np.asarray(expected, float)
    keep = expected > 0
    assert counts[~keep].sum() == 0                 # nothing drawn where p == 0
    stat = (((counts - expected) ** 2)[keep] / expected[keep]).sum()
    dof = keep.sum() - 1
    return stat < dof + 5 * np.sqrt(2 * dof), stat


def _run_both(build, runs=2, feed=None):
    """The fetches of ``build()`` in ``runs`` runs, on the reference and compiled paths
    (new graphs, same seeds)."""
    out = []
    for config in (REF, OPT):
        with fg.Graph().as_default():
            fetches = build()
            with fg.Session(config=config) as sess:
                out.append([sess.run(fetches, feed) for _ in range(runs)])
    return out


def _assert_same(a, b):
    for ra, rb in zip(a, b):
        for x, y in zip(ra if isinstance(ra, (list, tuple)) else [ra],
                        rb if isinstance(rb, (list, tuple)) else [rb]):
            np.testing.assert_array_equal(x, y)


# --- shuffle ----------------------------------------------------------------------------

def test_shuffle_permutes_the_first_axis_and_keeps_rows_whole():
    x = np.arange(30).reshape(10, 3)
    with fg.Graph().as_default():
        y = fg.random.shuffle(fg.constant(x), seed=4)
        assert fg.random.shuffle is fg.random_shuffle
        assert y.shape == (10, 3) and y.dtype == fg.int64
        with fg.Session() as sess:
            a, b = sess.run(y), sess.run(y)
    for v in (a, b):
        assert sorted(v[:, 0].tolist()) == list(range(0, 30, 3))
        np.testing.assert_array_equal(v[:, 1:] - v[:, :1], np.tile([1, 2], (10, 1)))
    assert not np.array_equal(a, b)                 # every run draws anew


def test_shuffle_of_a_scalar_or_one_row_is_the_input():
    with fg.Graph().as_default():
        s = fg.random_shuffle(fg.constant(3.0), seed=1)
        r = fg.random_shuffle(fg.constant([[1.0, 2.0]]), seed=1)
        e = fg.random_shuffle(fg.zeros([0, 2]), seed=1)
        sv, rv, ev = fg.Session().run([s, r, e])
    assert sv == 3.0 and rv.tolist() == [[1.0, 2.0]] and ev.shape == (0, 2)


def test_shuffle_of_a_fed_batch_and_seed_rules_reference_equals_compiled():
    xv = np.arange(12, dtype=np.float32).reshape(6, 2)

    def build():
        fg.set_random_seed(7)
        x = fg.placeholder(fg.float32, (None, 2), name="x")
        build.x = x
        return [fg.random.shuffle(x), fg.random.shuffle(x, seed=3)]
    ref, opt = [], []
    for config, out in ((REF, ref), (OPT, opt)):
        with fg.Graph().as_default():
            fetches = build()
            with fg.Session(config=config) as sess:
                out.extend(sess.run(fetches, {build.x: xv}) for _ in range(3))
    _assert_same(ref, opt)
    again = []
    with fg.Graph().as_default():                    # a rebuilt graph repeats itself
        fetches = build()
        with fg.Session() as sess:
            again.extend(sess.run(fetches, {build.x: xv}) for _ in range(3))
    _assert_same(ref, again)


def test_shuffle_positions_are_uniform():
    # Where element 0 lands over 4000 runs of a 5-element shuffle: uniform.
    with fg.Graph().as_default():
        y = fg.random.shuffle(fg.range(5), seed=11)
        with fg.Session() as sess:
            where = [int(np.flatnonzero(sess.run(y) == 0)[0]) for _ in range(4000)]
    ok, stat = _chi2_ok(np.bincount(where, minlength=5), np.full(5, 800.0))
    assert ok, stat


# --- categorical / multinomial ----------------------------------------------------------

def test_categorical_frequencies_match_the_softmax():
    with np.errstate(divide="ignore"):
        logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.2, 0.1]]))
    with fg.Graph().as_default():
        s = fg.random.categorical(fg.constant(logits, fg.float32), 20000, seed=5)
        v = fg.Session().run(s)
    assert v.shape == (2, 20000) and v.dtype == np.int64
    for row in range(2):
        p = np.exp(logits[row])
        ok, stat = _chi2_ok(np.bincount(v[row], minlength=4), 20000 * p / p.sum())
        assert ok, (row, stat)
    assert (v[1] != 1).all()                         # logit -inf: never drawn


def test_multinomial_is_tf1s_spelling_and_output_dtype():
    assert fg.random.multinomial is fg.multinomial
    with fg.Graph().as_default():
        s = fg.multinomial([[0.0, 0.0, 0.0]], 6, seed=1, output_dtype=fg.int32)
        c = fg.random.categorical([[0.0, 0.0, 0.0]], 6, dtype=fg.int32, seed=1)
        assert s.dtype == fg.int32 and s.shape == (1, 6)
        a, b = fg.Session().run([s, c])
    np.testing.assert_array_equal(a, b)              # same seeds, same numbers


def test_categorical_reference_equals_compiled_and_new_sessions_repeat():
    def build():
        fg.set_random_seed(2)
        logits = fg.constant(np.random.default_rng(0).normal(size=(3, 7)), fg.float64)
        return [fg.random.categorical(logits, 9), fg.multinomial(logits, 4, seed=8)]
    ref, opt = _run_both(build, runs=3)
    _assert_same(ref, opt)
    assert not np.array_equal(ref[0][0], ref[1][0])
    again, _ = _run_both(build, runs=3)
    _assert_same(ref, again)


def test_categorical_errors_name_the_op_and_the_line():
    with fg.Graph().as_default():
        with pytest.raises(ShapeError, match=r"Multinomial .*test_sampling.py:\d+.*"
                                             r"\[batch_size, num_classes\]"):
            fg.random.categorical(fg.constant([1.0, 2.0]), 3)
        with pytest.raises(DTypeError, match="Multinomial .*float logits"):
            fg.random.categorical(fg.constant([[1, 2]]), 3)
        with pytest.raises(DTypeError, match=r"categorical: .*int32 or int64.*"
                                             r"test_sampling.py:\d+"):
            fg.random.categorical([[1.0, 2.0]], 3, dtype=fg.float32)
        with pytest.raises(ValueError, match=r"categorical: expected num_samples"):
            fg.random.categorical([[1.0, 2.0]], -1)


def test_int_uniform_needs_maxval_as_tf1():
    with fg.Graph().as_default():
        with pytest.raises(ValueError, match="maxval is required"):
            fg.random.uniform([3], dtype=fg.int32)
        u = fg.random.uniform([20000], 2, 7, dtype=fg.int64, seed=3)
        v = fg.Session().run(u)
    assert v.dtype == np.int64 and v.min() == 2 and v.max() == 6
    ok, stat = _chi2_ok(np.bincount(v - 2, minlength=5), np.full(5, 4000.0))
    assert ok, stat


# --- candidate samplers -----------------------------------------------------------------

SAMPLERS = {
    "uniform": lambda t, nt, n, u, r, seed: fg.nn.uniform_candidate_sampler(
        t, nt, n, u, r, seed=seed),
    "log_uniform": lambda t, nt, n, u, r, seed: fg.nn.log_uniform_candidate_sampler(
        t, nt, n, u, r, seed=seed),
    "fixed_unigram": lambda t, nt, n, u, r, seed: fg.nn.fixed_unigram_candidate_sampler(
        t, nt, n, u, r, unigrams=np.arange(1, r + 1, dtype=float), distortion=0.75,
        seed=seed),
}


def _probabilities(kind, r, classes):
    classes = np.asarray(classes, np.int64)
    if kind == "uniform":
        return np.full(classes.shape, np.float32(1.0 / r))
    if kind == "log_uniform":
        c = classes.astype(np.float64)
        return (np.log((c + 2.0) / (c + 1.0)) / np.log(r + 1.0)).astype(np.float32)
    w = np.power(np.arange(1, r + 1, dtype=np.float32), np.float32(0.75))
    return (w / np.cumsum(w, dtype=np.float32)[-1])[classes].astype(np.float32)


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
@pytest.mark.parametrize("unique", [False, True])
def test_samplers_return_tf1s_triple_with_tf1s_expected_counts(kind, unique):
    true = np.array([[0, 5], [9, 2], [3, 3]], np.int64)
    r, n = 12, 6
    with fg.Graph().as_default():
        s, t, e = SAMPLERS[kind](fg.constant(true), 2, n, unique, r, 4)
        assert (s.dtype, t.dtype, e.dtype) == (fg.int64, fg.float32, fg.float32)
        assert s.shape == (n,) and t.shape == (3, 2) and e.shape == (n,)
        with fg.Session() as sess:
            draws = [sess.run([s, t, e]) for _ in range(40)]
    saw_rejection = False
    for sv, tv, ev in draws:
        assert sv.min() >= 0 and sv.max() < r
        if unique:
            assert len(set(sv.tolist())) == n
        # num_tries is not an output: recover it from an expected count where the
        # shortcut p * n does not apply (TF1's formula is invertible in num_tries).
        p_true, p_s = _probabilities(kind, r, true), _probabilities(kind, r, sv)
        if np.allclose(ev, p_s * np.float32(n), rtol=0, atol=0):
            np.testing.assert_array_equal(tv, (p_true * np.float32(n)).astype(np.float32))
            continue
        assert unique, "unique=False always takes p * num_sampled"
        saw_rejection = True
        tries = int(round(np.log1p(-ev[0]) / np.log1p(-p_s[0])))
        assert tries > n

        def helper(p):
            return (-np.expm1(np.float32(tries) * np.log1p(-p))).astype(np.float32)
        np.testing.assert_array_equal(ev, helper(p_s))
        np.testing.assert_array_equal(tv, helper(p_true))
    if unique:
        assert saw_rejection           # 6 of 12 distinct: repeats happen in 40 runs


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_sampler_frequencies_match_the_probabilities(kind):
    r, n, runs = 10, 50, 80
    with fg.Graph().as_default():
        s, _, _ = SAMPLERS[kind]([[0]], 1, n, False, r, 9)
        with fg.Session() as sess:
            v = np.concatenate([sess.run(s) for _ in range(runs)])
    p = _probabilities(kind, r, np.arange(r)).astype(np.float64)
    ok, stat = _chi2_ok(np.bincount(v, minlength=r), n * runs * p / p.sum())
    assert ok, (kind, stat)


def test_samplers_reference_equals_compiled_and_follow_the_seed_rules():
    def build():
        fg.set_random_seed(3)
        t = fg.placeholder(fg.int64, (None, 1), name="t")
        build.t = t
        return [list(SAMPLERS[k](t, 1, 5, u, 9, None)) for k in sorted(SAMPLERS)
                for u in (False, True)]
    feed_v = np.array([[1], [4]], np.int64)
    outs = []
    for config in (REF, OPT, OPT):
        with fg.Graph().as_default():
            fetches = build()
            with fg.Session(config=config) as sess:
                outs.append([sess.run(fetches, {build.t: feed_v}) for _ in range(3)])
    for run_a, run_b, run_c in zip(*outs):
        for a, b, c in zip(run_a, run_b, run_c):
            for x, y, z in zip(a, b, c):
                np.testing.assert_array_equal(x, y)
                np.testing.assert_array_equal(x, z)
    assert not np.array_equal(outs[0][0][0][0], outs[0][1][0][0])   # runs differ


def test_samplers_have_no_gradient():
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, (2, 1))
        s, t, e = fg.nn.uniform_candidate_sampler(fg.cast(x, fg.int64), 1, 3, True, 5)
        (g,) = fg.gradients(fg.reduce_sum(t) + fg.reduce_sum(e), [x])
        assert g is None or not fg.Session().run(g, {x: [[1.0], [2.0]]}).any()


def test_fixed_unigram_reserved_ids_shards_and_zero_weights():
    # TF1: the reserved ids weigh 0; a shard keeps the ids % num_shards == shard,
    # counting the unigrams from the number of weights kept so far (as TF1's loop).
    w = cs.fixed_unigram_candidate_sampler
    with fg.Graph().as_default():
        s, t, _ = w([[0], [1]], 1, 200, False, 4, num_reserved_ids=1,
                    unigrams=[1.0, 2.0, 0.0], seed=1)
        sv, tv = fg.Session().run([s, t])
    assert set(sv.tolist()) == {1, 2}
    np.testing.assert_array_equal(tv, np.float32([[0.0], [200 * np.float32(1 / 3)]]))
    # Shard 1 of 2: of the reserved ids 0..2 only id 1 (weight 0); the unigrams are then
    # numbered from 1 (the weights kept so far), so 5.0 (1) and 9.0 (3) are kept.
    with fg.Graph().as_default():
        s, t, e = w([[1]], 1, 3, False, 3, num_reserved_ids=3, num_shards=2, shard=1,
                    unigrams=[5.0, 7.0, 9.0, 11.0], seed=1)
        tv = fg.Session().run(t)
    np.testing.assert_array_equal(tv, [[np.float32(5) / np.float32(14) * np.float32(3)]])


def test_sampler_errors_name_the_function_and_the_line():
    line = r"test_sampling.py:\d+"
    with fg.Graph().as_default():
        with pytest.raises(ValueError, match=r"uniform_candidate_sampler: unique=True needs "
                                             r"num_sampled <= range_max.*" + line):
            fg.nn.uniform_candidate_sampler([[0]], 1, 6, True, 5)
        with pytest.raises(ShapeError, match=r"CandidateSampler .*" + line +
                                             r".*\[batch_size, num_true=2\]"):
            fg.nn.log_uniform_candidate_sampler([[0]], 2, 3, False, 5)
        with pytest.raises(DTypeError, match="CandidateSampler .*int64 true_classes"):
            fg.nn.log_uniform_candidate_sampler([[0.0]], 1, 3, False, 5)
        with pytest.raises(NotImplementedError, match="vocab_file.*unigrams=.*" + line):
            fg.nn.fixed_unigram_candidate_sampler([[0]], 1, 3, False, 5, vocab_file="v.txt")
        with pytest.raises(ValueError, match="range_max is 5 but there are 3 weights"):
            fg.nn.fixed_unigram_candidate_sampler([[0]], 1, 3, False, 5, unigrams=[1, 2, 3])
        with pytest.raises(ValueError, match="2 classes have a weight > 0, too few"):
            fg.nn.fixed_unigram_candidate_sampler([[0]], 1, 3, True, 3, unigrams=[1, 0, 3])
        with pytest.raises(ValueError, match="expected num_sampled an int >= 1"):
            fg.nn.uniform_candidate_sampler([[0]], 1, 0, False, 5)


def test_expected_count_helper_is_tf1s():
    p = np.float32([0.1, 0.5, 1.0])
    np.testing.assert_array_equal(cs.expected_counts(p, 4, 4), p * np.float32(4))
    np.testing.assert_array_equal(cs.expected_counts(p, 4, 7),
                                  -np.expm1(np.float32(7) * np.log1p(-p)))
    assert cs.expected_counts(p, 4, 7)[2] == 1.0
