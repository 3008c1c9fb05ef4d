"""TF1 spellings (issue 14): default sessions, tensor.eval(), op.run(), fg.assign & co."""
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
