"""The compiled plan of a mixed CPU+GPU run (flowgraph.placed_plan): every pass runs
on the GPU part too (CSE, matmul stacking, fusion across non-consecutive ops), copies
appear exactly where values cross devices, and random placed graphs equal the
reference plan. Runs on the numba.cuda simulator when no GPU is present (tiny tensors:
a simulated thread costs about a millisecond).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba_cuda", reason="numba-cuda (extra 'gpu') is not installed")

import flowgraph as fg
from flowgraph.explain import step_infos
from flowgraph.placed_plan import PlacedPlan
from flowgraph.testing import strategies as fgst

pytestmark = pytest.mark.skipif(
    "/gpu:0" not in fg.list_devices(),
    reason="numba.cuda sees no GPU and the simulator is off (a driver without a device?)")

OPT = fg.SessionConfig(optimize=True)
REF = fg.SessionConfig(optimize=False)


def _plan_and_infos(fetches, feed):
    sess = fg.Session(config=OPT)
    out = sess.run(fetches, feed)
    (plan,) = sess._plans.values()
    assert isinstance(plan, PlacedPlan)
    ref = fg.Session(config=REF).run(fetches, feed)
    return out, ref, plan, step_infos(plan)


def test_cse_runs_on_the_gpu_part():
    x = fg.placeholder(fg.float32, (2, 3), name="x")
    w = fg.constant(np.linspace(-1, 1, 12).reshape(3, 4).astype(np.float32))
    with fg.device("/gpu:0"):
        a = fg.matmul(x, w, name="first")
        b = fg.matmul(x, w, name="again")      # the same product: CSE keeps one
        y = fg.reduce_sum(a * b, name="y")
    feed = {x: np.full((2, 3), 0.5, np.float32)}
    out, ref, plan, infos = _plan_and_infos(y, feed)
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    gemms = [i for i in infos if i.kind == "gemm"]
    assert len(gemms) == 1 and gemms[0].device == "/gpu:0", infos


def test_matmul_stacking_runs_on_the_gpu_part():
    """A sum of a.T @ b products (an unrolled RNN's weight gradient) is one GEMM of
    stacked operands on the GPU."""
    xs = [fg.placeholder(fg.float32, (2, 3), name=f"x{t}") for t in range(3)]
    gs = [fg.placeholder(fg.float32, (2, 4), name=f"g{t}") for t in range(3)]
    with fg.device("/gpu:0"):
        total = fg.add_n([fg.matmul(x, g, transpose_a=True) for x, g in zip(xs, gs)])
        total = fg.add(total, 0.0 * fg.reduce_sum(total), name="total")
    rng = np.random.default_rng(0)
    feed = {p: rng.normal(size=p.shape).astype(np.float32) for p in xs + gs}
    out, ref, plan, infos = _plan_and_infos(total, feed)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    gemms = [i for i in infos if i.kind == "gemm"]
    assert len(gemms) == 1 and gemms[0].device == "/gpu:0", infos


def test_fusion_on_the_gpu_joins_ops_that_are_not_consecutive():
    """GPU ops created around a CPU op (the old device plan fused only consecutive
    ops) fuse into one kernel; fusion never takes the CPU op."""
    x = fg.placeholder(fg.float32, (2, 3), name="x")
    with fg.device("/gpu:0"):
        a = fg.exp(x, name="a")
    c = fg.tanh(x, name="on_cpu")
    with fg.device("/gpu:0"):
        b = fg.add(a * 3.0, 1.0, name="b")
    feed = {x: np.full((2, 3), 0.25, np.float32)}
    out, ref, plan, infos = _plan_and_infos([b, c], feed)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, rtol=1e-6)
    fused = [i for i in infos if i.kind == "fused kernel" and i.device == "/gpu:0"]
    assert len(fused) == 1 and {"a", "b"} <= set(fused[0].ops), infos
    on = {op: i.device for i in infos for op in i.ops}
    assert on["on_cpu"] == "/cpu:0"
    assert not any("on_cpu" in i.ops and i.device == "/gpu:0" for i in infos)


def test_copies_appear_exactly_where_values_cross_devices():
    x = fg.placeholder(fg.float32, (2, 2), name="x")
    with fg.device("/gpu:0"):
        a = fg.tanh(x, name="a")
        a2 = fg.sigmoid(x, name="a2")          # x is uploaded once for both
    b = fg.matmul(a, a, name="b")              # CPU: a comes down once...
    b2 = fg.matmul(a, a2, name="b2")           # ...for both matmuls
    with fg.device("/gpu:0"):
        y = fg.exp(b + b2, name="y")           # b and b2 go up
    z = fg.negative(b, name="z")               # CPU value fetched: no copy
    value = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)
    out, ref, plan, infos = _plan_and_infos([y, z], {x: value})
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, rtol=1e-5)
    assert sorted(plan.transfers) == sorted([
        ("x:0", "cpu->gpu"), ("a:0", "gpu->cpu"), ("a2:0", "gpu->cpu"),
        ("b:0", "cpu->gpu"), ("b2:0", "cpu->gpu"), ("y:0", "gpu->cpu")])
    copies = [i for i in infos if i.kind == "copy"]
    assert len(copies) == len(plan.transfers)
    # a copy's device is where the value goes
    assert all(i.device == ("/gpu:0" if i.ops[0].endswith("cpu->gpu") else "/cpu:0")
               for i in copies)


def test_an_all_gpu_run_copies_only_feeds_and_fetches():
    x = fg.placeholder(fg.float32, (3, 2), name="x")
    with fg.device("/gpu:0"):
        w = fg.Variable(np.ones((2, 2), np.float32), name="w")
        h = fg.tanh(fg.matmul(x, w) + 1.0)
        loss = fg.reduce_sum(h * h, name="loss")
        (gw,) = fg.gradients(loss, [w])
        train = w.assign_sub(0.1 * gw)
    sess = fg.Session(config=OPT)
    feed = {x: np.full((3, 2), 0.1, np.float32)}
    sess.run([loss, train], feed)
    (plan,) = sess._plans.values()
    assert plan.transfers == [("x:0", "cpu->gpu"), ("loss:0", "gpu->cpu")]
    assert not any(i.device == "/cpu:0" and i.kind != "copy" for i in step_infos(plan))


@settings(max_examples=12)
@given(recipe=fgst.graphs(min_ops=2, max_ops=6, max_side=2), data=st.data())
def test_random_placed_graphs_equal_the_reference_plan(recipe, data):
    """Any split of a random graph's ops between the CPU and the GPU computes what the
    reference plan computes, forward and gradient."""
    with fg.Graph().as_default() as graph:
        out, placeholders, feed = recipe.build()
        grads = fg.gradients(out, placeholders)
        ops = [op for op in graph.operations if op.type != "Placeholder"]
        on_gpu = data.draw(st.lists(st.booleans(), min_size=len(ops), max_size=len(ops)))
        for op, gpu in zip(ops, on_gpu):
            op.device = "/gpu:0" if gpu else None
        fetches = [out] + [g for g in grads if g is not None]
        got = fg.Session(config=OPT).run(fetches, feed)
        want = fg.Session(config=REF).run(fetches, feed)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_a_node_a_pass_makes_without_a_gpu_kernel_runs_on_the_host(monkeypatch):
    """Matmul stacking on the GPU makes Concat nodes; with no GPU Concat kernel they
    run on the host (legalize), with copies around them: never a KeyError."""
    import kernels
    from kernels import cuda as gpu_kernels  # noqa: F401  (registers the kernels)
    monkeypatch.delitem(kernels._REGISTRY, ("Concat", "gpu"))
    xs = [fg.placeholder(fg.float32, (2, 3), name=f"x{t}") for t in range(2)]
    gs = [fg.placeholder(fg.float32, (2, 4), name=f"g{t}") for t in range(2)]
    with fg.device("/gpu:0"):
        a = fg.tanh(xs[0]) + 0.0
        total = fg.add(fg.matmul(a, gs[0], transpose_a=True),
                       fg.matmul(xs[1], gs[1], transpose_a=True), name="total")
    rng = np.random.default_rng(1)
    feed = {p: rng.normal(size=p.shape).astype(np.float32) for p in xs + gs}
    out, ref, plan, infos = _plan_and_infos(total, feed)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    gemms = [i for i in infos if i.kind == "gemm"]
    assert len(gemms) == 1 and gemms[0].device == "/gpu:0", infos
    assert any(i.kind == "copy" and i.device == "/cpu:0" and "gpu->cpu" in i.ops[0]
               for i in infos), infos


def test_errors_in_a_cpu_stretch_of_a_mixed_run_name_the_op():
    """A CPU stretch hands its failures to the placed plan, which replays the whole run
    on the reference path: the error names the graph op as specified."""
    x = fg.placeholder(fg.float32, (3,), name="x")
    ids = fg.placeholder(fg.int32, (2,), name="ids")
    with fg.device("/gpu:0"):
        a = fg.exp(x, name="a")
    bad = fg.log(a - 10.0, name="bad_log")           # on the CPU, after the GPU
    rows = fg.gather(a, ids, name="cpu_lookup")
    feed = {x: np.zeros(3, np.float32), ids: np.array([0, 1], np.int32)}
    with fg.Session(config=fg.SessionConfig(optimize=True, check_numerics=True)) as sess:
        with pytest.raises(fg.errors.NumericsError, match="bad_log"):
            sess.run(bad, feed)
        assert isinstance(sess._plans[next(iter(sess._plans))], PlacedPlan)
    with fg.Session(config=OPT) as sess:
        np.testing.assert_allclose(sess.run(rows, feed), [1.0, 1.0])
        with pytest.raises(fg.errors.InvalidArgumentError, match="cpu_lookup"):
            sess.run(rows, {x: feed[x], ids: np.array([0, 7], np.int32)})
