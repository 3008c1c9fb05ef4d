"""What a run's variable reads and assignments see, compiled and on the reference path.

The semantics the compiled plan's variable steps must keep (whatever they copy or skip
copying): a ``Variable`` read sees the value at the start of the run even when an
assignment to it runs earlier in the same step; ``read_value()`` under a control
dependency sees that assignment; a run's assignments are committed whole, after the
run, to the session, where every other plan, ``sess.run(var)``, ``load`` and the saver
find them; a fetched value is the caller's own (later runs do not change it); a run
that fails commits nothing.
"""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import NumericsError

CONFIGS = [pytest.param(dict(optimize=False), id="reference"),
           pytest.param(dict(optimize=True), id="compiled"),
           pytest.param(dict(optimize=True, compile="never"), id="compiled-interim")]


def _session(config, **extra):
    return fg.Session(config=fg.SessionConfig(**config, **extra))


@pytest.mark.parametrize("config", CONFIGS)
def test_reads_before_and_after_an_assignment_in_one_run(config):
    v = fg.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
    before = v.value() * 2.0                 # scheduled after the assignment or not
    assign = v.assign(v.value() + 10.0)
    with fg.control_dependencies([assign]):
        after = v.read_value() * 1.0
    late = v.value() + 0.0                   # created after the assignment: still old
    sess = _session(config)
    start = np.arange(6, dtype=np.float32).reshape(2, 3)
    got_before, got_after, got_late = sess.run([before, after, late])
    np.testing.assert_array_equal(got_before, start * 2.0)
    np.testing.assert_array_equal(got_after, start + 10.0)
    np.testing.assert_array_equal(got_late, start)
    np.testing.assert_array_equal(sess.run(v), start + 10.0)
    # the next run starts from the committed value
    got_before, got_after, _ = sess.run([before, after, late])
    np.testing.assert_array_equal(got_before, (start + 10.0) * 2.0)
    np.testing.assert_array_equal(got_after, start + 20.0)


@pytest.mark.parametrize("config", CONFIGS)
def test_two_plans_share_a_variable(config):
    """One plan updates, another reads and updates too: each run starts from what the
    last run of either committed."""
    v = fg.Variable(np.ones((4, 3), np.float32), name="v")
    double = v.assign(v.value() * 2.0)
    x = fg.placeholder(fg.float32, (4, 3))
    add = v.assign(v.value() + x)
    total = fg.reduce_sum(v.value())
    sess = _session(config)
    expect = np.ones((4, 3), np.float32)
    for i in range(3):
        sess.run(double)
        expect = expect * 2.0
        assert float(sess.run(total)) == float(expect.sum())
        feed = np.full((4, 3), float(i), np.float32)
        sess.run(add, {x: feed})
        expect = expect + feed
        np.testing.assert_array_equal(sess.run(v), expect)
    sess.load(v, np.zeros((4, 3)))
    sess.run(double)
    np.testing.assert_array_equal(sess.variable_value(v), np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("config", CONFIGS)
def test_a_fetched_value_is_not_changed_by_later_runs(config):
    v = fg.Variable(np.ones(5, np.float32), name="v")
    step = v.assign(v.value() * 3.0)
    sess = _session(config)
    first = sess.run(v)
    new = sess.run(step.outputs[0])
    sess.run(step)
    np.testing.assert_array_equal(first, np.ones(5))
    np.testing.assert_array_equal(new, np.full(5, 3.0))
    np.testing.assert_array_equal(sess.run(v), np.full(5, 9.0))


@pytest.mark.parametrize("config", CONFIGS)
def test_a_failed_run_commits_no_assignment(config):
    v = fg.Variable(np.ones(3, np.float32), name="v")
    x = fg.placeholder(fg.float32, (3,))
    update = v.assign(v.value() + x)
    # a NaN made after the assignment ran (the log of a negative number)
    with fg.control_dependencies([update]):
        checked = fg.log(x)
    sess = _session(config, check_numerics=True)
    sess.run([update, checked], {x: np.ones(3, np.float32)})
    np.testing.assert_array_equal(sess.run(v), np.full(3, 2.0))
    with pytest.raises(NumericsError):
        sess.run([update, checked], {x: -np.ones(3, np.float32)})
    np.testing.assert_array_equal(sess.run(v), np.full(3, 2.0))
    # the same plan again: it starts from the committed value, not from what the
    # failed run's update left in the plan's buffers (compiled: the new value is
    # written over the variable's read buffer, see BufferLayout._resident)
    sess.run([update, checked], {x: np.full(3, 0.5, np.float32)})
    np.testing.assert_array_equal(sess.run(v), np.full(3, 2.5))
    if config.get("optimize"):
        assert any(plan._resident for plan in sess._plans.values())


@pytest.mark.parametrize("config", CONFIGS)
def test_an_index_error_after_the_update_commits_nothing(config):
    """A failure that is not a NaN check (an index out of range), after the kernel
    computing the new value ran: the next run of the same plan starts from the
    committed value."""
    v = fg.Variable(np.arange(4, dtype=np.float32), name="v")
    i = fg.placeholder(fg.int32, (2,))
    new = v.value() * 2.0 + 1.0              # computed first,
    picked = fg.gather(fg.constant(np.arange(5, dtype=np.float32)), i)   # then fails
    with fg.control_dependencies([picked]):
        update = v.assign(new)               # before the assignment runs
    sess = _session(config)
    sess.run([update, picked], {i: np.array([0, 1], np.int32)})
    expect = np.arange(4, dtype=np.float32) * 2.0 + 1.0
    np.testing.assert_array_equal(sess.run(v), expect)
    with pytest.raises(fg.errors.InvalidArgumentError):
        sess.run([update, picked], {i: np.array([0, 9], np.int32)})
    np.testing.assert_array_equal(sess.run(v), expect)
    sess.run([update, picked], {i: np.array([4, 1], np.int32)})
    np.testing.assert_array_equal(sess.run(v), expect * 2.0 + 1.0)


def _adam_model(seed=0):
    rng = np.random.default_rng(seed)
    x = fg.placeholder(fg.float32, (8, 5))
    y = fg.placeholder(fg.int32, (8,))
    w = fg.Variable(rng.normal(size=(5, 4)).astype(np.float32), name="w")
    b = fg.Variable(np.zeros(4, np.float32), name="b")
    logits = fg.matmul(fg.tanh(x), w) + b
    loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                       logits=logits))
    opt = fg.train.AdamOptimizer(0.05)
    grads, variables = zip(*opt.compute_gradients(loss))
    clipped, _ = fg.clip_by_global_norm(list(grads), 0.5)
    step = fg.Variable(np.int64(0), name="global_step", trainable=False)
    train = opt.apply_gradients(zip(clipped, variables), global_step=step)
    feeds = {x: rng.normal(size=(8, 5)).astype(np.float32),
             y: rng.integers(0, 4, size=8).astype(np.int32)}
    return loss, train, feeds, (w, b, step)


def test_adam_with_clipping_equals_the_reference_path():
    loss, train, feeds, variables = _adam_model()
    results = {}
    for name, config in (("reference", dict(optimize=False)),
                         ("compiled", dict(optimize=True))):
        sess = _session(config)
        losses = [sess.run([loss, train], feeds)[0] for _ in range(5)]
        # every variable the optimizer owns (slots, beta powers) as well as the weights
        results[name] = (losses, [sess.variable_value(v) for v in fg.global_variables()])
    ref_losses, ref_values = results["reference"]
    got_losses, got_values = results["compiled"]
    np.testing.assert_allclose(got_losses, ref_losses, rtol=2e-5, atol=1e-6)
    assert len(got_values) == len(ref_values) > 3
    for got, want in zip(got_values, ref_values):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert int(results["compiled"][1][fg.global_variables().index(variables[2])]) == 5


@pytest.mark.parametrize("config", CONFIGS)
def test_session_run_of_a_variable_after_training_steps(config):
    loss, train, feeds, (w, b, step) = _adam_model(1)
    sess = _session(config)
    for _ in range(3):
        sess.run(train, feeds)
    np.testing.assert_array_equal(sess.run(w), sess.variable_value(w))
    np.testing.assert_array_equal(sess.run(b), sess.variable_value(b))
    assert int(sess.run(step)) == 3
    # another plan reading the trained weights (the loss alone) sees them
    reference = _session(dict(optimize=False))
    for v in fg.global_variables():
        reference.load(v, sess.variable_value(v))
    np.testing.assert_allclose(sess.run(loss, feeds), reference.run(loss, feeds),
                               rtol=1e-5)


@pytest.mark.parametrize("config", CONFIGS)
def test_save_and_restore_between_compiled_training_steps(config, tmp_path):
    loss, train, feeds, (w, b, step) = _adam_model(2)
    saver = fg.train.Saver()
    straight = _session(config)
    for _ in range(4):
        straight.run(train, feeds)
    first = _session(config)
    for _ in range(2):
        first.run(train, feeds)
    path = saver.save(first, tmp_path / "mid.npz")
    for _ in range(2):           # diverges from the checkpoint: restore must undo it
        first.run(train, feeds)
    saver.restore(first, path)
    for _ in range(2):
        first.run(train, feeds)
    for v in fg.global_variables():
        np.testing.assert_array_equal(first.variable_value(v), straight.variable_value(v))
    assert int(first.run(step)) == 4
