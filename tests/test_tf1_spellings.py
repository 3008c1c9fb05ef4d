"""TF1 spellings (issue 14): default sessions, tensor.eval(), op.run(), fg.assign & co."""
import os
import threading

import numpy as np
import pytest

import flowgraph as fg


def test_with_session_makes_it_the_default_for_eval_and_run():
    v = fg.Variable(1.0, name="v")
    x = fg.placeholder(fg.float32, ())
    assert fg.get_default_session() is None
    with fg.Session() as sess:
        assert fg.get_default_session() is sess
        assert float((x * 2.0).eval({x: 3.0})) == 6.0
        assert v.assign_add(2.0).run() is None
        assert float(v.eval()) == 3.0
        assert float(sess.run(v)) == 3.0
    assert fg.get_default_session() is None


def test_as_default_nests_and_does_not_close():
    c = fg.constant(2.0)
    a, b = fg.Session(), fg.Session()
    with a.as_default():
        with b.as_default():
            assert fg.get_default_session() is b
        assert fg.get_default_session() is a
        assert float(c.eval()) == 2.0
    assert fg.get_default_session() is None
    assert float(a.run(c)) == 2.0       # still open


def test_with_session_of_another_graph_makes_that_graph_the_default():
    g = fg.Graph()
    with fg.Session(graph=g) as sess:
        assert fg.get_default_graph() is g
        y = fg.constant(4.0) + 1.0       # built in g, as in TF1
        assert float(y.eval()) == 5.0 and y.graph is g
    assert fg.get_default_graph() is not g


def test_eval_without_a_default_session_is_a_clear_error():
    t = fg.constant(1.0)
    with pytest.raises(ValueError, match="no default session"):
        t.eval()
    with pytest.raises(ValueError, match="no default session"):
        fg.no_op().run()
    with pytest.raises(ValueError, match="not the graph"):
        with fg.Graph().as_default():
            other = fg.Session()
        t.eval(session=other)
    assert float(t.eval(session=fg.Session())) == 1.0


def test_default_session_is_per_thread():
    seen = []
    with fg.Session():
        thread = threading.Thread(target=lambda: seen.append(fg.get_default_session()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_interactive_session_is_default_until_closed():
    w = fg.Variable(np.array([1.0, 2.0]), name="w")
    sess = fg.InteractiveSession()
    try:
        assert fg.get_default_session() is sess
        fg.assign(w, [5.0, 6.0]).eval()
        np.testing.assert_array_equal(w.eval(), [5.0, 6.0])
    finally:
        sess.close()
    assert fg.get_default_session() is None


def test_functional_assignments_return_the_new_value():
    v = fg.Variable(np.array([1.0, 2.0]), name="v")
    with fg.Session() as sess:
        np.testing.assert_array_equal(sess.run(fg.assign(v, [3.0, 4.0])), [3.0, 4.0])
        np.testing.assert_array_equal(sess.run(fg.assign_add(v, [1.0, 1.0])), [4.0, 5.0])
        np.testing.assert_array_equal(sess.run(fg.assign_sub(v, [2.0, 2.0])), [2.0, 3.0])
        np.testing.assert_array_equal(sess.run(v), [2.0, 3.0])
        # as a training op: grouped, run for effect
        sess.run(fg.group(fg.assign_add(v, [1.0, 1.0], name="bump")))
        np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])
    with pytest.raises(TypeError, match="expected an fg.Variable"):
        fg.assign(fg.constant(1.0), 2.0)
    with pytest.raises(fg.errors.ShapeError):
        fg.assign(v, [1.0, 2.0, 3.0])


def test_softmax_xent_v1_stops_the_labels_gradient_and_v2_does_not():
    """TF1: ``softmax_cross_entropy_with_logits`` wraps its labels in ``stop_gradient``
    (labels computed from variables, a teacher's softmax say, are not trained through
    it); ``_v2`` differentiates the labels too. Both give the same loss and the same
    gradient for the logits."""
    rng = np.random.default_rng(0)
    t = fg.Variable(rng.normal(size=(3, 4)), name="teacher")
    logits = fg.placeholder(fg.float64, (3, 4))
    labels = fg.nn.softmax(t)
    v1 = fg.reduce_sum(fg.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    v2 = fg.reduce_sum(fg.nn.softmax_cross_entropy_with_logits_v2(labels=labels,
                                                                  logits=logits))
    feed = {logits: rng.normal(size=(3, 4))}
    with fg.Session() as sess:
        (g1_t, g1_x), (g2_t, g2_x) = sess.run(
            [fg.gradients(v1, [t, logits]), fg.gradients(v2, [t, logits])], feed)
        np.testing.assert_allclose(*sess.run([v1, v2], feed), rtol=1e-12)
        np.testing.assert_array_equal(g1_t, np.zeros((3, 4)))
        assert np.abs(g2_t).max() > 1e-3
        np.testing.assert_allclose(g1_x, g2_x, rtol=1e-12)
        assert fg.testing.check_gradients(v2, [t, logits], feed) < 1e-6
    # the first version trains only the student: an optimizer leaves the teacher alone
    train = fg.train.GradientDescentOptimizer(0.5).minimize(v1)
    with fg.Session() as sess:
        before = sess.run(t)
        sess.run(train, feed)
        np.testing.assert_array_equal(sess.run(t), before)


def test_constant_takes_tf1s_shape_argument():
    """``tf.Variable(tf.constant(0.1, shape=shape))`` (TF1's MNIST tutorial): a scalar
    fills the shape, as many values are reshaped, anything else is a ShapeError."""
    b = fg.Variable(fg.constant(0.1, shape=[2, 3]))
    with fg.Session() as sess:
        np.testing.assert_array_equal(sess.run(b), np.full((2, 3), 0.1, np.float32))
        np.testing.assert_array_equal(sess.run(fg.constant([1, 2, 3, 4], shape=(2, 2))),
                                      [[1, 2], [3, 4]])
    assert fg.constant(7, fg.int64, shape=[3]).dtype == np.int64
    with pytest.raises(fg.errors.ShapeError) as info:
        fg.constant([1.0, 2.0], shape=[3], name="bad")
    text = str(info.value)
    assert "Const 'bad'" in text and "test_tf1_spellings.py:" in text
    assert "(3,)" in text and "found 2 values" in text


def test_bias_add_adds_a_channel_vector_and_refuses_other_biases():
    """``tf.nn.bias_add``: the bias is a vector of the value's last dimension; unlike
    ``+``, a bias that would broadcast some other way is an error; the gradient of the
    bias sums over every other axis."""
    rng = np.random.default_rng(0)
    x = fg.placeholder(fg.float64, (None, 2, 3))
    b = fg.Variable(np.array([1.0, 2.0, 3.0]))
    y = fg.nn.bias_add(x, b)
    xv = rng.normal(size=(4, 2, 3))
    with fg.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: xv}), xv + [1.0, 2.0, 3.0])
        assert fg.testing.check_gradients(fg.reduce_sum(y * y), [x, b], {x: xv}) < 1e-6
    for bad in (np.ones(2), np.ones((1, 3)), np.ones(())):
        with pytest.raises(fg.errors.ShapeError) as info:
            fg.nn.bias_add(x, bad)
        text = str(info.value)
        assert "bias_add" in text and "test_tf1_spellings.py:" in text and "(3,)" in text
    with pytest.raises(fg.errors.ShapeError):
        fg.nn.bias_add(fg.zeros((3,)), np.ones(3))                  # rank >= 2, as TF1
    with pytest.raises(ValueError, match="NHWC"):
        fg.nn.bias_add(x, b, data_format="NCHW")


# --- Tensor.get_shape() and fg.TensorShape / fg.Dimension (TF1's) ---

def test_get_shape_returns_a_tensorshape_and_shape_stays_a_tuple():
    x = fg.placeholder(fg.float32, [None, 3])
    s = x.get_shape()
    assert isinstance(s, fg.TensorShape)
    assert x.shape == (None, 3)                       # unchanged: a plain tuple
    assert s.as_list() == [None, 3] and s.ndims == 2 and s.rank == 2 and len(s) == 2
    assert [d.value for d in s.dims] == [None, 3]
    assert isinstance(s[1], fg.Dimension) and s[1].value == 3 and int(s[1]) == 3
    assert s[0].value is None
    assert s[1:] == [3] and isinstance(s[1:], fg.TensorShape)
    assert [d.value for d in s] == [None, 3]
    assert not s.is_fully_defined() and s.num_elements() is None
    assert repr(s) == "TensorShape([Dimension(None), Dimension(3)])"
    assert str(s) == "(?, 3)"
    v = fg.Variable(np.zeros((2, 5), np.float32))
    assert v.get_shape() == [2, 5] and v.get_shape() == (2, 5)
    assert v.get_shape().num_elements() == 10 and v.get_shape().is_fully_defined()
    w = fg.placeholder(fg.float32)                   # unknown rank
    u = w.get_shape()
    assert u.ndims is None and u.dims is None and repr(u) == "TensorShape(None)"
    assert str(u) == "<unknown>" and u[0].value is None and u.num_elements() is None
    with pytest.raises(ValueError, match="unknown"):
        u.as_list()
    with pytest.raises(ValueError, match="unknown rank"):
        len(u)
    with pytest.raises(ValueError, match="unknown rank"):
        list(u)


def test_tensorshape_equality_follows_tf1():
    assert fg.TensorShape([2, 3]) == [2, 3] == fg.TensorShape((2, 3))
    assert fg.TensorShape([2, 3]) != [2, 4] and fg.TensorShape([2, 3]) != [2, 3, 1]
    # TF1: an unknown dimension equals nothing, not even another unknown one
    assert not (fg.TensorShape([None, 3]) == [None, 3])
    assert fg.TensorShape(None) == fg.TensorShape(None)
    with pytest.raises(ValueError, match="unknown TensorShapes"):
        fg.TensorShape(None) != fg.TensorShape([1])
    assert fg.TensorShape([4]) == fg.TensorShape(4)  # an int is a rank-1 shape
    assert (fg.TensorShape([1]) == "ab") is False


def test_tensorshape_merge_concatenate_compatibility():
    s = fg.TensorShape([None, 3])
    assert s.merge_with([5, None]).as_list() == [5, 3]
    assert s.merge_with(fg.TensorShape(None)).as_list() == [None, 3]
    assert fg.TensorShape(None).merge_with(s).as_list() == [None, 3]
    with pytest.raises(ValueError, match="not compatible"):
        s.merge_with([5, 4])
    with pytest.raises(ValueError, match="not compatible"):
        s.merge_with([5])
    assert s.concatenate([7]).as_list() == [None, 3, 7]
    assert (s + fg.TensorShape([1])).as_list() == [None, 3, 1]
    assert s.concatenate(fg.TensorShape(None)).ndims is None
    assert s.is_compatible_with([9, 3]) and not s.is_compatible_with([9, 4])
    assert not s.is_compatible_with([3]) and s.is_compatible_with(fg.TensorShape(None))
    assert s.with_rank(2).as_list() == [None, 3]
    with pytest.raises(ValueError, match="rank 3"):
        s.with_rank(3)
    assert fg.TensorShape(None)[1:3].as_list() == [None, None]


def test_dimension_values_arithmetic_and_comparisons():
    d, u = fg.Dimension(6), fg.Dimension(None)
    assert d.value == 6 and int(d) == 6 and u.value is None
    assert (d + 1).value == 7 and (1 + d).value == 7 and (d - 2).value == 4
    assert (10 - d).value == 4 and (d * 2).value == 12 and (2 * d).value == 12
    assert (d // 4).value == 1 and (13 // d).value == 2 and (d % 4).value == 2
    assert (d + fg.Dimension(2)).value == 8 and (u + 1).value is None
    assert (d == 6) is True and (d != 6) is False and (u == 6) is None
    assert (d < 7) is True and (u < 7) is None
    assert repr(d) == "Dimension(6)" and str(u) == "?" and repr(u) == "Dimension(None)"
    assert list(range(d))[-1] == 5 and np.zeros(d).shape == (6,)
    assert fg.dimension_value(d) == 6 and fg.dimension_value(None) is None
    with pytest.raises(TypeError, match="//"):
        d / 2
    with pytest.raises(TypeError, match="unknown"):
        int(u)
    with pytest.raises(ValueError, match=">= 0"):
        fg.Dimension(-1)
    with pytest.raises(ValueError, match="Ambiguous"):
        fg.Dimension(2.5)
    assert d.merge_with(u).value == 6 and u.merge_with(3).value == 3
    with pytest.raises(ValueError, match="not compatible"):
        d.merge_with(5)


def test_shapes_from_get_shape_build_new_ops():
    x = fg.placeholder(fg.float32, [None, 4])
    n = x.get_shape()[1]
    W = fg.Variable(np.ones((n.value, 2), np.float32))
    y = fg.placeholder(fg.float32, x.get_shape())     # a TensorShape is a shape
    z = fg.reshape(y, [-1, int(n) * 1])
    assert y.shape == (None, 4) and z.shape == (None, 4)
    assert fg.zeros(fg.TensorShape([2, 3])).shape == (2, 3)
    with fg.Session() as sess:
        sess.run(fg.global_variables_initializer())
        out = sess.run(fg.matmul(z, W), {y: np.ones((3, 4), np.float32)})
    np.testing.assert_allclose(out, np.full((3, 2), 4.0))


# --- fg.placeholder_with_default ---

@pytest.mark.parametrize("optimize", [True, False])
def test_placeholder_with_default_is_the_default_unless_fed(optimize):
    x = fg.placeholder_with_default(np.ones((2, 3), np.float32), [None, 3], name="x")
    keep = fg.placeholder_with_default(1.0, shape=[])
    assert x.shape == (None, 3) and x.dtype == np.float32 and x.op.name == "x"
    assert keep.shape == () and keep.dtype == np.float32
    y = fg.reduce_sum(x * 2.0, 1) * keep
    (gx,) = fg.gradients(fg.reduce_sum(y), [x])
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        out, g = sess.run([y, gx])
        np.testing.assert_allclose(out, [6.0, 6.0])
        np.testing.assert_allclose(g, np.full((2, 3), 2.0))
        out, g = sess.run([y, gx], {x: np.full((4, 3), 2.0, np.float32), keep: 0.5})
        np.testing.assert_allclose(out, np.full(4, 6.0))
        np.testing.assert_allclose(g, np.full((4, 3), 1.0))
        np.testing.assert_allclose(sess.run(y, {keep: 3.0}), [18.0, 18.0])
        with pytest.raises(fg.errors.FeedError):
            sess.run(y, {x: np.ones((4, 2), np.float32)})


def test_placeholder_with_default_refuses_an_incompatible_shape():
    with pytest.raises(fg.errors.ShapeError,
                       match=r"placeholder_with_default \(called at test_tf1_spellings.py:\d+\)"
                             r".*shape=\(\?, 4\), found \(2, 3\)"):
        fg.placeholder_with_default(np.ones((2, 3), np.float32), [None, 4])
    with pytest.raises(fg.errors.ShapeError, match="found \\(2, 3\\)"):
        fg.placeholder_with_default(np.ones((2, 3), np.float32), [2])
    assert fg.placeholder_with_default(np.ones((2, 3)), None).shape is None


def test_config_proto_carries_tf1_fields_and_names_unknown_ones():
    config = fg.ConfigProto(allow_soft_placement=True, log_device_placement=False,
                            intra_op_parallelism_threads=1, inter_op_parallelism_threads=2)
    assert isinstance(config, fg.SessionConfig)
    assert config.allow_soft_placement and config.intra_op_parallelism_threads == 1
    with pytest.raises(TypeError, match="gpu_options"):
        fg.ConfigProto(gpu_options=None)
    with pytest.raises(ValueError, match="intra_op_parallelism_threads"):
        fg.SessionConfig(intra_op_parallelism_threads=-1)
    with pytest.raises(ValueError, match="inter_op_parallelism_threads"):
        fg.ConfigProto(inter_op_parallelism_threads="two")


def test_intra_op_parallelism_threads_limits_blas_in_the_process():
    # BLAS thread pools are per process: checked in a child so the suite keeps its own.
    import subprocess
    import sys
    code = (
        "import numpy as np, flowgraph as fg\n"
        "from threadpoolctl import threadpool_info\n"
        "with fg.Graph().as_default():\n"
        "    x = fg.placeholder(fg.float64, (3, 4))\n"
        "    y = fg.matmul(x, fg.constant(np.ones((4, 2))))\n"
        "    with fg.Session(config=fg.ConfigProto(intra_op_parallelism_threads=1)) as s:\n"
        "        out = s.run(y, {x: np.ones((3, 4))})\n"
        "assert (out == 4).all()\n"
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2", OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1]"


def test_set_shape_refines_the_static_shape_and_restricts_feeds():
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [None, None], name="x")
        y = x * 2.0
        with fg.Session() as sess:
            assert sess.run(y, {x: np.ones((2, 5), np.float32)}).shape == (2, 5)
            x.set_shape([None, 3])          # after a run: the session sees it
            assert x.shape == (None, 3) and x.get_shape().as_list() == [None, 3]
            with pytest.raises(fg.errors.FeedError):
                sess.run(y, {x: np.ones((2, 5), np.float32)})
            np.testing.assert_array_equal(sess.run(y, {x: np.ones((2, 3), np.float32)}),
                                          np.full((2, 3), 2.0, np.float32))
        with pytest.raises(ValueError, match=r"set_shape on x:0.*\(\?, 3\), found \(2, 4\)"):
            x.set_shape([2, 4])
        assert x.shape == (None, 3)         # unchanged by the refused call
        x.set_shape(fg.TensorShape([4, None]))
        assert x.shape == (4, 3)
