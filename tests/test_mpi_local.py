"""flowgraph.distributed in one process (world size 1): the same API must work
unchanged without mpiexec, and errors must be clear."""
import numpy as np
import pytest

import flowgraph as fg
import flowgraph.distributed as fgd
from flowgraph.distributed import comm
from flowgraph.distributed.partition import PartitionPlan


class SGD:
    def __init__(self, lr):
        self.lr = lr
        self.seen = None

    def compute_gradients(self, loss, var_list=None):
        var_list = list(var_list or fg.trainable_variables())
        return list(zip(fg.gradients(loss, var_list), var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        self.seen = list(grads_and_vars)
        self.global_step = global_step
        return fg.group(*[v.assign_sub(self.lr * g) for g, v in grads_and_vars])


def test_world_is_one_process_without_a_launcher(monkeypatch):
    for name in comm._LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWGRAPH_MPI", "0")
    assert not comm.launched_by_mpi()
    world = comm.init()
    assert (world.rank, world.size, world.mpi_comm) == (0, 1, None)
    assert (fgd.rank(), fgd.size()) == (0, 1)
    monkeypatch.setenv("FLOWGRAPH_MPI", "")
    monkeypatch.setenv("PMI_SIZE", "2")
    assert comm.launched_by_mpi()


def test_allreduce_mean_of_one_process_is_identity_with_gradient():
    x = fg.placeholder(fg.float64, (2, 3))
    y = fg.placeholder(fg.float32, (4,))
    mx, my = fgd.allreduce_mean([x, y])
    assert (mx.shape, mx.dtype, my.shape, my.dtype) == ((2, 3), x.dtype, (4,), y.dtype)
    assert mx.op is my.op and mx.op.type == "AllReduceMean"  # one fused op
    loss = fg.reduce_sum(fg.square(mx)) + fg.reduce_sum(fg.cast(my, fg.float64))
    gx, gy = fg.gradients(loss, [x, y])
    xv, yv = np.arange(6.0).reshape(2, 3), np.ones(4, np.float32)
    out = fg.Session().run([mx, my, gx, gy], {x: xv, y: yv})
    np.testing.assert_array_equal(out[0], xv)
    np.testing.assert_array_equal(out[1], yv)
    np.testing.assert_allclose(out[2], 2 * xv)
    np.testing.assert_allclose(out[3], np.ones(4))
    fg.testing.check_gradients(fg.reduce_sum(fg.tanh(mx)), [x], {x: xv, y: yv})


def test_allreduce_mean_rejects_integer_tensors():
    with pytest.raises(fg.errors.DTypeError, match="AllReduceMean.*found int32"):
        fgd.allreduce_mean([fg.constant([1, 2])])


def test_distributed_optimizer_in_one_process_is_the_wrapped_optimizer():
    w = fg.Variable(np.array([1.0, -2.0]))
    b = fg.Variable(0.5, dtype=fg.float64)
    loss = fg.reduce_sum(fg.square(w)) + b * 0.0
    inner = SGD(0.25)
    opt = fgd.DistributedOptimizer(inner)
    assert opt.lr == 0.25  # attributes delegate to the wrapped optimizer
    train = opt.minimize(loss)
    assert not any(op.type == "AllReduceMean" for op in fg.get_default_graph().operations)
    assert [v for _, v in inner.seen] == [w, b]
    with fg.Session() as sess:
        sess.run(train)
        np.testing.assert_allclose(sess.run(w), [0.5, -1.0])
    assert len(fg.get_default_graph().get_collection("session_start_hooks")) == 1
    other = SGD(0.1)
    step = fg.Variable(0, name="global_step", trainable=False)
    fgd.DistributedOptimizer(other).minimize(loss, step)  # TF1 order: global_step second
    assert other.global_step is step
    # the broadcast hook is registered once per graph
    assert len(fg.get_default_graph().get_collection("session_start_hooks")) == 1


def test_distributed_optimizer_needs_an_optimizer():
    with pytest.raises(TypeError, match="apply_gradients"):
        fgd.DistributedOptimizer(object())


def test_shard_batches_and_datasets():
    x, y = np.arange(12).reshape(6, 2), np.arange(6)
    xs, ys = fgd.shard((x, y), rank=2, size=3)
    np.testing.assert_array_equal(xs, x[4:6])
    np.testing.assert_array_equal(ys, y[4:6])
    parts = fgd.shard({"x": x, "y": y}, rank=0, size=2)
    np.testing.assert_array_equal(parts["y"], [0, 1, 2])
    np.testing.assert_array_equal(fgd.shard([1, 2, 3, 4], rank=1, size=2), [3, 4])
    np.testing.assert_array_equal(fgd.shard(x), x)  # one process: everything
    assert list(fgd.shard(iter(range(7)), rank=1, size=3)) == [1, 4]
    uneven = [fgd.shard(np.arange(5), r, 2, allow_uneven=True) for r in (0, 1)]
    assert [list(u) for u in uneven] == [[0, 1, 2], [3, 4]]
    with pytest.raises(ValueError, match="divides evenly.*found 5"):
        fgd.shard(np.arange(5), rank=0, size=2)
    with pytest.raises(ValueError, match="common first dimension"):
        fgd.shard((np.zeros(3), np.zeros(4)), rank=0, size=1)
    with pytest.raises(ValueError, match="rank=2, size=2"):
        fgd.shard(np.zeros(4), rank=2, size=2)


def test_broadcast_variables_in_one_process_keeps_values():
    v = fg.Variable([1.0, 2.0])
    sess = fg.Session()
    sess.load(v, [3.0, 4.0])
    fgd.broadcast_variables(sess)
    np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])


def _two_task_graph():
    x = fg.placeholder(fg.float64, (3,), name="x")
    with fg.device("/job:worker/task:0/cpu:0"):
        a = fg.tanh(x) * 2.0
    with fg.device("/job:worker/task:1/cpu:0"):
        v = fg.Variable(np.ones(3), name="v")
        b = fg.reduce_sum(a * v)
    return x, a, v, b


def test_remote_task_in_one_process_is_a_clear_placement_error():
    x, _, _, b = _two_task_graph()
    sess = fg.Session()
    with pytest.raises(fg.errors.PlacementError,
                       match=r"task:1/cpu:0', task 1, but the job has 1 process;"):
        sess.run(b, {x: np.zeros(3)})
    # the session stays usable for what lives on task 0
    assert sess.run(fg.reduce_sum(x), {x: np.ones(3)}) == 3.0


def test_remote_tasks_with_soft_placement_run_in_one_process_like_no_placement():
    x, a, v, b = _two_task_graph()
    gv, = fg.gradients(b, [v])
    train = v.assign_sub(0.5 * gv)
    xv = np.array([0.1, -0.2, 0.3])
    sess = fg.Session(config=fg.SessionConfig(allow_soft_placement=True))
    out = sess.run([b, gv], {x: xv})
    np.testing.assert_allclose(out[0], np.sum(np.tanh(xv) * 2.0))
    np.testing.assert_allclose(out[1], np.tanh(xv) * 2.0)
    sess.run(train, {x: xv})
    np.testing.assert_allclose(sess.run(v), 1.0 - np.tanh(xv))
    plan = next(p for p in sess._plans.values() if isinstance(p, PartitionPlan))
    assert not plan.edges  # everything ran here, nothing to send
    with pytest.raises(fg.errors.FeedError, match="x:0"):  # checked before any message
        sess.run(b)


def test_partition_plan_of_each_rank_agrees_on_edges_and_tags(monkeypatch):
    x, a, v, b = _two_task_graph()
    gv, = fg.gradients(b, [v])
    plans = []
    for r in (0, 1):  # building a plan sends nothing, so a pretend world will do
        world = comm.World(None)
        world.rank, world.size = r, 2
        monkeypatch.setattr(comm, "_world", world)
        plans.append(PartitionPlan(fg.get_default_graph(), [b, gv], [], [x],
                                   fg.SessionConfig()))
    assert plans[0].edges == [(a, 1)] == plans[1].edges  # a is used by b and by gv
    assert [op.type for op in plans[0].local_ops] == ["Tanh", "Const", "Mul"]
    assert {op for op in plans[1].local_ops} == set(plans[1].task) - set(plans[0].local_ops)
    assert plans[0].sends == {a.op: [(a, 1, 0)]} and plans[0].recvs == {}
    consumer, = plans[1].recvs  # received once, before its first consumer
    assert plans[1].recvs[consumer] == [(a, 0, 0)] and plans[1].sends == {}
    assert plans[0].fetch_owner == [1, 1]


def test_collectives_and_task_placement_do_not_mix_in_one_run():
    x, a, v, b = _two_task_graph()
    mean, = fgd.allreduce_mean([b])
    sess = fg.Session(config=fg.SessionConfig(allow_soft_placement=True))
    with pytest.raises(fg.errors.PlacementError, match="AllReduceMean.*a collective"):
        sess.run(mean, {x: np.zeros(3)})
