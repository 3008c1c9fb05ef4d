"""The graph IR: default graphs, names, tensor attributes, operators and static indexing."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.testing import strategies as fgst


def run(fetches, feed=None):
    with fg.Session() as sess:
        return sess.run(fetches, feed)


def test_default_graph_scopes():
    outer = fg.get_default_graph()
    g = fg.Graph()
    with g.as_default() as entered:
        assert entered is g and fg.get_default_graph() is g
        c = fg.constant(1.0)
    assert c.graph is g and fg.get_default_graph() is outer
    assert g.operations == [c.op]


def test_ops_outside_any_block_go_to_the_module_default_graph():
    # The autouse fixture holds a graph open; leave it in a fresh thread, where the
    # default-graph stack is empty.
    import threading
    seen = {}

    def body():
        fg.reset_default_graph()
        first = fg.get_default_graph()
        c = fg.constant(1.0, name="c")
        seen["same"] = c.graph is first and first.operations == [c.op]
        fg.reset_default_graph()
        seen["fresh"] = fg.get_default_graph() is not first
        seen["empty"] = fg.get_default_graph().operations == []
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == {"same": True, "fresh": True, "empty": True}
    with pytest.raises(fg.errors.FlowgraphError, match="reset_default_graph"):
        fg.reset_default_graph()  # inside the fixture's `as_default` block


def test_operations_are_in_creation_order():
    a = fg.placeholder(fg.float32, (), name="a")
    b = fg.tanh(a)
    c = b * 2.0
    ops = fg.get_default_graph().operations
    assert [op.type for op in ops] == ["Placeholder", "Tanh", "Const", "Mul"]
    assert ops[-1] is c.op and ops[1] is b.op


def test_names_are_unique_and_scoped(fresh_graph):
    a = fg.constant(1.0, name="x")
    b = fg.constant(2.0, name="x")
    c = fg.constant(3.0, name="x")
    d = fg.constant(4.0, name="x_1")  # taken already: gets another suffix
    assert [t.name for t in (a, b, c)] == ["x:0", "x_1:0", "x_2:0"]
    assert d.name not in {a.name, b.name, c.name}
    with fg.name_scope("layer"):
        e = fg.tanh(a)
        f = fg.tanh(a)
        with fg.name_scope("inner"):
            g = fg.identity(a, name="out")
    assert e.name == "layer/tanh:0" and f.name == "layer/tanh_1:0"
    assert g.name == "layer/inner/out:0"
    names = [op.name for op in fresh_graph.operations]
    assert len(names) == len(set(names))
    assert fresh_graph.get_tensor_by_name("layer/inner/out:0") is g
    assert fresh_graph.get_operation_by_name("x_1") is b.op
    with pytest.raises(KeyError):
        fresh_graph.get_tensor_by_name("x:1")
    with pytest.raises(KeyError):
        fresh_graph.get_tensor_by_name("nonsense")


def test_every_op_function_takes_a_name():
    x = fg.placeholder(fg.float32, (2, 2), name="x")
    named = {
        "sum": fg.reduce_sum(x, name="sum"), "mm": fg.matmul(x, x, name="mm"),
        "rel": fg.relu(x, name="rel"), "cl": fg.clip_by_value(x, 0.0, 1.0, name="cl"),
        "sm": fg.nn.softmax(x, name="sm"), "mean": fg.reduce_mean(x, name="mean"),
        "oh": fg.one_hot(fg.constant([0, 1]), 3, name="oh"),
        "cat": fg.concat([x, x], 0, name="cat"), "st": fg.stack([x, x], name="st"),
    }
    p = fg.placeholder(fg.float32, (2,), name="p")
    b = p > 0.0
    ids = fg.constant([0, 1])
    more = {
        "add": fg.add(p, p, name="n_add"), "sub": fg.subtract(p, p, name="n_sub"),
        "mul": fg.multiply(p, p, name="n_mul"), "div": fg.divide(p, p, name="n_div"),
        "neg": fg.negative(p, name="n_neg"), "tanh": fg.tanh(p, name="n_tanh"),
        "sig": fg.sigmoid(p, name="n_sig"), "exp": fg.exp(p, name="n_exp"),
        "log": fg.log(p, name="n_log"), "sq": fg.square(p, name="n_sq"),
        "sqrt": fg.sqrt(p, name="n_sqrt"), "abs": fg.abs(p, name="n_abs"),
        "max": fg.maximum(p, p, name="n_max"), "min": fg.minimum(p, p, name="n_min"),
        "where": fg.where(b, p, p, name="n_where"), "cast": fg.cast(p, fg.int32, name="n_cast"),
        "zl": fg.zeros_like(p, name="n_zl"), "ol": fg.ones_like(p, name="n_ol"),
        "id": fg.identity(p, name="n_id"), "stop": fg.stop_gradient(p, name="n_stop"),
        "reshape": fg.reshape(p, [2, 1], name="n_reshape"),
        "transpose": fg.transpose(x, name="n_transpose"),
        "gather": fg.gather(p, ids, name="n_gather"), "rmax": fg.reduce_max(p, name="n_rmax"),
        "lsm": fg.nn.log_softmax(x, name="n_lsm"),
        "xent": fg.nn.softmax_cross_entropy_with_logits(labels=x, logits=x, name="n_xent"),
        "sxent": fg.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=x,
                                                                name="n_sxent"),
        "emb": fg.nn.embedding_lookup(x, ids, name="n_emb"),
        "const": fg.constant(1.0, name="n_const"),
    }
    for key, t in more.items():
        assert t.op.name == "n_" + key, (key, t.op.name)
    halves = fg.split(x, 2, name="n_split")
    assert all(t.op.name == "n_split" for t in halves)
    assert fg.unstack(x, name="n_unstack")[0].op.inputs[0].op.name == "n_unstack"
    for name, t in named.items():
        assert t.op.name == name, (name, t.op.name)
    assert fg.no_op(name="nothing").name == "nothing"
    assert fg.group(x, name="grp").name == "grp"


def test_tensor_attributes():
    x = fg.placeholder("float64", (None, 3), name="x")
    with fg.device("cpu"):
        y = fg.tanh(x, name="y")
    assert (x.name, x.shape, x.dtype, x.op.type) == ("x:0", (None, 3), np.float64,
                                                     "Placeholder")
    assert y.device == "/cpu:0" and y.graph is x.graph and y.op.inputs == (x,)
    assert x.device is None and "x:0" in repr(x) and "(?, 3)" in repr(x)
    assert y.op.location.startswith("test_graph.py:")
    unknown = fg.placeholder(fg.int32, None)
    assert unknown.shape is None and unknown.ndim is None
    a, b = fg.split(fg.zeros((4, 2)), 2)
    assert (a.name, b.name) == (a.op.name + ":0", a.op.name + ":1")


@pytest.mark.parametrize("spelling", ["/cpu:0", "cpu:0", "cpu", "/device:CPU:0", "CPU",
                                      "/Device:cpu:0"])
def test_device_spellings(spelling):
    with fg.device(spelling):
        c = fg.constant(1.0)
    assert c.device == "/cpu:0"
    with fg.device("/device:GPU:1"):
        g = fg.constant(1.0)
        with fg.device(None):
            h = fg.constant(1.0)
    assert g.device == "/gpu:1" and h.device is None
    assert fg.list_devices()[0] == "/cpu:0"


def test_control_dependencies_order_side_effects():
    v = fg.Variable(0.0, name="v")
    inc = v.assign_add(1.0)
    with fg.control_dependencies([inc]):
        read = v.read_value()
        out = fg.identity(read)
    # TF1's rule: the read (no input made inside) waits for inc; the identity reads the
    # read, so it runs after inc already and gets no control edge of its own
    assert inc in read.op.control_inputs and inc not in out.op.control_inputs
    with fg.Session() as sess:
        assert sess.run(out) == 1.0
        assert sess.run(out) == 2.0


def test_control_dependencies_follow_tf1s_domination_rule():
    """TF1's Graph._control_dependencies_for_inputs: an op made in a context gets its
    control inputs unless one of its inputs was made in that context (it runs after
    them already); a control op that is also a data input is not repeated; nested
    contexts each apply; ops made outside any context are unaffected."""
    a = fg.Variable(1.0, name="a")
    x = fg.constant(2.0)
    up1, up2 = fg.assign_add(a, 1.0), fg.assign_add(a, 2.0)
    with fg.control_dependencies([up1]):
        y = x * x                       # x made outside: gets up1
        z = y + 1.0                     # y made inside: dominated
        w = fg.identity(up1)            # up1 is its input: not repeated
        with fg.control_dependencies([up2]):
            u = z * y                   # dominated for up1, not for up2
    assert list(y.op.control_inputs) == [up1.op] and not z.op.control_inputs
    assert not w.op.control_inputs and list(u.op.control_inputs) == [up2.op]
    with fg.Session() as sess:
        sess.run(fg.global_variables_initializer())
        sess.run(u)
        assert sess.run(a) == 4.0        # both updates ran


# --- operators -------------------------------------------------------------------------

@settings(max_examples=15)
@given(shapes=fgst.broadcastable_shapes(), data=st.data())
def test_operators_match_numpy(shapes, data):
    a = data.draw(fgst.arrays(np.float64, shapes[0]))
    b = data.draw(fgst.arrays(np.float64, shapes[1], 0.5, 2.0))
    with fg.Graph().as_default():
        pa, pb = fg.placeholder(fg.float64, shapes[0]), fg.placeholder(fg.float64, shapes[1])
        exprs = [pa + pb, pa - pb, pa * pb, pa / pb, -pa, abs(pa), pb ** 2, pb ** 0.5,
                 pa < pb, pa <= pb, pa > pb, pa >= pb, 2.0 - pa, 3.0 / pb, 1 + pa, a * pb,
                 pa + b]
        got = run(exprs, {pa: a, pb: b})
    want = [a + b, a - b, a * b, a / b, -a, abs(a), b ** 2, b ** 0.5, a < b, a <= b, a > b,
            a >= b, 2.0 - a, 3.0 / b, 1 + a, a * b, a + b]
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-14)


def test_matmul_operator_and_numpy_on_the_left():
    x = fg.placeholder(fg.float32, (2, 3))
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    xv = np.ones((2, 3), np.float32)
    got = run([x @ w, w.T @ fg.transpose(x), np.ones(3, np.float32) + x], {x: xv})
    np.testing.assert_allclose(got[0], xv @ w)
    np.testing.assert_allclose(got[1], w.T @ xv.T)
    np.testing.assert_allclose(got[2], xv + 1)
    assert isinstance(np.float32(2.0) * x, fg.Tensor)


def test_equality_is_identity_so_tensors_are_dict_keys():
    x = fg.placeholder(fg.float32, ())
    y = fg.placeholder(fg.float32, ())
    assert (x == x) is True and (x == y) is False
    assert {x: 1, y: 2}[x] == 1
    assert run(fg.equal(x, y), {x: 1.0, y: 1.0})


@settings(max_examples=20)
@given(x=fgst.arrays(np.float32, fgst.shapes(min_rank=1, max_rank=3)), data=st.data())
def test_static_indexing_matches_numpy(x, data):
    keys = [0, -1, slice(None), slice(1, None), slice(None, None, -1), (Ellipsis, 0),
            (None, 0), (slice(0, 1), Ellipsis)]
    if x.ndim >= 2:
        keys += [(slice(None), slice(0, 1)), (0, -1), (slice(None), None, 0),
                 (Ellipsis, slice(None, None, 2))]
    key = data.draw(st.sampled_from(keys))
    with fg.Graph().as_default():
        p = fg.placeholder(fg.float32, data.draw(fgst.static_shapes(x.shape)))
        got = run(p[key], {p: x})
    np.testing.assert_array_equal(got, x[key])


def test_indexing_with_unsupported_keys():
    x = fg.placeholder(fg.float32, (3, 3))
    with pytest.raises(TypeError):
        _ = x[1.5]
    with pytest.raises(ValueError, match="step"):
        _ = x[::0]
    with pytest.raises(ValueError, match="ellipsis"):
        _ = x[..., ...]
    assert x[1:, 0].shape == (2,) and x[None].shape == (1, 3, 3)


def test_variables_act_like_tensors():
    v = fg.Variable(np.array([1.0, 2.0]), name="w")
    assert (v.name, v.shape, v.dtype) == ("w:0", (2,), np.float64)
    got = run([v * 2.0, v + v, v[0], fg.reduce_sum(v), -v])
    np.testing.assert_array_equal(got[0], [2.0, 4.0])
    assert got[2] == 1.0 and got[3] == 3.0
    np.testing.assert_array_equal(got[4], [-1.0, -2.0])


FOUNDATION_API = """
Graph get_default_graph reset_default_graph summary float32 float64 int32 int64 bool_
constant placeholder Variable global_variables trainable_variables
global_variables_initializer add subtract multiply divide negative relu tanh sigmoid exp log
square sqrt abs maximum minimum where cast clip_by_value zeros_like ones_like identity
stop_gradient matmul reshape transpose concat split stack unstack gather one_hot reduce_sum
reduce_mean reduce_max group no_op gradients Session SessionConfig device list_devices
errors testing nn
""".split()


def test_the_foundation_api_of_api_md_exists():
    missing = [name for name in FOUNDATION_API if not hasattr(fg, name)]
    assert not missing, missing
    for name in ("softmax", "log_softmax", "softmax_cross_entropy_with_logits",
                 "sparse_softmax_cross_entropy_with_logits", "embedding_lookup"):
        assert callable(getattr(fg.nn, name)), name
    for name in ("check_gradients", "compare_devices"):
        assert callable(getattr(fg.testing, name)), name
    for name in ("FlowgraphError", "ShapeError", "DTypeError", "FeedError", "PlacementError",
                 "NumericsError", "CheckpointError"):
        assert issubclass(getattr(fg.errors, name), Exception), name
    g = fg.Graph()
    assert callable(g.to_dot) and isinstance(g.operations, list)
    assert callable(fg.Session.make_callable)
    config = fg.SessionConfig(optimize=True, allow_soft_placement=False,
                              log_device_placement=False, check_numerics=False)
    assert config.optimize


def test_importing_flowgraph_does_not_import_numba_cuda_or_hypothesis():
    import subprocess
    import sys
    code = ("import sys, flowgraph; "
            "print('numba.cuda' in sys.modules, 'hypothesis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=__file__.rsplit("/tests/", 1)[0], check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_graph_module_imports_only_the_primitive_registry(tmp_path):
    """flowgraph.graph needs neither the ops (which import the API) nor visualize: no
    import cycle api -> graph -> ops -> api. Loaded alone (the package's __init__,
    which imports everything, stubbed out) it pulls in none of them, not even when an
    op is created or drawn."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"""
import sys, types
package = types.ModuleType("flowgraph")
package.__path__ = [{os.path.join(root, "flowgraph")!r}]
sys.modules["flowgraph"] = package
import flowgraph.graph as G
from flowgraph.errors import FlowgraphError
from flowgraph.primitives import defprim
defprim("Toy", lambda op: [((2,), "float32")], None, lambda op: None, "source")
g = G.Graph()
op = g.create_op("Toy", [])
assert op.primitive.name == "Toy" and op.outputs[0].shape == (2,)
try:
    g.to_dot()
except FlowgraphError as exc:
    assert "renderer" in str(exc)
else:
    raise AssertionError("to_dot rendered without flowgraph.visualize")
print(sorted(m for m in ("flowgraph.ops", "flowgraph.api", "flowgraph.visualize")
             if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
