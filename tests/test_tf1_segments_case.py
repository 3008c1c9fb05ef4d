"""TF1's tf.unsorted_segment_sum, tf.segment_sum and tf.case (flowgraph.segment_ops,
flowgraph.control_flow.case): values against NumPy on the reference and the compiled
path, float32/float64, repeated, shuffled and absent ids, ids of rank 2, unknown
dimensions, gradients against finite differences (first and second order), run-time
errors that name the op and the user's line and leave the session usable, and clear
build-time errors."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import DTypeError, InvalidArgumentError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(7)
HERE = os.path.basename(__file__)


def _session(optimize):
    return fg.Session(config=fg.SessionConfig(optimize=optimize, compile="eager"))


def _segment_sum_np(data, ids, n):
    """The specification, written out: a Python loop over the ids."""
    ids = np.asarray(ids)
    k = ids.ndim
    out = np.zeros((n,) + data.shape[k:], data.dtype)
    flat, rows = ids.reshape(-1), data.reshape((-1,) + data.shape[k:])
    for j, i in enumerate(flat):
        out[i] += rows[j]
    return out


# --- values ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimize", [True, False])
def test_unsorted_segment_sum_equals_numpy(optimize, dtype):
    data = RNG.normal(size=(7, 3)).astype(dtype)
    ids = np.array([4, 0, 4, 2, 0, 4, 1])              # repeated, shuffled; row 3, 5 empty
    x = fg.placeholder(dtype, [None, 3])
    i = fg.placeholder(fg.int32, [None])
    y = fg.unsorted_segment_sum(x, i, 6)
    y64 = fg.unsorted_segment_sum(x, fg.cast(i, fg.int64), fg.constant(6))
    assert y.shape == (6, 3) and y.dtype == dtype and y64.shape == (6, 3)
    with _session(optimize) as sess:
        got, got64 = sess.run([y, y64], {x: data, i: ids})
        empty = sess.run(y, {x: np.zeros((0, 3), dtype), i: np.zeros(0, np.int32)})
    want = _segment_sum_np(data, ids, 6)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(got, want, **tol)      # sums of float32 rows: atol for
    np.testing.assert_allclose(got64, want, **tol)    # a cancelling sum's last bit
    assert got.dtype == dtype and not got[[3, 5]].any()
    np.testing.assert_array_equal(empty, np.zeros((6, 3), dtype))


@pytest.mark.parametrize("optimize", [True, False])
def test_unsorted_segment_sum_with_rank_2_ids_unknown_rows_and_int_data(optimize):
    data = RNG.normal(size=(2, 3, 4))
    ids = np.array([[1, 0, 1], [3, 3, 0]])
    x = fg.placeholder(fg.float64, [None, None, None])
    i = fg.placeholder(fg.int64, [2, 3])
    n = fg.placeholder(fg.int32, ())
    y = fg.unsorted_segment_sum(x, i, n)               # every size known at run time only
    ints = fg.unsorted_segment_sum(fg.constant([[1, 2], [3, 4], [5, 6]]), [1, 1, 0], 2)
    with _session(optimize) as sess:
        got, got_ints = sess.run([y, ints], {x: data, i: ids, n: 5})
    np.testing.assert_allclose(got, _segment_sum_np(data, ids, 5), rtol=1e-12)
    np.testing.assert_array_equal(got_ints, [[5, 6], [4, 6]])
    assert got_ints.dtype == np.int32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimize", [True, False])
def test_segment_sum_equals_numpy_with_static_and_run_time_rows(optimize, dtype):
    data = RNG.normal(size=(6, 2)).astype(dtype)
    ids = np.array([0, 0, 2, 2, 2, 5])                 # rows 1, 3, 4: zeros
    x = fg.placeholder(dtype, [None, 2])
    i = fg.placeholder(fg.int32, [None])
    dynamic = fg.segment_sum(x, i)
    static = fg.segment_sum(x, ids)
    assert dynamic.shape == (None, 2) and static.shape == (6, 2)
    with _session(optimize) as sess:
        got, got_static = sess.run([dynamic, static], {x: data, i: ids})
        empty = sess.run(dynamic, {x: np.zeros((0, 2), dtype), i: np.zeros(0, np.int32)})
    want = _segment_sum_np(data, ids, 6)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(got_static, want, **tol)
    assert empty.shape == (0, 2)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_segment_sums_property(data):
    """Drawn shapes and ids: both ops equal the loop; their sum over the segments is the
    sum of the data (nothing dropped, nothing counted twice)."""
    rows = data.draw(st.integers(0, 6))
    width = data.draw(st.integers(1, 3))
    n = data.draw(st.integers(1, 5))
    ids = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=rows, max_size=rows)),
                   np.int64)
    values = np.asarray(data.draw(st.lists(st.floats(-10, 10), min_size=rows * width,
                                           max_size=rows * width)),
                        np.float64).reshape(rows, width)
    optimize = data.draw(st.booleans())
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float64, [None, width])
        i = fg.placeholder(fg.int64, [None])
        u = fg.unsorted_segment_sum(x, i, n)
        s = fg.segment_sum(x, i)
        with _session(optimize) as sess:
            got_u = sess.run(u, {x: values, i: ids})
            order = np.argsort(ids, kind="stable")      # segment_sum: ids sorted
            got_s = sess.run(s, {x: values[order], i: ids[order]})
    want = _segment_sum_np(values, ids, n)
    np.testing.assert_allclose(got_u, want, rtol=1e-12, atol=1e-12)
    sorted_rows = int(ids.max()) + 1 if rows else 0
    np.testing.assert_allclose(got_s, want[:sorted_rows], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_u.sum(0), values.sum(0), atol=1e-9)


# --- gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_segment_sum_gradients_first_and_second_order(optimize):
    xv = RNG.normal(size=(5, 3)) * 0.5
    config = fg.SessionConfig(optimize=optimize)
    x = fg.placeholder(fg.float64, [None, 3])
    u = fg.unsorted_segment_sum(fg.tanh(x), [3, 0, 3, 1, 0], 4)
    s = fg.segment_sum(x * x, fg.constant([0, 0, 1, 3, 3]))
    y = fg.square(u) * fg.tanh(u)
    for out in (y, fg.exp(s) * s):
        assert check_gradients(out, [x], {x: xv}, config=config) < 1e-6
        (g,) = fg.gradients(fg.reduce_sum(out * out), [x])
        assert check_gradients(g, [x], {x: xv}, config=config) < 1e-4
    # TF1's gradient: gather(grad, segment_ids)
    (dx,) = fg.gradients(fg.reduce_sum(u * fg.constant(np.arange(12.0).reshape(4, 3))), [x])
    with fg.Session(config=config) as sess:
        got = sess.run(dx, {x: xv})
    want = np.arange(12.0).reshape(4, 3)[[3, 0, 3, 1, 0]] * (1 - np.tanh(xv) ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_bad_segment_ids_raise_naming_the_op_and_the_session_goes_on(optimize):
    x = fg.placeholder(fg.float32, [None, 2])
    i = fg.placeholder(fg.int32, [None])
    u = fg.unsorted_segment_sum(x, i, 3)
    s = fg.segment_sum(x, i)
    data, good = np.ones((3, 2), np.float32), np.array([0, 2, 2])
    with _session(optimize) as sess:
        for ids, what in (([0, 3, 1], "found 3"), ([0, -1, 1], "found -1")):
            with pytest.raises(InvalidArgumentError, match=rf"unsorted_segment_sum.*"
                               rf"{HERE}.*{what}"):
                sess.run(u, {x: data, i: ids})
        with pytest.raises(InvalidArgumentError, match=rf"segment_sum.*{HERE}.*sorted.*"
                           r"found 2 before 1 at position 2"):
            sess.run(s, {x: data, i: [0, 2, 1]})
        with pytest.raises(InvalidArgumentError, match=r"segment_sum.*>= 0, found -1"):
            sess.run(s, {x: data, i: [-1, 0, 1]})
        with pytest.raises(InvalidArgumentError, match=rf"unsorted_segment_sum.*{HERE}.*"
                           r"expected rows of shape \(2, 2\).*found \(3, 2\)"):
            sess.run(u, {x: data, i: [0, 1]})           # data's rows != the ids'
        np.testing.assert_array_equal(sess.run(u, {x: data, i: good}), [[1, 1], [0, 0], [2, 2]])
        np.testing.assert_array_equal(sess.run(s, {x: data, i: good}), [[1, 1], [0, 0], [2, 2]])


def test_segment_sum_build_errors_are_clear():
    x = fg.placeholder(fg.float32, [4, 2])
    with pytest.raises(DTypeError, match=rf"unsorted_segment_sum \(created at {HERE}.*"
                       r"int32 or int64 segment_ids, found .* float32"):
        fg.unsorted_segment_sum(x, fg.constant([0.0, 1.0, 1.0, 0.0]), 2)
    with pytest.raises(ShapeError, match=r"unsorted_segment_sum.*start with segment_ids' "
                       r"shape \(3,\), found \(4, 2\)"):
        fg.unsorted_segment_sum(x, [0, 1, 1], 2)
    with pytest.raises(ShapeError, match=r"num_segments >= 0, found -1"):
        fg.unsorted_segment_sum(x, [0, 1, 1, 0], -1)
    with pytest.raises(DTypeError, match=r"integer scalar num_segments"):
        fg.unsorted_segment_sum(x, [0, 1, 1, 0], fg.constant(2.0))
    with pytest.raises(ShapeError, match=rf"segment_sum \(created at {HERE}.*1-d segment_ids"):
        fg.segment_sum(fg.placeholder(fg.float32, [2, 2]), [[0, 1], [1, 1]])
    with pytest.raises(InvalidArgumentError, match=rf"segment_sum \(created at {HERE}.*"
                       r"sorted"):
        fg.segment_sum(x, [1, 0, 2, 2])                 # constant ids: refused when built
    with pytest.raises(DTypeError, match=r"numeric data"):
        fg.unsorted_segment_sum(fg.constant([True, False]), [0, 1], 2)


# --- tf.case ---------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_case_picks_the_first_true_predicate(optimize):
    x = fg.placeholder(fg.float64, ())
    pairs = [(x < -1.0, lambda: x * 2.0), (x < 1.0, lambda: x * 3.0),
             (x < 5.0, lambda: [x * 4.0])]                # a one-element list: unpacked
    y = fg.case(pairs, default=lambda: x - 100.0)
    no_default = fg.case(pairs)
    as_dict = fg.case({x < -1.0: lambda: x * 2.0, x > 3.0: lambda: x * 5.0},
                      default=lambda: x, exclusive=True)
    single = fg.case([(x > 0.0, lambda: x + 1.0)])
    with _session(optimize) as sess:
        for v, want in ((-3.0, -6.0), (0.5, 1.5), (-1.0, -3.0), (4.0, 16.0), (9.0, -91.0)):
            assert float(sess.run(y, {x: v})) == want
        for v, want in ((-3.0, -6.0), (0.5, 1.5), (4.0, 16.0)):
            assert float(sess.run(no_default, {x: v})) == want
        for v, want in ((-3.0, -6.0), (4.0, 20.0), (0.0, 0.0)):
            assert float(sess.run(as_dict, {x: v})) == want
        assert float(sess.run(single, {x: 2.0})) == 3.0


@pytest.mark.parametrize("optimize", [True, False])
def test_cond_and_case_branches_may_return_a_tensor_made_outside(optimize):
    """``lambda: u`` with ``u`` computed before the cond (not a placeholder): the
    branch's plan was fed ``u`` and failed with a FeedError before the fix."""
    x = fg.placeholder(fg.float32, (4, 2))
    u = fg.tanh(x)
    c = fg.cond(fg.reduce_sum(x) > 100.0, lambda: u * 2.0, lambda: u)
    k = fg.case([(fg.reduce_sum(x) > 100.0, lambda: u * 2.0)], default=lambda: u)
    data = np.full((4, 2), 0.5, np.float32)
    with _session(optimize) as sess:
        got_c, got_k = sess.run([c, k], {x: data})
    np.testing.assert_allclose(got_c, np.tanh(data), rtol=1e-6)
    np.testing.assert_allclose(got_k, np.tanh(data), rtol=1e-6)


@pytest.mark.parametrize("optimize", [True, False])
def test_case_run_time_errors_as_tf1_and_the_session_goes_on(optimize):
    x = fg.placeholder(fg.float64, ())
    none_true = fg.case([(x < 0.0, lambda: -x), (x > 10.0, lambda: x)])
    both = fg.case([(x < 5.0, lambda: -x), (x > 0.0, lambda: x)], default=lambda: x * 0.0,
                   exclusive=True)
    single = fg.case([(x > 0.0, lambda: x + 1.0)])
    with _session(optimize) as sess:
        with pytest.raises(InvalidArgumentError, match=rf"CaseIndex 'case.*{HERE}.*none of "
                           r"the 2 predicates is true and no default"):
            sess.run(none_true, {x: 5.0})
        with pytest.raises(InvalidArgumentError, match=rf"CaseIndex.*{HERE}.*at most one true "
                           r"predicate \(exclusive=True\), found predicates \[0, 1\] true"):
            sess.run(both, {x: 2.0})
        with pytest.raises(InvalidArgumentError, match=r"none of the 1 predicates"):
            sess.run(single, {x: -2.0})
        assert float(sess.run(none_true, {x: -5.0})) == 5.0
        assert float(sess.run(both, {x: 7.0})) == 7.0
        assert float(sess.run(both, {x: -7.0})) == 7.0


@pytest.mark.parametrize("optimize", [True, False])
def test_case_gradients_first_and_second_order(optimize):
    config = fg.SessionConfig(optimize=optimize)
    x = fg.placeholder(fg.float64, [3])
    s = fg.reduce_sum(x)
    y = fg.case([(s < 0.0, lambda: fg.tanh(x) * x), (s < 2.0, lambda: fg.exp(x))],
                default=lambda: x * x * x, exclusive=False)
    for xv in (np.array([-1.0, 0.2, -0.3]), np.array([0.3, 0.2, 0.1]),
               np.array([1.0, 2.0, 0.5])):
        assert check_gradients(y, [x], {x: xv}, config=config) < 1e-6
        (g,) = fg.gradients(fg.reduce_sum(y * y), [x])
        assert check_gradients(g, [x], {x: xv}, config=config) < 1e-4
    (dx,) = fg.gradients(fg.reduce_sum(y), [x])
    with fg.Session(config=config) as sess:
        np.testing.assert_allclose(sess.run(dx, {x: [1.0, 2.0, 0.5]}), 3 * np.array(
            [1.0, 4.0, 0.25]))


def test_case_build_errors_are_clear():
    x = fg.placeholder(fg.float64, ())
    with pytest.raises(TypeError, match=rf"case 'case' \(created at {HERE}.*list, tuple or "
                       r"dict, found int"):
        fg.case(3)
    with pytest.raises(TypeError, match=r"pair 0 to be a 2-tuple"):
        fg.case([(x > 0.0, lambda: x, 1)])
    with pytest.raises(TypeError, match=r"pred 1 to be a bool scalar tensor, found float64"):
        fg.case([(x > 0.0, lambda: x), (x, lambda: x)])
    with pytest.raises(TypeError, match=r"pred 0 to be a bool scalar tensor, found bool\b"):
        fg.case([(True, lambda: x)])
    with pytest.raises(TypeError, match=r"fn 0 .* to be callable, found Tensor"):
        fg.case([(x > 0.0, x)])
    with pytest.raises(TypeError, match=r"callable default"):
        fg.case([(x > 0.0, lambda: x)], default=x)
    with pytest.raises(ShapeError, match=r"same structure and dtypes"):
        fg.case([(x > 0.0, lambda: x)], default=lambda: fg.constant(1))
    with pytest.raises(ValueError, match=r"at least one"):
        fg.case([])
    assert float(fg.Session().run(fg.case([], default=lambda: x * 2.0), {x: 2.0})) == 4.0


# --- GPU (the numba.cuda simulator when no GPU is present; tests/conftest.py) ------------

@pytest.mark.usefixtures("needs_gpu")
def test_segment_sums_and_case_on_the_gpu_equal_the_cpu():
    from flowgraph.testing import compare_devices
    data = RNG.uniform(-1, 1, (4, 2)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, (4, 2))
        i = fg.placeholder(fg.int32, (4,))
        u = fg.unsorted_segment_sum(x, i, 3)
        s = fg.segment_sum(x, i)
        c = fg.case([(fg.reduce_sum(x) > 100.0, lambda: u * 2.0)], default=lambda: u)
        loss = fg.reduce_sum(u * u) + fg.reduce_sum(fg.tanh(s)) + fg.reduce_sum(c)
        return [u, s, c, *fg.gradients(loss, [x])], {x: data, i: np.array([0, 0, 2, 2])}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"))
    assert set(results) == {"/cpu:0", "/gpu:0"}


@pytest.mark.parametrize("optimize", [True, False])
def test_segment_sums_with_unknown_ranks(optimize):
    data = RNG.normal(size=(4, 2, 3))
    x = fg.placeholder(fg.float64, None)
    i = fg.placeholder(fg.int32, None)
    u = fg.unsorted_segment_sum(x, [2, 0, 2, 1], 3)
    s = fg.segment_sum(x, i)
    with _session(optimize) as sess:
        got_u, got_s = sess.run([u, s], {x: data, i: [0, 0, 1, 3]})
        with pytest.raises(InvalidArgumentError, match=r"segment_sum.*1-d segment ids"):
            sess.run(s, {x: data, i: [[0, 0], [1, 3]]})
    np.testing.assert_allclose(got_u, _segment_sum_np(data, [2, 0, 2, 1], 3), rtol=1e-12)
    np.testing.assert_allclose(got_s, _segment_sum_np(data, [0, 0, 1, 3], 4), rtol=1e-12)
    with pytest.raises(ShapeError, match=r"unsorted_segment_sum.*segment_ids of known rank"):
        fg.unsorted_segment_sum(x, i, 3)


# --- tf.scatter_add / tf.scatter_update ------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimize", [True, False])
def test_scatter_add_and_update_equal_numpy_and_compose(optimize, dtype):
    rng = np.random.default_rng(11)     # its own draws, whichever tests ran before
    start = rng.normal(size=(5, 2)).astype(dtype)
    v = fg.Variable(start, name="table")
    w = fg.Variable(start, name="other")
    i = fg.placeholder(fg.int32, [None])
    u = fg.placeholder(dtype, [None, 2])
    add = fg.scatter_add(v, i, u)
    add_again = fg.scatter_add(v, [0, 0], np.ones((2, 2), dtype))
    update = fg.scatter_update(w, i, u)
    ids, rows = np.array([4, 1, 4]), rng.normal(size=(3, 2)).astype(dtype)
    with _session(optimize) as sess:
        sess.run(fg.global_variables_initializer())
        sess.run([add, add_again], {i: ids, u: rows})          # two adds in one run compose
        want = start.copy()
        np.add.at(want, ids, rows)
        want[0] += 2
        # float32: the scatter sums row 4's two updates before adding them to the table,
        # np.add.at adds them one at a time: a rounding apart, absolute near a cancellation
        tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
        np.testing.assert_allclose(sess.run(v), want, **tol)
        got = sess.run(update, {i: [3, 0], u: rows[:2]})
        want_w = start.copy()
        want_w[[3, 0]] = rows[:2]
        np.testing.assert_array_equal(got, want_w)
        np.testing.assert_array_equal(sess.run(w), want_w)
        assert sess.run(update, {i: np.zeros(0, np.int32), u: np.zeros((0, 2), dtype)}) \
            .tolist() == want_w.tolist()                         # no rows: unchanged


@pytest.mark.parametrize("optimize", [True, False])
def test_scatter_errors_leave_the_variable_and_the_session_usable(optimize):
    v = fg.Variable(np.arange(6.0).reshape(3, 2), name="t")
    i = fg.placeholder(fg.int64, [None])
    u = fg.placeholder(fg.float64, [None, 2])
    add, update = fg.scatter_add(v, i, u), fg.scatter_update(v, i, u)
    with _session(optimize) as sess:
        sess.run(fg.global_variables_initializer())
        with pytest.raises(InvalidArgumentError, match=rf"scatter_add.*{HERE}.*\[0, 3\), "
                           r"found 3"):
            sess.run(add, {i: [0, 3], u: np.ones((2, 2))})
        with pytest.raises(InvalidArgumentError, match=rf"scatter_update.*{HERE}.*distinct "
                           r"indices.*found 1 more than once"):
            sess.run(update, {i: [1, 0, 1], u: np.ones((3, 2))})
        with pytest.raises(InvalidArgumentError, match=r"found -1"):
            sess.run(update, {i: [-1], u: np.ones((1, 2))})
        np.testing.assert_array_equal(sess.run(v), np.arange(6.0).reshape(3, 2))
        np.testing.assert_array_equal(sess.run(add, {i: [2], u: np.ones((1, 2))})[2], [5, 6])
        # an independent overwrite in the same run: refused as two assigns are
        with pytest.raises(fg.errors.FlowgraphError, match=r"independent overwrites"):
            sess.run([update, v.assign(np.zeros((3, 2)))], {i: [0], u: np.ones((1, 2))})
    with pytest.raises(TypeError, match=rf"scatter_add \(created at {HERE}.*fg.Variable"):
        fg.scatter_add(fg.constant([1.0]), [0], [1.0])
    with pytest.raises(ShapeError, match=r"scatter_add.*start with segment_ids. shape "
                       r"\(2,\), found \(1, 2\)"):
        fg.scatter_add(v, [0, 1], [[1.0, 2.0]])
    with pytest.raises(DTypeError, match=r"scatter_update.*int32 or int64 indices"):
        fg.scatter_update(v, fg.constant([0.0]), [[1.0, 2.0]])


@pytest.mark.usefixtures("needs_gpu")
def test_scatter_ops_on_the_gpu_equal_the_cpu():
    start = RNG.uniform(-1, 1, (4, 2)).astype(np.float32)
    rows = RNG.uniform(-1, 1, (3, 2)).astype(np.float32)
    results = {}
    for dev in ("/cpu:0", "/gpu:0"):
        with fg.Graph().as_default(), fg.device(dev):
            v, w = fg.Variable(start), fg.Variable(start)
            i = fg.placeholder(fg.int32, (3,))
            add, update = fg.scatter_add(v, i, rows), fg.scatter_update(w, i, rows)
            with fg.Session() as sess:
                sess.run(fg.global_variables_initializer())
                results[dev] = sess.run([add, update], {i: [3, 0, 1]})
                results[dev].append(sess.run(add, {i: [3, 3, 1]}))
                with pytest.raises(InvalidArgumentError, match=r"distinct indices"):
                    sess.run(update, {i: [2, 2, 0]})
                with pytest.raises(InvalidArgumentError, match=r"\[0, 4\), found 4"):
                    sess.run(add, {i: [0, 4, 1]})
    for a, b in zip(results["/cpu:0"], results["/gpu:0"]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
