"""Graph.to_dot() and fg.summary() content."""
import re

import numpy as np

import flowgraph as fg


def _model():
    x = fg.placeholder(fg.float32, (None, 3), name="x")
    w = fg.Variable(np.ones((3, 2), np.float32), name="w")
    with fg.device("/gpu:0"):
        y = fg.tanh(fg.matmul(x, w, name="mm"), name="y")
    a, b = fg.split(fg.zeros((4, 2), name="z"), 2, name="halves")
    s = fg.add(a, b, name="s")
    with fg.control_dependencies([y]):
        after = fg.no_op(name="after")
    return x, w, y, s, after


def test_to_dot_lists_ops_types_shapes_devices_and_edges(fresh_graph):
    x, w, y, s, after = _model()
    dot = fresh_graph.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    nodes = dict(re.findall(r'^\s*(n\d+) \[label="([^"]*)"', dot, re.M))
    labels = {label.split("\\n")[0]: (node, label) for node, label in nodes.items()}
    assert set(labels) == {op.name for op in fresh_graph.operations}
    node_x, label_x = labels["x"]
    assert "Placeholder" in label_x and "(?, 3) float32" in label_x and "/cpu:0" in label_x
    node_mm, label_mm = labels["mm"]
    assert "MatMul" in label_mm and "(?, 2)" in label_mm and "/gpu:0" in label_mm
    assert f"{node_x} -> {node_mm};" in dot and f"{labels['w'][0]} -> {node_mm};" in dot
    # a multi-output op's edges say which output
    assert f'{labels["halves"][0]} -> {labels["s"][0]} [label="0"];' in dot
    assert f'{labels["halves"][0]} -> {labels["s"][0]} [label="1"];' in dot
    # control edges are dashed
    assert f"{labels['y'][0]} -> {labels['after'][0]} [style=dashed];" in dot
    # one colour per device, the same for every op on it
    colour = dict(re.findall(r'^\s*(n\d+) \[.*fillcolor="([^"]+)"', dot, re.M))
    cpu = {colour[labels[n][0]] for n in ("x", "w", "z", "halves", "s")}
    gpu = {colour[labels[n][0]] for n in ("mm", "y")}
    assert len(cpu) == 1 and len(gpu) == 1 and cpu != gpu
    assert 'label="/cpu:0"' in dot and 'label="/gpu:0"' in dot


def test_to_dot_escapes_quotes():
    g = fg.Graph()
    with g.as_default():
        fg.constant(1.0, name='say"hi"')
    assert 'say\\"hi\\"' in g.to_dot()


def _rows(text):
    lines = text.splitlines()
    return {line.split()[0]: line.split() for line in lines[2:-2]}, lines


def test_summary_of_fetches_lists_only_the_needed_ops():
    x, w, y, s, after = _model()
    text = fg.summary(y)
    rows, lines = _rows(text)
    assert lines[0].split() == ["Op", "Type", "Output", "shape", "Dtype", "Device", "FLOPs"]
    assert set(rows) == {"x", "w", "mm", "y"}
    assert rows["mm"][:2] == ["mm", "MatMul"] and "/gpu:0" in rows["mm"]
    assert rows["x"][-1] == "0" and rows["mm"][-1] == "?"  # unknown batch: FLOPs unknown
    assert lines[-1] == "Ops: 4   FLOPs: 0 + unknown"


def test_summary_counts_flops_and_takes_a_graph(fresh_graph):
    a = fg.constant(np.ones((2, 3), np.float32), name="a")
    b = fg.constant(np.ones((3, 4), np.float32), name="b")
    y = fg.tanh(fg.matmul(a, b, name="mm"), name="t")
    r = fg.reduce_sum(y, name="total")
    rows, lines = _rows(fg.summary({"out": [r]}))
    assert rows["mm"][-1] == "48"          # 2 * (2 * 4) * 3
    assert rows["t"][-1] == "8"            # one per element
    assert rows["total"][-1] == "8"        # one per input element
    assert lines[-1] == f"Ops: 5   FLOPs: {48 + 8 + 8}"
    fg.split(fg.zeros((4, 2), name="z"), 2, name="halves")
    all_rows, _ = _rows(fg.summary(fresh_graph))
    assert set(all_rows) == {op.name for op in fresh_graph.operations}
    text = fg.summary(fresh_graph)
    assert "(2, 2), (2, 2)" in text
