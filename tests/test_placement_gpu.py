"""Placement on /gpu:0: device names, PlacementError, soft placement, the placement
log, copies between devices, and run-time errors found on the GPU.

Runs on the numba.cuda simulator when no GPU is present (see tests/conftest.py).
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda (extra 'gpu') is not installed")

import flowgraph as fg
from flowgraph.placed_plan import PlacedPlan
from flowgraph.errors import InvalidArgumentError, NumericsError, PlacementError

pytestmark = pytest.mark.skipif(
    "/gpu:0" not in fg.list_devices(),
    reason="numba.cuda sees no GPU and the simulator is off (a driver without a device?)")


# Tests about the compiled placed plan ask for it whatever the suite's default.
OPT = fg.SessionConfig(optimize=True)


def _plan(sess):
    (plan,) = sess._plans.values()
    return plan


def test_gpu_is_listed_and_spellings_are_accepted():
    assert "/gpu:0" in fg.list_devices()
    for spelling in ("/gpu:0", "gpu:0", "gpu", "/device:GPU:0", "/GPU:0"):
        with fg.device(spelling):
            assert fg.constant(1.0).device == "/gpu:0"


def test_op_on_a_missing_device_raises_naming_op_and_device():
    x = fg.placeholder(fg.float32, (2,), name="x")
    with fg.device("/gpu:7"):
        y = fg.tanh(x, name="far_away")
    ok = x * 2.0
    with fg.Session() as sess:
        with pytest.raises(PlacementError) as info:
            sess.run(y, {x: [1.0, 2.0]})
        message = str(info.value)
        assert "far_away" in message and "/gpu:7" in message and "Tanh" in message
        # The session stays usable.
        np.testing.assert_allclose(sess.run(ok, {x: [1.0, 2.0]}), [2.0, 4.0])


def test_soft_placement_falls_back_to_the_cpu():
    x = fg.placeholder(fg.float32, (2,))
    with fg.device("/gpu:7"):
        y = fg.tanh(x)
    config = fg.SessionConfig(allow_soft_placement=True)
    with fg.Session(config=config) as sess:
        np.testing.assert_allclose(sess.run(y, {x: [0.5, 1.0]}), np.tanh([0.5, 1.0]),
                                   rtol=1e-6)
        assert not isinstance(_plan(sess), PlacedPlan)


def test_log_device_placement_prints_one_line_per_op(capfd):
    x = fg.placeholder(fg.float32, (2,), name="x")
    with fg.device("/gpu:0"):
        y = fg.exp(x, name="e")
    z = fg.negative(y, name="n")
    with fg.Session(config=fg.SessionConfig(log_device_placement=True)) as sess:
        sess.run(z, {x: [0.0, 1.0]})
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert "e: (Exp): /gpu:0" in lines
    assert "n: (Neg): /cpu:0" in lines
    assert len(lines) == 2  # the fed placeholder does not run


def test_feeds_are_copied_once_and_only_fetches_come_back():
    x = fg.placeholder(fg.float32, (3,), name="x")
    with fg.device("/gpu:0"):
        a = fg.exp(x, name="a")
        b = fg.tanh(x, name="b")
        c = fg.reduce_sum(a * b, name="c")
        d = fg.sqrt(fg.abs(c) + x, name="d")
    with fg.Session(config=OPT) as sess:
        out = sess.run(d, {x: [0.1, 0.2, 0.3]})
        plan = _plan(sess)
    assert isinstance(plan, PlacedPlan)
    assert plan.transfers == [("x:0", "cpu->gpu"), ("d:0", "gpu->cpu")]
    v = np.array([0.1, 0.2, 0.3], np.float32)
    np.testing.assert_allclose(out, np.sqrt(np.abs(np.sum(np.exp(v) * np.tanh(v))) + v),
                               rtol=1e-5)


def test_values_crossing_devices_get_copies_both_ways():
    x = fg.placeholder(fg.float32, (2, 2), name="x")
    with fg.device("/gpu:0"):
        h = fg.tanh(x, name="h")
    with fg.device("/cpu:0"):
        m = fg.matmul(h, h, name="m")
    with fg.device("/gpu:0"):
        y = fg.exp(m, name="y")
    value = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)
    with fg.Session(config=OPT) as sess:
        out = sess.run(y, {x: value})
        plan = _plan(sess)
    assert plan.transfers == [("x:0", "cpu->gpu"), ("h:0", "gpu->cpu"), ("m:0", "cpu->gpu"),
                              ("y:0", "gpu->cpu")]
    t = np.tanh(value)
    np.testing.assert_allclose(out, np.exp(t @ t), rtol=1e-5)


def test_optimize_false_runs_the_reference_path_for_gpu_ops():
    with fg.device("/gpu:0"):
        y = fg.constant([1.0, 4.0]) ** 0.5
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        np.testing.assert_allclose(sess.run(y), [1.0, 2.0])
        assert not isinstance(_plan(sess), PlacedPlan)


def test_gather_out_of_range_on_gpu_names_the_op_and_commits_nothing():
    ids = fg.placeholder(fg.int32, (3,), name="ids")
    with fg.device("/gpu:0"):
        table = fg.Variable(np.arange(8, dtype=np.float32).reshape(4, 2), name="table")
        rows = fg.gather(table, ids, name="lookup")
        step = table.assign_add(fg.ones_like(table))
    with fg.Session() as sess:
        with pytest.raises(InvalidArgumentError) as info:
            sess.run([rows, step], {ids: [0, 9, 1]})
        message = str(info.value)
        assert "lookup" in message and "Gather" in message and "9" in message
        assert "[0, 4)" in message
        # Nothing was committed, and the session still works.
        np.testing.assert_array_equal(sess.run(table), np.arange(8).reshape(4, 2))
        np.testing.assert_array_equal(sess.run(rows, {ids: [3, 0, 1]}),
                                      [[6, 7], [0, 1], [2, 3]])
        with pytest.raises(InvalidArgumentError, match="-1"):
            sess.run(rows, {ids: [0, -1, 1]})


def test_gather_gradient_out_of_range_is_an_error_too():
    ids = fg.placeholder(fg.int32, (2,))
    with fg.device("/gpu:0"):
        params = fg.constant(np.ones((3, 2), np.float32))
        g = fg.api.gather_grad(fg.constant(np.ones((2, 2), np.float32)), ids, params,
                               name="scatter")
    with fg.Session() as sess:
        with pytest.raises(InvalidArgumentError, match="scatter"):
            sess.run(g, {ids: [0, 3]})
        np.testing.assert_array_equal(sess.run(g, {ids: [2, 2]}), [[0, 0], [0, 0], [2, 2]])


def test_gather_gradient_rows_of_the_wrong_shape_fail_as_on_the_cpu():
    """A run-time shape mismatch (rows fed through a placeholder of unknown shape) is
    the same InvalidArgumentError, with the same message, on either device."""
    messages = []
    for device in ("/cpu:0", "/gpu:0"):
        rows = fg.placeholder(fg.float32, None)
        ids = fg.placeholder(fg.int32, (2,))
        with fg.device(device):
            table = fg.constant(np.ones((3, 2), np.float32))
            g = fg.api.gather_grad(rows, ids, table, name="scatter")
        with fg.Session() as sess:
            with pytest.raises(InvalidArgumentError, match="scatter") as info:
                sess.run(g, {rows: np.ones((2, 3), np.float32), ids: [0, 1]})
            messages.append(str(info.value).split(": ", 1)[-1])
            np.testing.assert_array_equal(
                sess.run(g, {rows: np.ones((2, 2), np.float32), ids: [2, 2]}),
                [[0, 0], [0, 0], [2, 2]])
    assert "found [2, 3]" in messages[1] or "found (2, 3)" in messages[1], messages
    assert messages[0] == messages[1], messages


def test_integer_division_by_zero_on_gpu_is_an_error():
    d = fg.placeholder(fg.int32, (2,))
    with fg.device("/gpu:0"):
        q = fg.divide(fg.constant(np.array([4, 2], np.int32)), d, name="quotient")
    with fg.Session() as sess:
        with pytest.raises(InvalidArgumentError, match="quotient.*division by zero"):
            sess.run(q, {d: [1, 0]})
        np.testing.assert_allclose(sess.run(q, {d: [2, 2]}), [2.0, 1.0])


def test_run_time_shape_error_on_gpu_names_the_op():
    x = fg.placeholder(fg.float32, (None, 3))
    y = fg.placeholder(fg.float32, (None, 3))
    with fg.device("/gpu:0"):
        s = fg.add(x, y, name="sum_of_two")
    with fg.Session() as sess:
        with pytest.raises(fg.errors.FlowgraphError, match="sum_of_two"):
            sess.run(s, {x: np.ones((2, 3)), y: np.ones((4, 3))})


def test_check_numerics_on_gpu_names_the_op():
    x = fg.placeholder(fg.float32, (2,))
    with fg.device("/gpu:0"):
        y = fg.log(x, name="bad_log")
    with fg.Session(config=fg.SessionConfig(check_numerics=True)) as sess:
        with pytest.raises(NumericsError, match="bad_log"):
            sess.run(y, {x: [1.0, -1.0]})


def test_make_callable_on_gpu():
    x = fg.placeholder(fg.float32, (2,))
    with fg.device("/gpu:0"):
        y = fg.sigmoid(x) * 2.0
    step = fg.Session().make_callable(y, [x])
    for v in ([0.0, 1.0], [2.0, -1.0]):
        np.testing.assert_allclose(step(v), 2.0 / (1.0 + np.exp(-np.array(v))), rtol=1e-6)


def test_a_run_spanning_two_gpus_is_refused_clearly(monkeypatch):
    # Pretend the machine has two GPUs: the plan must refuse, not run on the wrong one.
    from flowgraph import placement
    monkeypatch.setattr(placement, "list_devices", lambda: ["/cpu:0", "/gpu:0", "/gpu:1"])
    with fg.device("/gpu:0"):
        a = fg.exp(fg.constant([1.0]))
    with fg.device("/gpu:1"):
        b = fg.tanh(a, name="on_second_gpu")
    with fg.Session() as sess:
        with pytest.raises(PlacementError, match="on_second_gpu.*/gpu:1.*several GPUs"):
            sess.run(b)


def test_compare_devices_reports_the_differing_fetch(monkeypatch):
    from flowgraph.testing import compare_devices

    def build():
        x = fg.constant(np.array([1.0, 2.0], np.float32))
        # Different values per device: a stand-in for a wrong kernel.
        on_gpu = "gpu" in (fg.get_default_graph().operations[0].device or "")
        return [x * (3.0 if on_gpu else 2.0)], {}
    with pytest.raises(AssertionError, match="differs between /cpu:0 and /gpu:0"):
        compare_devices(build)
    results = compare_devices(lambda: ([fg.constant([1, 2]) * 2], {}))
    np.testing.assert_array_equal(results["/gpu:0"][0], [2, 4])


def test_cpu_ops_of_a_mixed_run_are_compiled_steps():
    """The CPU part of a CPU+GPU run goes through the CPU compiler (GEMMs and fused
    kernels, shown by explain) with copies where values cross, and trains exactly as
    the reference path does."""
    from flowgraph.explain import step_infos
    x = fg.placeholder(fg.float64, (4, 8), name="x")
    w = fg.Variable(np.linspace(-1, 1, 32).reshape(8, 4), name="w")
    with fg.device("/gpu:0"):
        h = fg.tanh(fg.matmul(x, w, name="gpu_mm"), name="gpu_tanh")
    z = fg.reduce_mean(fg.square(fg.sigmoid(fg.matmul(h, fg.transpose(w), name="cpu_mm"))
                                 + 1.0))
    (gw,) = fg.gradients(z, [w])
    train = w.assign_sub(0.1 * gw)
    feed = {x: np.linspace(0, 1, 32).reshape(4, 8)}
    results = {}
    for optimize in (True, False):
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            results[optimize] = [sess.run([z, train], feed)[0] for _ in range(3)]
            if optimize:
                plan = _plan(sess)
                assert isinstance(plan, PlacedPlan)
                text = sess.explain([z, train], feed)
                infos = step_infos(plan)
    np.testing.assert_allclose(results[True], results[False], rtol=1e-12)
    assert results[True][2] < results[True][0]
    kinds = {(i.device, i.kind) for i in infos}
    assert ("/cpu:0", "gemm") in kinds and ("/cpu:0", "fused kernel") in kinds, text
    assert ("/gpu:0", "copy") in kinds and ("/cpu:0", "copy") in kinds, text
    assert not any(i.kind == "reference" for i in infos), text
    on = {op: i.device for i in infos for op in i.ops}
    assert on["cpu_mm"] == "/cpu:0" and on["gpu_mm"] == "/gpu:0"
    assert on["gpu_tanh"] == "/gpu:0"
    # fusion never crosses a device: no step covers ops of both devices
    assert not any("gpu_tanh" in i.ops and i.device == "/cpu:0" for i in infos)


def test_trace_of_a_mixed_run_has_one_track_per_device():
    import json
    x = fg.placeholder(fg.float32, (4, 8))
    w = fg.Variable(np.ones((8, 4), np.float32))
    with fg.device("/gpu:0"):
        h = fg.tanh(x @ w)
    y = fg.reduce_sum(fg.matmul(h, w, transpose_b=True) * 2.0)
    feed = {x: np.full((4, 8), 0.1, np.float32)}
    sess = fg.Session(config=fg.SessionConfig(optimize=True))
    md = fg.RunMetadata()
    traced = sess.run(y, feed, options=fg.RunOptions(trace=True), run_metadata=md)
    np.testing.assert_allclose(traced, sess.run(y, feed), rtol=1e-6)
    trace = json.loads(md.chrome_trace())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    tracks = {e["args"]["name"]: e["tid"] for e in trace["traceEvents"]
              if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(tracks) == {"/cpu:0", "/gpu:0"}
    assert {e["tid"] for e in events} == set(tracks.values())
    assert any(e["cat"] == "gemm" and e["tid"] == tracks["/cpu:0"] for e in events)
    assert any(e["cat"] in ("gemm", "fused kernel") and e["tid"] == tracks["/gpu:0"]
               for e in events)
    starts = [e["ts"] for e in events]
    assert starts == sorted(starts)


def test_an_op_without_a_gpu_kernel_runs_on_the_host(monkeypatch):
    """The lowering falls back instead of failing: a GPU-placed op whose GPU kernel is
    missing runs on the CPU (compiled or reference kernels), with copies around it."""
    import kernels
    from kernels import cuda as gpu_kernels  # noqa: F401  (registers the kernels)
    from flowgraph.explain import step_infos
    monkeypatch.delitem(kernels._REGISTRY, ("OneHot", "gpu"))
    ids = fg.placeholder(fg.int32, (4,))
    x = fg.placeholder(fg.float32, (4, 3))
    with fg.device("/gpu:0"):
        y = fg.tanh(x * 2.0) + fg.one_hot(ids, 3, name="hot")
    feed = {ids: np.array([0, 2, 1, 0], np.int32), x: np.full((4, 3), 0.25, np.float32)}
    sess = fg.Session(config=fg.SessionConfig(optimize=True))
    np.testing.assert_allclose(sess.run(y, feed), np.tanh(feed[x] * 2.0)
                               + np.eye(3, dtype=np.float32)[feed[ids]], rtol=1e-6)
    on = {op: i.device for i in step_infos(_plan(sess)) for op in i.ops}
    assert on["hot"] == "/cpu:0"
