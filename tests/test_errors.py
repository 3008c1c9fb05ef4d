"""The bad-input battery: every error class, its message (the op, the file and line of
the user code that created it, what was expected and what was found), and the session
still usable afterwards, with variables exactly as before the failed run.
"""
import sys

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import (DTypeError, FeedError, FlowgraphError, InvalidArgumentError,
                              NumericsError, PlacementError, ShapeError)

HERE = "test_errors.py"


def next_line(skip=0):
    """The line number ``skip + 1`` lines below the caller's line."""
    return sys._getframe(1).f_lineno + 1 + skip


def assert_message(exc, *parts):
    text = str(exc)
    for part in parts:
        assert part in text, f"{part!r} not in message: {text}"


def assert_usable(sess, variables=()):
    """The session still runs, and variables hold exactly ``(var, value)``."""
    probe = fg.constant(2.0, name="probe") * 3.0
    assert sess.run(probe) == 6.0
    for var, value in variables:
        np.testing.assert_array_equal(sess.run(var), value)


# --- build time ------------------------------------------------------------------------

def test_error_hierarchy():
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, ValueError)
    for cls in (ShapeError, DTypeError, FeedError, PlacementError, NumericsError,
                fg.errors.CheckpointError, InvalidArgumentError):
        assert issubclass(cls, FlowgraphError)


def test_matmul_shape_error_names_op_location_expected_and_found():
    a = fg.placeholder(fg.float32, (None, 3))
    b = fg.placeholder(fg.float32, (4, 5))
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.matmul(a, b, name="dense")
    assert_message(info.value, "MatMul", "'dense'", f"{HERE}:{line}", "(?, 3)", "(4, 5)",
                   "3 != 4")


def test_broadcast_shape_error():
    a = fg.placeholder(fg.float32, (2, 3))
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        _ = a + np.ones((4,), np.float32)
    assert_message(info.value, "Add", f"{HERE}:{line}", "broadcast", "(2, 3)", "(4,)")


@pytest.mark.parametrize("build, parts", [
    (lambda: fg.reshape(fg.placeholder(fg.float32, (2, 3)), [4, 2]),
     ["Reshape", "(2, 3)", "6 elements", "(4, 2)"]),
    (lambda: fg.concat([fg.zeros((2, 3)), fg.zeros((2, 4))], axis=0),
     ["Concat", "(2, 3)", "(2, 4)"]),
    (lambda: fg.transpose(fg.zeros((2, 3)), [0, 0]), ["Transpose", "permutation", "[0, 0]"]),
    (lambda: fg.zeros((2, 3))[5], ["StridedSlice", "index 5", "size 2"]),
    (lambda: fg.reduce_sum(fg.zeros((2, 3)), axis=2), ["ReduceSum", "axis 2", "rank 2"]),
    (lambda: fg.split(fg.zeros((5,)), [2, 2]), ["Split", "[2, 2]", "sum of 4"]),
    (lambda: fg.matmul(fg.zeros((3,)), fg.zeros((3, 2))), ["MatMul", "rank 2", "(3,)"]),
])
def test_shape_errors_at_build_time(build, parts):
    with pytest.raises(ShapeError) as info:
        build()
    assert_message(info.value, HERE, *parts)


def test_dtype_errors_at_build_time():
    f = fg.placeholder(fg.float32, (2,), name="f")
    d = fg.placeholder(fg.float64, (2,), name="d")
    i = fg.placeholder(fg.int32, (2,), name="i")
    line = next_line(skip=1)
    with pytest.raises(DTypeError) as info:
        fg.tanh(i, name="squash")
    assert_message(info.value, "Tanh", "'squash'", f"{HERE}:{line}", "float32 or float64",
                   "int32")
    with pytest.raises(DTypeError) as info:
        fg.where(f, f, f)
    assert_message(info.value, "Where", "bool condition", "float32")
    with pytest.raises(DTypeError) as info:
        fg.gather(f, f)
    assert_message(info.value, "Gather", "integer indices", "float32")
    v = fg.Variable(np.zeros(2, np.float32))
    with pytest.raises(DTypeError) as info:
        v.assign(d)
    assert_message(info.value, "float32", "float64")
    with pytest.raises(DTypeError):
        fg.placeholder("complex64", (2,))
    with pytest.raises(DTypeError) as info:
        fg.nn.softmax_cross_entropy_with_logits(labels=d, logits=f)
    assert_message(info.value, "float32", "float64")
    # mixed float widths promote (NumPy rules) instead of failing
    assert (f + d).dtype == np.float64


def test_misuse_of_symbolic_tensors_raises_type_errors():
    x = fg.placeholder(fg.float32, (None, 2), name="x")
    with pytest.raises(TypeError, match="truth value"):
        bool(x)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)
    with pytest.raises(TypeError, match="len"):
        len(x)
    # A tensor exponent is TF1's tf.pow (x ** x builds, flowgraph/tf1_operators.py); a
    # non-number is refused naming the op.
    assert (x ** x).op.type == "Pow"
    with pytest.raises(fg.errors.DTypeError, match="Pow: expected numbers"):
        _ = x ** "a"
    with pytest.raises(TypeError, match="gather"):
        _ = x[fg.constant(0)]
    with pytest.raises(ValueError, match="device"):
        with fg.device("/tpu:0"):
            pass
    g = fg.Graph()
    with g.as_default():
        other = fg.constant(1.0)
    with pytest.raises(FlowgraphError, match="another graph"):
        _ = x + other


# --- feeds -----------------------------------------------------------------------------

@pytest.fixture
def fed_graph():
    x = fg.placeholder(fg.float32, (None, 3), name="x")
    line = x.op.location
    v = fg.Variable(np.array([1.0, 2.0, 3.0], np.float32), name="v")
    y = fg.reduce_sum(x * v, axis=1)
    update = v.assign_add(fg.reduce_sum(x, 0))
    return x, v, y, update, line


def test_missing_feed(fed_graph):
    x, v, y, update, location = fed_graph
    with fg.Session() as sess:
        with pytest.raises(FeedError) as info:
            sess.run([y, update])
        assert_message(info.value, "Placeholder 'x'", location, "x:0", "(?, 3)", "float32",
                       "found none")
        assert_usable(sess, [(v, [1.0, 2.0, 3.0])])


def test_unknown_feed_key(fed_graph):
    x, v, y, update, _ = fed_graph
    with fg.Session() as sess:
        with pytest.raises(FeedError) as info:
            sess.run(y, {"nope:0": [[1.0, 2.0, 3.0]]})
        assert_message(info.value, "nope:0", "expected the name of a tensor")
        with pytest.raises(FeedError) as info:
            sess.run(y, {3: [[1.0, 2.0, 3.0]]})
        assert_message(info.value, "expected feed keys", "int")
        other = fg.Graph()
        with other.as_default():
            z = fg.placeholder(fg.float32, (None, 3))
        with pytest.raises(FeedError, match="another graph"):
            sess.run(y, {z: [[1.0, 2.0, 3.0]]})
        assert_usable(sess, [(v, [1.0, 2.0, 3.0])])


@pytest.mark.parametrize("value, parts", [
    (np.ones((3,), np.float32), ["rank 2, found rank 1", "(3,)", "(?, 3)"]),
    (np.ones((2, 4), np.float32), ["(?, 3)", "(2, 4)", "matching dimensions"]),
    (np.ones((2, 3), np.int32), ["expected a float32 value", "int32"]),
    (np.array([["a", "b", "c"]]), ["expected a float32 value", "<U1"]),
    ([[1.0, None, 2.0]], ["expected a float32 value", "object"]),
])
def test_mismatched_feed_values(fed_graph, value, parts):
    x, v, y, update, location = fed_graph
    with fg.Session() as sess:
        sess.run(update, {x: np.ones((1, 3), np.float32)})
        with pytest.raises(FeedError) as info:
            sess.run([y, update], {x: value})
        assert_message(info.value, "Placeholder 'x'", location, *parts)
        assert_usable(sess, [(v, [2.0, 3.0, 4.0])])
        np.testing.assert_allclose(sess.run(y, {x: [[1, 1, 1]]}), [9.0])


def test_int_placeholder_rejects_floats_and_float_accepts_python_ints():
    i = fg.placeholder(fg.int64, (2,), name="ids")
    f = fg.placeholder(fg.float64, (2,), name="f")
    with fg.Session() as sess:
        with pytest.raises(FeedError) as info:
            sess.run(i, {i: [0.5, 1.5]})
        assert_message(info.value, "ids", "int64", "float64")
        np.testing.assert_array_equal(sess.run(f, {f: [1, 2]}), [1.0, 2.0])
        assert sess.run(i, {i: np.array([1, 2], np.int32)}).dtype == np.int64


def test_feeding_a_tensor_twice_is_an_error():
    x = fg.placeholder(fg.float32, (), name="x")
    with fg.Session() as sess:
        with pytest.raises(FeedError, match="fed twice"):
            sess.run(x * 1.0, {x: 1.0, "x:0": 2.0})


def test_unknown_fetch_name_and_bad_fetch_type():
    fg.placeholder(fg.float32, (), name="x")
    with fg.Session() as sess:
        with pytest.raises(FeedError, match="no operation named 'y'"):
            sess.run("y:0")
        with pytest.raises(TypeError, match="expected fetches"):
            sess.run([1.5])


# --- run time --------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [False, True])
def test_check_numerics_names_the_first_op_that_made_a_nan(optimize):
    x = fg.placeholder(fg.float64, (2,), name="x")
    v = fg.Variable(np.array([1.0, 1.0]), name="v")
    line = next_line()
    bad = fg.log(x, name="logx")
    later = fg.sqrt(bad * 2.0, name="later")
    step = v.assign(later)
    config = fg.SessionConfig(check_numerics=True, optimize=optimize)
    with fg.Session(config=config) as sess:
        with pytest.raises(NumericsError) as info:
            sess.run(step, {x: [1.0, -1.0]})
        assert_message(info.value, "Log 'logx'", f"{HERE}:{line}", "NaN", "finite")
        assert "later" not in str(info.value)
        assert_usable(sess, [(v, [1.0, 1.0])])
        sess.run(step, {x: [1.0, np.e]})
        np.testing.assert_allclose(sess.run(v), [0.0, np.sqrt(2.0)])
    with fg.Session(config=config) as sess:
        with pytest.raises(NumericsError, match="Inf"):
            sess.run(fg.exp(x, name="big"), {x: [1.0, 1000.0]})
    with fg.Session() as sess:  # without check_numerics a NaN is just a value
        assert np.isnan(sess.run(bad, {x: [-1.0, 1.0]})[0])


def test_out_of_range_gather_is_an_invalid_argument_at_run_time():
    params = fg.Variable(np.arange(6.0).reshape(3, 2), name="table")
    ids = fg.placeholder(fg.int32, (None,), name="ids")
    line = next_line()
    rows = fg.gather(params, ids, name="lookup")
    step = params.assign_add(fg.ones_like(params))
    with fg.Session() as sess:
        before = sess.run(params)
        with pytest.raises(InvalidArgumentError) as info:
            sess.run([step, rows], {ids: [0, 3]})
        assert_message(info.value, "Gather 'lookup'", f"{HERE}:{line}", "[0, 3)", "found 3")
        with pytest.raises(InvalidArgumentError, match="found -1"):
            sess.run(rows, {ids: [-1]})
        assert_usable(sess, [(params, before)])
        np.testing.assert_array_equal(sess.run(rows, {ids: [2, 0]}), before[[2, 0]])


def test_unknown_dimension_mismatch_is_a_shape_error_at_run_time():
    a = fg.placeholder(fg.float32, (None,), name="a")
    b = fg.placeholder(fg.float32, (None,), name="b")
    line = next_line()
    total = fg.add(a, b, name="total")
    with fg.Session() as sess:
        with pytest.raises(FlowgraphError) as info:
            sess.run(total, {a: np.ones(2), b: np.ones(3)})
        assert_message(info.value, "Add 'total'", f"{HERE}:{line}", "(2,)", "(3,)")
        assert_usable(sess)


def test_integer_division_by_zero_is_an_invalid_argument():
    a = fg.placeholder(fg.int32, (2,), name="a")
    with fg.Session() as sess:
        with pytest.raises(InvalidArgumentError, match="division by zero"):
            sess.run(a / fg.constant([1, 0]), {a: [1, 2]})
        assert_usable(sess)


def test_placement_on_a_missing_device():
    v = fg.Variable(1.0, name="v")
    with fg.device("/gpu:7"):
        line = next_line()
        y = fg.tanh(fg.constant(1.0) * v, name="on_gpu7")
    step = v.assign(y)
    with fg.Session() as sess:
        with pytest.raises(PlacementError) as info:
            sess.run(step)
        assert_message(info.value, "'/gpu:7'", "allow_soft_placement")
        assert "on_gpu7" in str(info.value) or "Const" in str(info.value) \
            or "Mul" in str(info.value)
        assert_usable(sess, [(v, 1.0)])
    with fg.Session() as sess:
        with pytest.raises(PlacementError) as info:
            sess.run(y)
        message = str(info.value)
        first = next(op for op in y.graph.operations if op.device == "/gpu:7")
        assert first.name in message and first.location in message
    assert y.op.location == f"{HERE}:{line}"
    soft = fg.SessionConfig(allow_soft_placement=True)
    with fg.Session(config=soft) as sess:
        assert sess.run(y) == pytest.approx(np.tanh(1.0))


@pytest.mark.parametrize("optimize", [False, True])
def test_a_failed_run_leaves_every_variable_as_it_was(optimize):
    a = fg.Variable(np.array([1.0, 2.0]), name="a")
    b = fg.Variable(np.int64(0), name="b")
    ids = fg.placeholder(fg.int32, (None,), name="ids")
    first = a.assign_add([1.0, 1.0])
    with fg.control_dependencies([first]):
        second = b.assign(fg.cast(fg.reduce_sum(fg.gather(a.read_value(), ids)),
                                  fg.int64) * 1)
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        sess.run(second, {ids: [0, 1]})
        np.testing.assert_array_equal(sess.run(a), [2.0, 3.0])
        assert sess.run(b) == 5
        snapshot = [sess.run(a), sess.run(b)]
        with pytest.raises(InvalidArgumentError):
            sess.run(second, {ids: [0, 9]})  # fails after `first` already ran
        assert_usable(sess, [(a, snapshot[0]), (b, snapshot[1])])


def test_integer_feeds_that_would_wrap_around_are_refused():
    i = fg.placeholder(fg.int32, (None,), name="ids")
    with fg.Session() as sess:
        for value in ([2 ** 40], np.array([-2 ** 40]), np.array([2 ** 63], np.uint64)):
            with pytest.raises(FeedError) as info:
                sess.run(i, {i: value})
            assert_message(info.value, "Placeholder 'ids'", "int32", "[-2147483648, 2147483647]")
        np.testing.assert_array_equal(sess.run(i, {i: np.array([200], np.uint8)}), [200])
        np.testing.assert_array_equal(sess.run(i, {i: np.array([7], np.int64)}), [7])


def test_run_time_shape_mismatches_name_the_op():
    x = fg.placeholder(fg.float32, (None,), name="x")
    a = fg.placeholder(fg.float32, (None, None), name="a")
    cases = [
        (fg.reshape(x, [3, -1], name="r"), {x: [1.0, 2.0]}, ShapeError, ["Reshape 'r'", "(2,)"]),
        (x[5], {x: [1.0, 2.0]}, InvalidArgumentError, ["StridedSlice", "index"]),
        (fg.matmul(a, np.ones((3, 2), np.float32), name="mm"), {a: np.ones((2, 4))},
         InvalidArgumentError, ["MatMul 'mm'", "(2, 4)", "(3, 2)"]),
        (fg.split(x, [1, 1], name="sp"), {x: [1.0, 2.0, 3.0]}, ShapeError,
         ["Split 'sp'", "sum of 2"]),
        (fg.reduce_max(x, name="mx"), {x: np.zeros(0, np.float32)}, InvalidArgumentError,
         ["ReduceMax 'mx'", "empty"]),
    ]
    with fg.Session() as sess:
        for fetch, feed, cls, parts in cases:
            with pytest.raises(cls) as info:
                sess.run(fetch, feed)
            assert_message(info.value, HERE, *parts)
            assert_usable(sess)
    with pytest.raises(ShapeError, match="depth"):
        fg.one_hot([0], -1)


def test_control_flow_build_errors_name_the_op_and_the_users_line():
    """while_loop / scan / cond errors found while tracing name the op kind, its name
    and the line of user code that asked for the loop, as op errors do."""
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.while_loop(lambda a, b: a < 3, lambda a, b: (a + 1,), (0, 1.0), name="count")
    assert_message(info.value, "While 'count'", f"{HERE}:{line}", "2 loop variables",
                   "found 1")
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.while_loop(lambda a: a < 3, lambda a: fg.cast(a, fg.float32), [0])
    assert_message(info.value, "While 'while'", f"{HERE}:{line}", "int32", "float32")
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.scan(lambda acc, x: fg.concat([acc, x], 0), fg.zeros((3, 2)))
    assert_message(info.value, "While 'scan'", f"{HERE}:{line}", "(2,)", "(4,)")
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.cond(fg.constant(True), lambda: (fg.constant(1.0), fg.constant(2.0)),
                lambda: fg.constant(1.0))
    assert_message(info.value, "If 'cond'", f"{HERE}:{line}", "2 tensors", "1 ['float32']")
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.cond(fg.constant(1.0), lambda: 1.0, lambda: 2.0)
    assert_message(info.value, "If 'cond'", f"{HERE}:{line}", "bool scalar", "float32")
    sess = fg.Session()
    assert_usable(sess)


def test_loss_errors_name_the_loss_and_the_users_line():
    """Mismatched labels and logits are reported as the loss the user called, at the
    user's line, with both shapes: not as an internal Mul deep inside it."""
    logits = fg.placeholder(fg.float32, (2, 4), name="logits")
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.nn.softmax_cross_entropy_with_logits_v2(labels=fg.zeros((2, 3)), logits=logits)
    assert_message(info.value, "softmax_cross_entropy_with_logits", f"{HERE}:{line}",
                   "(2, 4)", "found (2, 3)")
    assert "Mul" not in str(info.value)
    line = next_line(skip=1)
    with pytest.raises(ShapeError) as info:
        fg.nn.sigmoid_cross_entropy_with_logits(labels=fg.zeros((3,)), logits=logits)
    assert_message(info.value, "sigmoid_cross_entropy_with_logits", f"{HERE}:{line}",
                   "(2, 4)", "found (3,)")
    line = next_line(skip=1)
    with pytest.raises(DTypeError) as info:
        fg.nn.sparse_softmax_cross_entropy_with_logits(labels=fg.zeros((2,)), logits=logits)
    assert_message(info.value, "sparse_softmax_cross_entropy_with_logits",
                   f"{HERE}:{line}", "integer labels", "float32")
    # labels that broadcast to the logits stay accepted
    loss = fg.nn.softmax_cross_entropy_with_logits(labels=fg.fill([1, 4], 0.25),
                                                   logits=logits)
    sess = fg.Session()
    np.testing.assert_allclose(sess.run(loss, {logits: np.zeros((2, 4))}), [np.log(4)] * 2,
                               rtol=1e-6)
    assert_usable(sess)


def test_another_graphs_tensor_is_named_with_where_it_was_created():
    x = fg.placeholder(fg.float32, (), name="x")
    other = fg.Graph()
    with other.as_default():
        line = next_line()
        z = fg.constant(1.0, name="z_other")
    with fg.Session() as sess:
        with pytest.raises(FlowgraphError) as info:
            sess.run(z)
        assert_message(info.value, "'z_other:0'", "Const 'z_other'", f"{HERE}:{line}",
                       "another graph")
        with pytest.raises(FeedError) as info:
            sess.run(x, {x: 1.0, z: 2.0})
        assert_message(info.value, "'z_other:0'", f"{HERE}:{line}", "another graph")
        assert_usable(sess)


def test_feed_dtype_messages_use_the_right_article():
    i = fg.placeholder(fg.int32, (2,), name="ints")
    with fg.Session() as sess:
        with pytest.raises(FeedError) as info:
            sess.run(i, {i: np.array([0.5, 1.5])})
        assert_message(info.value, "expected an int32 value", "found dtype float64")
        assert_usable(sess)
