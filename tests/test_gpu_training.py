"""Models across devices: a two-layer LSTM with one layer per device equals the all-CPU
run (outputs and gradients), and SGD training with variables resident on the GPU
equals CPU training. Runs on the numba.cuda simulator when no GPU is present.

The LSTM is written with fg ops directly, with the README's LSTMCell equations
(kernel [H+I, 4H] with column blocks i, f, o, g; c' = f*c + i*g; h' = o*tanh(c')).
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda (extra 'gpu') is not installed")

import flowgraph as fg
from flowgraph.placed_plan import PlacedPlan
from kernels.cuda import runtime as cuda_runtime

pytestmark = pytest.mark.skipif(
    "/gpu:0" not in fg.list_devices(),
    reason="numba.cuda sees no GPU and the simulator is off (a driver without a device?)")

B, I, H, T = 2, 3, 4, 3
# These tests are about the compiled placed plan (copies, resident variables): they
# ask for it whatever the suite's default (the reference path is their oracle).
OPT = fg.SessionConfig(optimize=True)


def _lstm_layer(inputs, in_dim, seed, forget_bias=1.0):
    rng = np.random.default_rng(seed)
    kernel = fg.Variable(rng.uniform(-0.5, 0.5, (H + in_dim, 4 * H)).astype(np.float32),
                         name="kernel")
    bias0 = np.zeros(4 * H, np.float32)
    bias0[H:2 * H] = forget_bias
    bias = fg.Variable(bias0, name="bias")
    h = fg.zeros((B, H))
    c = fg.zeros((B, H))
    outputs = []
    for x in inputs:
        z = fg.matmul(fg.concat([h, x], 1), kernel) + bias
        i, f, o, g = fg.split(z, 4, axis=1)
        c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
        h = fg.sigmoid(o) * fg.tanh(c)
        outputs.append(h)
    return outputs, [kernel, bias]


def _build_two_layer_lstm(device1, device2):
    xs = [fg.placeholder(fg.float32, (B, I), name=f"x{t}") for t in range(T)]
    with fg.device(device1), fg.name_scope("layer1"):
        out1, vars1 = _lstm_layer(xs, I, seed=1)
    with fg.device(device2), fg.name_scope("layer2"):
        out2, vars2 = _lstm_layer(out1, H, seed=2)
    loss = fg.reduce_mean(fg.square(fg.add_n(out2)))
    variables = vars1 + vars2
    grads = fg.gradients(loss, [v for v in variables])
    rng = np.random.default_rng(3)
    feed = {x: rng.normal(size=(B, I)).astype(np.float32) for x in xs}
    return loss, grads, variables, feed


def _run_lstm(device1, device2):
    graph = fg.Graph()
    with graph.as_default():
        loss, grads, _, feed = _build_two_layer_lstm(device1, device2)
        with fg.Session(graph, config=OPT) as sess:
            values = sess.run([loss, grads], feed)
            plan = next(iter(sess._plans.values()))
    return values, plan


def test_lstm_layers_on_two_devices_equal_the_all_cpu_run():
    (cpu_loss, cpu_grads), _ = _run_lstm("/cpu:0", "/cpu:0")
    (mixed_loss, mixed_grads), plan = _run_lstm("/cpu:0", "/gpu:0")
    assert isinstance(plan, PlacedPlan)
    directions = {direction for _, direction in plan.transfers}
    assert directions == {"cpu->gpu", "gpu->cpu"}  # layer outputs go up, gradients down
    np.testing.assert_allclose(mixed_loss, cpu_loss, rtol=1e-5)
    for got, want in zip(mixed_grads, cpu_grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    (gpu_cpu_loss, _), _ = _run_lstm("/gpu:0", "/cpu:0")
    np.testing.assert_allclose(gpu_cpu_loss, cpu_loss, rtol=1e-5)


def _train(device, steps=3, lr=0.1):
    graph = fg.Graph()
    with graph.as_default():
        rng = np.random.default_rng(0)
        x = fg.placeholder(fg.float32, (4, 3), name="x")
        labels = fg.placeholder(fg.int32, (4,), name="labels")
        with fg.device(device):
            w = fg.Variable(rng.normal(size=(3, 5)).astype(np.float32), name="w")
            b = fg.Variable(np.zeros(5, np.float32), name="b")
            logits = fg.matmul(x, w) + b
            loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits))
            gw, gb = fg.gradients(loss, [w, b])
            train = fg.group(w.assign_sub(lr * gw), b.assign_sub(lr * gb))
        feed = {x: rng.normal(size=(4, 3)).astype(np.float32),
                labels: np.array([0, 4, 2, 2], np.int32)}
        sess = fg.Session(graph, config=OPT)
        losses = [float(sess.run([loss, train], feed)[0]) for _ in range(steps)]
        return losses, sess, (w, b)


def test_training_with_variables_resident_on_the_gpu_equals_cpu_training():
    cpu_losses, cpu_sess, cpu_vars = _train("/cpu:0")
    gpu_losses, gpu_sess, gpu_vars = _train("/gpu:0")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    assert gpu_losses[-1] < gpu_losses[0]  # it learns
    for cv, gv in zip(cpu_vars, gpu_vars):
        # Between runs the GPU variables stay on the device...
        assert cuda_runtime.is_device_array(gpu_sess._values[gv])
        assert not cuda_runtime.is_device_array(cpu_sess._values[cv])
        # ...and every host-facing path returns host arrays with the trained values.
        value = gpu_sess.variable_value(gv)
        assert isinstance(value, np.ndarray)
        np.testing.assert_allclose(value, cpu_sess.variable_value(cv), rtol=1e-5)
        fetched = gpu_sess.run(gv)
        assert isinstance(fetched, np.ndarray) and fetched.flags.writeable
        np.testing.assert_allclose(fetched, value)


def test_gpu_variables_after_load_initializer_and_reference_reads():
    with fg.device("/gpu:0"):
        v = fg.Variable(np.array([1.0, 2.0], np.float32), name="v")
        bump = v.assign_add([1.0, 1.0])
    with fg.Session(config=OPT) as sess:
        sess.run(bump)
        assert cuda_runtime.is_device_array(sess._values[v])
        sess.load(v, [5.0, 5.0])  # a host value: uploaded at next use
        sess.run(bump)
        np.testing.assert_allclose(sess.run(v), [6.0, 6.0])
        sess.run(fg.global_variables_initializer())
        np.testing.assert_allclose(sess.run(v), [1.0, 2.0])
        sess.run(bump)
    # A reference session over the same graph reads its own (host) values.
    with fg.Session(config=fg.SessionConfig(optimize=False)) as ref:
        ref.run(bump)
        np.testing.assert_allclose(ref.run(v), [2.0, 3.0])


def test_assign_then_read_value_in_one_run_on_gpu():
    with fg.device("/gpu:0"):
        v = fg.Variable(np.array([1.0, 2.0], np.float32), name="v")
        assign = v.assign([3.0, 4.0])
        with fg.control_dependencies([assign]):
            after = v.read_value() * 2.0
        before = v * 1.0
    with fg.Session() as sess:
        got_before, got_after = sess.run([before, after])
        np.testing.assert_allclose(got_before, [1.0, 2.0])
        np.testing.assert_allclose(got_after, [6.0, 8.0])
        np.testing.assert_allclose(sess.run(v), [3.0, 4.0])


def test_device_copy_of_a_variable_never_replaces_a_newer_value():
    # A run that uploads a variable keeps the device copy only if the session's value
    # did not change meanwhile (another run may have assigned it concurrently).
    v = fg.Variable(np.array([1.0], np.float32), name="v")
    w = fg.Variable(np.array([2.0], np.float32), name="w")
    sess = fg.Session()
    newer = np.array([5.0], np.float32)

    class ConcurrentlyAssigned:
        feed_tensors = []

        def run(self, feeds, state):
            state.resident[v] = (state.read_raw(v), "device copy of v")
            state.resident[w] = (state.read_raw(w), "device copy of w")
            sess._values[v] = newer  # what a concurrent run committed meanwhile
            return []

    sess._execute(ConcurrentlyAssigned(), [])
    assert sess._values[v] is newer
    assert sess._values[w] == "device copy of w"


def _train_embedding(device, steps=3):
    graph = fg.Graph()
    with graph.as_default():
        rng = np.random.default_rng(0)
        ids = fg.placeholder(fg.int32, (2, 3), name="ids")
        with fg.device(device):
            table = fg.Variable(rng.normal(size=(9, 4)).astype(np.float32), name="table")
            w = fg.Variable(rng.normal(size=(4, 2)).astype(np.float32), name="w")
            rows = fg.reshape(fg.nn.embedding_lookup(table, ids), (6, 4))
            loss = fg.reduce_sum(fg.tanh(fg.matmul(rows, w)) ** 2)
            opt = fg.train.GradientDescentOptimizer(0.2)
            grads, _ = fg.clip_by_global_norm(
                [g for g, _ in opt.compute_gradients(loss, [table, w])], 1.0)
            train = opt.apply_gradients(zip(grads, [table, w]))
        assert "SparseRowsSGD" in {op.type for op in graph.operations}
        sess = fg.Session(graph, config=OPT)
        feed = {ids: np.array([[3, 0, 3], [5, 3, 1]], np.int32)}
        losses = [float(sess.run([loss, train], feed)[0]) for _ in range(steps)]
        return losses, sess.variable_value(table), sess.variable_value(w)


def test_sparse_embedding_sgd_with_the_table_on_the_gpu_equals_cpu_training():
    """SparseRowsSGD and GatherGradSq (an embedding's clipped SGD update, rows used
    only) with the variables on the GPU: the same training as on the CPU."""
    cpu = _train_embedding("/cpu:0")
    gpu = _train_embedding("/gpu:0")
    for got, want in zip(gpu, cpu):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
