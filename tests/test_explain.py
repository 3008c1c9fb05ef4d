"""One compiled plan for every placement, and seeing it: soft-placed runs compile,
``Session.explain`` lists every plan step with its device, kind and ops, and
``RunOptions(trace=True)`` records each step into a Chrome trace.
"""
import json

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.plan import CompiledPlan

# eager: these tests read the generated kernels right after the first run
COMPILED = fg.SessionConfig(optimize=True, compile="eager")


def _steps(text):
    """The step lines of an explain text: (index, device, kind, ops)."""
    lines = text.splitlines()[2:]
    out = []
    for line in lines:
        index, device, rest = line.split(None, 2)
        kind, _, ops = rest.partition("  ")
        out.append((int(index), device, kind.strip(), ops.strip()))
    return out


def _small_graph():
    """A GEMM, a fused elementwise region and a one_hot (a CPU kernel, removed by a
    test to see the reference fallback)."""
    x = fg.placeholder(fg.float32, (4, 3), name="x")
    ids = fg.placeholder(fg.int32, (4,), name="ids")
    w = fg.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, name="w")
    h = fg.tanh(fg.matmul(x, w, name="mm") + 1.0, name="act") * 2.0
    y = h + fg.one_hot(ids, 4, name="hot")
    feed = {x: np.ones((4, 3), np.float32), ids: np.array([0, 1, 2, 3], np.int32)}
    return y, feed


def test_soft_placed_graph_runs_the_compiled_cpu_plan():
    """Built under a device this machine lacks, soft-placed onto the CPU: the same
    compiled plan (and the same values) as the graph built with no device."""
    values = {}
    for device in (None, "/gpu:7"):
        with fg.Graph().as_default():
            x = fg.placeholder(fg.float32, (None, 8))
            with fg.device(device):
                w = fg.Variable(np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4))
                loss = fg.reduce_mean(fg.square(fg.tanh(x @ w)))
                (gw,) = fg.gradients(loss, [w])
                train = w.assign_sub(0.1 * gw)
            config = fg.SessionConfig(optimize=True, allow_soft_placement=True)
            with fg.Session(config=config) as sess:
                feed = {x: np.linspace(0, 1, 40, dtype=np.float32).reshape(5, 8)}
                values[device] = [sess.run([loss, train], feed)[0] for _ in range(3)]
                (plan,) = sess._plans.values()
                assert isinstance(plan, CompiledPlan), type(plan)
                text = sess.explain([loss, train], feed)
                assert "gemm" in text and "fused kernel" in text
                assert {d for _, d, _, _ in _steps(text)} == {"/cpu:0"}
    np.testing.assert_array_equal(values[None], values["/gpu:7"])
    assert values[None][2] < values[None][0]  # it trained


def test_placement_gives_every_op_its_device_after_soft_placement():
    from flowgraph.placement import all_on_cpu, place
    with fg.Graph().as_default():
        a = fg.constant(1.0, name="a")
        with fg.device("/gpu:7"):
            b = fg.add(a, 2.0, name="b")
        chosen = place([b], [], [], fg.SessionConfig(allow_soft_placement=True))
        assert {op.name for op in chosen} >= {"a", "b"}
        assert all_on_cpu(chosen)
        with pytest.raises(fg.errors.PlacementError, match="/gpu:7"):
            place([b], [], [], fg.SessionConfig())


def test_explain_lists_gemm_fused_and_reference_steps_with_their_ops(monkeypatch):
    import kernels
    from kernels import cpu  # noqa: F401  (registers the CPU kernels)
    y, feed = _small_graph()
    kinds = {k: ops for _, _, k, ops in _steps(fg.Session(config=COMPILED).explain(y, feed))}
    assert kinds["kernel"] == "hot"                 # OneHot's CPU kernel
    # without a CPU kernel an op runs its reference kernel (the lowering's fallback)
    monkeypatch.delitem(kernels._REGISTRY, ("OneHot", "cpu"))
    sess = fg.Session(config=COMPILED)
    text = sess.explain(y, feed)
    header = text.splitlines()[0]
    assert header.startswith("CompiledPlan:")
    steps = _steps(text)
    kinds = {kind for _, _, kind, _ in steps}
    assert {"gemm", "fused kernel", "reference"} <= kinds, text
    assert [i for i, _, _, _ in steps] == list(range(len(steps)))
    gemm = [ops for _, _, kind, ops in steps if kind == "gemm"]
    assert gemm == ["mm"]
    fused = [ops for _, _, kind, ops in steps if kind == "fused kernel"]
    assert any("act" in ops for ops in fused), text
    assert [ops for _, _, kind, ops in steps if kind == "reference"] == ["hot"]
    # the header counts the steps and the distinct generated kernels
    (plan,) = sess._plans.values()
    assert f"{len(steps)} steps" in header
    assert f"{len(plan.kernel_sources)} distinct kernels" in header
    assert len(plan.kernel_sources) >= 1
    # the plan explain showed is the one a run uses, and it computes the reference values
    np.testing.assert_allclose(sess.run(y, feed), fg.Session(
        config=fg.SessionConfig(optimize=False)).run(y, feed), rtol=1e-6)
    assert list(sess._plans.values()) == [plan]


def test_explain_on_the_reference_path_lists_one_reference_step_per_op():
    y, feed = _small_graph()
    text = fg.Session(config=fg.SessionConfig(optimize=False)).explain(y, feed)
    assert text.startswith("ReferencePlan:")
    steps = _steps(text)
    assert {kind for _, _, kind, _ in steps} == {"reference"}
    assert "mm" in [ops for _, _, _, ops in steps]


@pytest.mark.parametrize("optimize", [True, False], ids=["compiled", "reference"])
def test_trace_has_one_event_per_step_in_order(optimize):
    y, feed = _small_graph()
    sess = fg.Session(config=fg.SessionConfig(optimize=optimize))
    md = fg.RunMetadata()
    traced = sess.run(y, feed, options=fg.RunOptions(trace=True), run_metadata=md)
    np.testing.assert_array_equal(traced, sess.run(y, feed))
    steps = _steps(sess.explain(y, feed))
    trace = json.loads(md.chrome_trace())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(events) == len(steps) == len(md.step_stats)
    assert [e["cat"] for e in events] == [kind for _, _, kind, _ in steps]
    starts = [e["ts"] for e in events]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(e["dur"] >= 0 for e in events)
    assert all(a["ts"] + a["dur"] <= b["ts"] + 1e-3 for a, b in zip(events, events[1:]))
    # one track per (rank, device), named by metadata events
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(names.values()) == {"/cpu:0"}
    assert {(e["pid"], e["tid"]) for e in events} == set(names)


def test_untraced_runs_record_nothing():
    y, feed = _small_graph()
    sess = fg.Session(config=COMPILED)
    md = fg.RunMetadata()
    sess.run(y, feed, run_metadata=md)                       # no options: no trace
    sess.run(y, feed, options=fg.RunOptions(), run_metadata=md)
    assert md.step_stats == []
    assert json.loads(md.chrome_trace())["traceEvents"] == []


def test_allreduce_is_a_compiled_step_in_one_process():
    from flowgraph.distributed import allreduce_mean
    x = fg.placeholder(fg.float64, (3,))
    a, b = allreduce_mean([fg.tanh(x), x * 2.0])
    loss = fg.reduce_sum(a * b)
    feed = {x: np.array([0.1, -0.2, 0.3])}
    sess = fg.Session(config=COMPILED)
    text = sess.explain(loss, feed)
    assert text.startswith("CompiledPlan:")
    assert [kind for _, _, kind, _ in _steps(text)].count("allreduce") == 1
    expected = fg.Session(config=fg.SessionConfig(optimize=False)).run(loss, feed)
    assert sess.run(loss, feed) == pytest.approx(expected, rel=1e-15)


def test_compiled_partition_in_one_process_runs_task_zero_compiled():
    with fg.device("/job:worker/task:0/cpu:0"):
        x = fg.placeholder(fg.float64, (2, 2))
        y = fg.tanh(x @ x) + 1.0
    sess = fg.Session(config=COMPILED)
    feed = {x: np.array([[0.1, 0.2], [0.3, 0.4]])}
    np.testing.assert_allclose(sess.run(y, feed), np.tanh(feed[x] @ feed[x]) + 1.0)
    text = sess.explain(y, feed)
    assert text.startswith("CompiledPartitionPlan:")
    assert {d for _, d, _, _ in _steps(text)} == {"/job:worker/task:0/cpu:0"}
    md = fg.RunMetadata()
    sess.run(y, feed, options=fg.RunOptions(trace=True), run_metadata=md)
    assert len(md.step_stats) == len(_steps(text))


def test_a_region_whose_op_has_no_ufunc_entry_runs_as_a_generated_loop(monkeypatch):
    """The lowering falls back instead of failing: a float64 tanh region is a ufunc
    chain by the cost model; without a ufunc entry for Tanh it is a generated kernel."""
    x = fg.placeholder(fg.float64, (64, 64))
    y = fg.tanh(fg.tanh(x) * 2.0) + fg.tanh(x * 3.0)
    feed = {x: np.linspace(-2, 2, 64 * 64).reshape(64, 64)}
    expected = np.tanh(np.tanh(feed[x]) * 2.0) + np.tanh(feed[x] * 3.0)
    kinds = {}
    for missing in (False, True):
        if missing:
            _drop_tanh_ufunc(monkeypatch)
        sess = fg.Session(config=COMPILED)
        np.testing.assert_allclose(sess.run(y, feed), expected, rtol=1e-12)
        kinds[missing] = {kind for _, _, kind, _ in _steps(sess.explain(y, feed))}
    assert kinds[False] == {"ufunc chain"}
    assert kinds[True] == {"fused kernel"}


@pytest.mark.parametrize("avx512", [False, True])
def test_a_float32_tanh_cell_is_a_loop_where_numpys_tanh_is_not_simd(monkeypatch, avx512):
    """An RNN cell's forward region, ``tanh(z + b)`` and ``1 - tanh**2`` at 64x256 in
    float32: where NumPy has no AVX-512 ``tanh`` (3-4.6 ns per element on an AVX2
    core) it is a generated loop (vmath's tanh, 1.6 ns); with NumPy's SIMD tanh the
    cost model keeps the four-call ufunc chain. Either way the values are the
    reference's."""
    from flowgraph.backends import cpu_steps
    monkeypatch.setattr(cpu_steps, "_numpy_avx512", lambda: avx512)
    rng = np.random.default_rng(0)
    z = fg.placeholder(fg.float32, (64, 256), name="z")
    b = fg.constant(rng.standard_normal(256).astype(np.float32))
    t = fg.tanh(z + b)
    y = [t, 1.0 - fg.square(t)]
    feed = {z: rng.standard_normal((64, 256)).astype(np.float32)}
    sess = fg.Session(config=COMPILED)
    got = sess.run(y, feed)
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(y, feed)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    kinds = {kind for _, _, kind, _ in _steps(sess.explain(y, feed))}
    assert kinds == ({"ufunc chain"} if avx512 else {"fused kernel"})


def test_a_reshape_of_a_strided_value_is_one_copy_step():
    """unstack along axis 1 gives strided slices: reshaping one is a copy step (a CPU
    kernel), not the reference kernel."""
    x = fg.placeholder(fg.float64, (4, 3, 5))
    parts = fg.unstack(x, axis=1)
    y = fg.concat([fg.reshape(p, (20,)) * 2.0 for p in parts], axis=0)
    feed = {x: np.arange(60, dtype=np.float64).reshape(4, 3, 5)}
    sess = fg.Session(config=COMPILED)
    expected = np.concatenate([feed[x][:, k].reshape(20) * 2.0 for k in range(3)])
    np.testing.assert_array_equal(sess.run(y, feed), expected)
    kinds = [kind for _, _, kind, _ in _steps(sess.explain(y, feed))]
    assert "reference" not in kinds and "copy" in kinds


def test_collectives_keep_their_order_without_a_cycle_through_fusion():
    """Two allreduces (a forward one and its gradient) where fusion puts an input of
    the first and a reader of the second in one region: the order of the collectives
    is a control chain every pass sees, so the plan has no cycle."""
    from flowgraph.distributed import allreduce_mean
    p = fg.placeholder(fg.float64, ())
    y = allreduce_mean([p * p, fg.tanh(p)])[0] * p
    (g,) = fg.gradients(y, [p])
    feed = {p: np.float64(0.3)}
    sess = fg.Session(config=COMPILED)
    expected = fg.Session(config=fg.SessionConfig(optimize=False)).run([y, g], feed)
    np.testing.assert_allclose(sess.run([y, g], feed), expected, rtol=1e-14)
    kinds = [kind for _, _, kind, _ in _steps(sess.explain([y, g], feed))]
    assert kinds.count("allreduce") == 2


def test_an_embedding_gradient_runs_the_numba_scatter_kernel():
    """GatherGrad's CPU kernel is the Numba scatter-add (kernels/cpu/scatter.py), not a
    second registration shadowing it; its result is the reference's."""
    from kernels import lookup
    from kernels.cpu import scatter
    assert lookup("GatherGrad", "cpu") is scatter.gather_grad_step
    ids = fg.placeholder(fg.int32, (6,), name="ids")
    table = fg.Variable(np.arange(20, dtype=np.float32).reshape(5, 4) / 7, name="table")
    rows = fg.gather(table, ids)
    (g,) = fg.gradients(fg.reduce_sum(fg.tanh(rows) * rows), [table])
    feed = {ids: np.array([3, 0, 3, 4, 3, 1], np.int32)}
    sess = fg.Session(config=COMPILED)
    sess.run(fg.global_variables_initializer())
    got = sess.run(g, feed)
    ref = fg.Session(config=fg.SessionConfig(optimize=False))
    ref.run(fg.global_variables_initializer())
    np.testing.assert_allclose(got, ref.run(g, feed), rtol=1e-6)
    steps = _steps(sess.explain(g, feed))
    assert any(kind == "scatter kernel" for _, _, kind, _ in steps)


def _drop_tanh_ufunc(monkeypatch):
    """Declare Tanh without a ufunc (as a new primitive might be)."""
    import dataclasses
    from flowgraph import primitives
    tanh = primitives.get_primitive("Tanh")
    monkeypatch.setitem(primitives._PRIMITIVES, "Tanh", dataclasses.replace(tanh, ufunc=None))


def test_a_primitive_declaring_no_template_or_ufunc_runs_its_reference_kernel(monkeypatch):
    """An op declared with only its rules and reference kernel (no scalar template, no
    ufunc: a new primitive's first form) is a reference step of its own between fused
    regions: slower, never a KeyError."""
    import dataclasses
    from flowgraph import primitives
    tanh = primitives.get_primitive("Tanh")
    monkeypatch.setitem(primitives._PRIMITIVES, "Tanh", dataclasses.replace(
        tanh, template=None, template_f32=None, ufunc=None, cost_ns=(0.0, 0.0)))
    x = fg.placeholder(fg.float32, (3, 4))
    y = fg.tanh(x * 2.0) + 1.0
    feed = {x: np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
    sess = fg.Session(config=COMPILED)
    np.testing.assert_allclose(sess.run(y, feed), np.tanh(feed[x] * 2.0) + 1.0, rtol=1e-6)
    steps = [(kind, ops) for _, _, kind, ops in _steps(sess.explain(y, feed))]
    assert ("reference", "tanh") in steps
    assert [kind for kind, _ in steps] == ["fused kernel", "reference", "fused kernel"]
