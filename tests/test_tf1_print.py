"""TF1's tf.Print and tf.py_func (flowgraph.logging_ops). Print: the line on stderr on the reference and the
compiled path, first_n and summarize, the value equal to the input, gradients passing
through to any order, Prints never folded or merged by the compiler, inside cond and
while_loop, errors, the CUDA simulator. py_func: values on both paths, copies in,
a reference step of a compiled plan once its shape is set, errors naming the op, no
gradient, the CUDA simulator."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.ops import summarize_value

PATHS = [False, True]   # optimize: the reference path, the compiled path


def _session(optimize):
    return fg.Session(config=fg.SessionConfig(optimize=optimize, compile="eager"))


@pytest.mark.parametrize("optimize", PATHS)
def test_print_writes_message_and_data_to_stderr_and_returns_the_input(optimize, capfd):
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [None, 2])
        y = fg.Print(x, [x, fg.reduce_sum(x), fg.constant([True, False])], "x, sum: ")
        out = _session(optimize).run(y * 2.0, {x: [[1.0, 2.5], [3.0, 4.0]]})
    np.testing.assert_array_equal(out, [[2.0, 5.0], [6.0, 8.0]])
    captured = capfd.readouterr()
    assert captured.err == "x, sum: [1 2.5 3...][10.5][1 0]\n"
    assert captured.out == ""


@pytest.mark.parametrize("optimize", PATHS)
def test_first_n_counts_runs_per_op_and_summarize_limits_elements(optimize, capsys):
    with fg.Graph().as_default():
        x = fg.placeholder(fg.int64, [None])
        a = fg.Print(x, [x], "a", first_n=2, summarize=2)
        b = fg.Print(x, x, "b", summarize=-1)        # one tensor for data; all elements
        c = fg.Print(x, [], first_n=0)                # never prints
        sess = _session(optimize)
        for n in (1, 2, 3):
            got = sess.run([a, b, c], {x: np.arange(n)})
            for v in got:
                np.testing.assert_array_equal(v, np.arange(n))
        # a new session: the count is the op's (it already printed twice)
        _session(optimize).run(a, {x: [7]})
    lines = capsys.readouterr().err.splitlines()
    assert sorted(lines) == sorted(["a[0]", "a[0 1]", "b[0]", "b[0 1]", "b[0 1 2]"])


@pytest.mark.parametrize("optimize", PATHS)
def test_prints_are_neither_merged_nor_folded_and_run_only_when_needed(optimize, capfd):
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [3])
        same = [fg.Print(fg.tanh(x), [x], "same: ") for _ in range(2)]   # CSE candidates
        folded = fg.Print(fg.constant(1.0), [fg.constant(2.0)], "const: ")  # constants
        unused = fg.Print(x, [x], "unused: ")  # noqa: F841  (not fetched: does not run)
        sess = _session(optimize)
        for _ in range(2):
            got = sess.run([same[0] + same[1], folded * 3.0], {x: np.zeros(3)})
    np.testing.assert_array_equal(got[0], np.zeros(3))
    assert got[1] == 3.0
    assert sorted(capfd.readouterr().err.splitlines()) == sorted(
        ["same: [0 0 0]"] * 4 + ["const: [2]"] * 2)


def test_the_compiled_plan_has_print_as_a_step_of_its_own():
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [3])
        y = fg.Print(fg.tanh(x), [x])
        text = _session(True).explain(fg.exp(y), {x: np.zeros(3)})
    assert text.startswith("CompiledPlan")
    assert any("reference" in line and "Print" in line for line in text.splitlines())


@pytest.mark.parametrize("optimize", PATHS)
def test_gradient_is_the_identity_to_input_and_nothing_to_data(optimize, capfd):
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float64, [3])
        d = fg.placeholder(fg.float64, [3])
        y = fg.Print(x * x * x, [d], "y ")
        gx, gd = fg.gradients(fg.reduce_sum(y), [x, d])
        # nothing flows to data: flowgraph's gradients gives zeros for a tensor the
        # loss does not depend on (fg.gradients' convention), TF1 None
        (g2,) = fg.gradients(fg.reduce_sum(gx), [x])
        v = np.array([1.0, -2.0, 0.5])
        got_gx, got_gd, got_g2 = _session(optimize).run([gx, gd, g2], {x: v, d: v})
    np.testing.assert_array_equal(got_gd, np.zeros(3))
    np.testing.assert_allclose(got_gx, 3 * v * v)
    np.testing.assert_allclose(got_g2, 6 * v)
    # (whether Print runs here depends on whether the gradient reads y's value or only
    # its shape: the compiled plan knows the shape statically and does not run it)


@pytest.mark.parametrize("optimize", PATHS)
def test_print_inside_cond_and_while_loop_prints_each_time_its_body_runs(optimize, capfd):
    with fg.Graph().as_default():
        p = fg.placeholder(fg.bool_, [])
        x = fg.placeholder(fg.float32, [])
        picked = fg.cond(p, lambda: fg.Print(x + 1.0, [x], "true "),
                         lambda: fg.Print(x - 1.0, [x], "false "))
        _, total = fg.while_loop(lambda i, s: i < 3,
                                 lambda i, s: (i + 1, fg.Print(s + 1.0, [i], "it ")),
                                 [fg.constant(0), x])
        sess = _session(optimize)
        assert sess.run(picked, {p: True, x: 2.0}) == 3.0
        assert sess.run(picked, {p: False, x: 2.0}) == 1.0
        assert sess.run(total, {x: 0.0}) == 3.0
    assert capfd.readouterr().err.splitlines() == [
        "true [2]", "false [2]", "it [0]", "it [1]", "it [2]"]


def test_summarize_value_follows_tf1():
    assert summarize_value(np.arange(5), 3) == "0 1 2..."
    assert summarize_value(np.arange(3), 3) == "0 1 2"
    assert summarize_value(np.arange(6).reshape(2, 3), -1) == "0 1 2 3 4 5"
    assert summarize_value(np.float32(0.1)) == "0.1"
    assert summarize_value(np.array([], np.float32)) == ""
    assert summarize_value(np.array([True, False]), 1) == "1..."


def test_bad_arguments_raise_type_error_naming_print():
    with fg.Graph().as_default():
        x = fg.constant([1.0])
        with pytest.raises(TypeError, match="Print.*message"):
            fg.Print(x, [x], message=3)
        with pytest.raises(TypeError, match="Print.*first_n"):
            fg.Print(x, [x], first_n=1.5)
        with pytest.raises(TypeError, match="Print.*summarize"):
            fg.Print(x, [x], summarize="3")


# --- GPU (the numba.cuda simulator when no GPU is present; tests/conftest.py) ------------

@pytest.mark.usefixtures("needs_gpu")
def test_print_on_the_gpu_runs_on_the_host_and_equals_the_cpu(capfd):
    from flowgraph.testing import compare_devices
    data = np.arange(4, dtype=np.float32)

    def build():
        x = fg.placeholder(fg.float32, (4,))
        y = fg.Print(fg.tanh(x), [x], "gpu ")
        return [y * 2.0, *fg.gradients(fg.reduce_sum(y * y), [x])], {x: data}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"))
    assert set(results) == {"/cpu:0", "/gpu:0"}
    np.testing.assert_allclose(results["/gpu:0"][0], 2 * np.tanh(data), rtol=1e-6)
    assert "gpu [0 1 2...]" in capfd.readouterr().err


# --- tf.py_func ---------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", PATHS)
def test_py_func_calls_python_on_numpy_values_each_run(optimize):
    calls = []

    def f(a, b):
        calls.append((a.copy(), b.copy()))
        a += 100.0           # its own copy: the plan's buffers stay as they were
        return np.sort(b)[::-1].astype(np.float32), np.int32(b.size)

    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [None])
        y = fg.tanh(x)
        top, n = fg.py_func(f, [y, x], [fg.float32, fg.int32])
        assert top.shape is None and n.dtype == fg.int32
        sess = _session(optimize)
        for v in ([0.5, 2.0, 1.0], [3.0]):
            got_top, got_n, got_y = sess.run([top, n, y], {x: v})
            np.testing.assert_array_equal(got_top, np.sort(np.float32(v))[::-1])
            assert got_n == len(v)
            np.testing.assert_allclose(got_y, np.tanh(np.float32(v)), rtol=1e-6)
    assert len(calls) == 2
    with fg.Graph().as_default():
        single = fg.py_func(lambda: np.float64(2.5), [], fg.float64)
        (listed,) = fg.py_func(lambda: np.float64(1.5), [], [fg.float64])  # one value
        assert _session(optimize).run([single, listed]) == [2.5, 1.5]


def test_py_func_with_set_shape_is_a_reference_step_of_a_compiled_plan():
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [3])
        y = fg.py_func(lambda v: v * 2, [fg.tanh(x)], fg.float32)
        twice = fg.py_func(lambda v: v * 2, [fg.tanh(x)], fg.float32)  # not merged
        for t in (y, twice):
            t.set_shape([3])
        z = fg.exp(y) + twice
        sess = _session(True)
        text = sess.explain(z, {x: np.zeros(3)})
        got = sess.run(z, {x: np.zeros(3)})
    assert text.startswith("CompiledPlan")
    assert sum("reference" in line and "PyFunc" in line for line in text.splitlines()) == 2
    np.testing.assert_array_equal(got, np.ones(3))


@pytest.mark.parametrize("optimize", PATHS)
def test_py_func_errors_name_the_op(optimize):
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, [2])
        wrong_dtype = fg.py_func(lambda v: v.astype(np.float64), [x], fg.float32)
        wrong_count = fg.py_func(lambda v: v, [x], [fg.float32, fg.float32])
        raises = fg.py_func(lambda v: 1 / 0, [x], fg.float32)
        sess = _session(optimize)
        with pytest.raises(fg.errors.InvalidArgumentError, match="PyFunc.*float64.*float32"):
            sess.run(wrong_dtype, {x: [1, 2]})
        with pytest.raises(fg.errors.InvalidArgumentError, match="PyFunc.*2 value"):
            sess.run(wrong_count, {x: [1, 2]})
        with pytest.raises(fg.errors.InvalidArgumentError, match="PyFunc.*ZeroDivision"):
            sess.run(raises, {x: [1, 2]})
        with pytest.raises(TypeError, match="py_func.*callable"):
            fg.py_func(3, [x], fg.float32)


def test_py_func_has_no_gradient():
    # TF1 raises LookupError; fg.gradients, as for every op without a gradient, gives
    # nothing through it (zeros where no other path reaches the input)
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float64, [2])
        y = fg.py_func(lambda v: v * 3, [x], fg.float64)
        y.set_shape([2])
        (g,) = fg.gradients(fg.reduce_sum(y * y + x), [x])
        np.testing.assert_array_equal(_session(True).run(g, {x: [1.0, 2.0]}), [1.0, 1.0])


@pytest.mark.usefixtures("needs_gpu")
def test_py_func_on_the_gpu_runs_on_the_host_and_equals_the_cpu():
    from flowgraph.testing import compare_devices
    data = np.arange(4, dtype=np.float32)

    def build():
        x = fg.placeholder(fg.float32, (4,))
        y = fg.py_func(lambda v: v[::-1].copy(), [fg.tanh(x)], fg.float32)
        y.set_shape([4])       # static: a compiled plan with the host step
        return [fg.exp(y)], {x: data}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"))
    assert set(results) == {"/cpu:0", "/gpu:0"}
    np.testing.assert_allclose(results["/gpu:0"][0], np.exp(np.tanh(data[::-1])), rtol=1e-6)
