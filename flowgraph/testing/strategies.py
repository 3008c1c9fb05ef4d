"""Hypothesis strategies for property tests of flowgraph programs.

Three families:

* :func:`shapes`, :func:`broadcastable_shapes`, :func:`static_shapes`: concrete shapes,
  pairs (or tuples) of shapes that broadcast together, and static shapes with unknown
  (``None``) dimensions that accept a concrete shape.
* :func:`arrays`: NumPy arrays of a dtype and shape with bounded, finite elements.
* :func:`graphs`: random well-formed graphs of differentiable ops together with their
  feeds, as a :class:`GraphRecipe`. ``recipe.build()`` creates the placeholders and ops
  in the current default graph and returns ``(output, placeholders, feed_dict)``;
  ``recipe.evaluate_numpy()`` computes the same output with plain NumPy.

Values are kept in safe domains (``exp`` only sees bounded values, ``log``, ``sqrt`` and
divisors only see expressions bounded away from zero, no kinks such as ``relu`` or
``maximum``), so central finite differences are well conditioned and a gradient check
on a drawn graph fails only when a gradient is wrong.

This module needs Hypothesis (``pip install flowgraph[test]``); ``import flowgraph`` does
not import it.

>>> import flowgraph as fg
>>> from hypothesis import given, settings
>>> from flowgraph.testing import strategies as fgst
>>> @settings(max_examples=5, deadline=None, derandomize=True)
... @given(fgst.graphs(max_ops=4))
... def test_gradients_match_finite_differences(recipe):
...     with fg.Graph().as_default():
...         out, placeholders, feed = recipe.build()
...         fg.testing.check_gradients(out, placeholders, feed)
>>> test_gradients_match_finite_differences()
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["shapes", "broadcastable_shapes", "static_shapes", "arrays", "graphs",
           "GraphRecipe", "Step", "RECIPE_OPS"]


# ---------------------------------------------------------------------------------------
# shapes


def shapes(min_rank=0, max_rank=3, min_side=1, max_side=4):
    """Concrete shapes (tuples of ints).

    >>> from hypothesis import find
    >>> find(shapes(min_rank=2, max_rank=2), lambda s: True)
    (1, 1)
    """
    return hnp.array_shapes(min_dims=min_rank, max_dims=max_rank, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes=2, min_rank=0, max_rank=3, min_side=1, max_side=4):
    """Tuples of ``num_shapes`` shapes that broadcast together (NumPy rules), with
    size-1 and missing leading dimensions mixed in.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, derandomize=True)
    ... @given(broadcastable_shapes(num_shapes=3))
    ... def test_they_broadcast(shapes):
    ...     assert len(shapes) == 3
    ...     np.broadcast_shapes(*shapes)
    >>> test_they_broadcast()
    """
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_rank, max_dims=max_rank, min_side=min_side,
        max_side=max_side).map(lambda bs: tuple(bs.input_shapes))


@st.composite
def static_shapes(draw, shape, unknown=True):
    """A static placeholder shape that accepts the concrete ``shape``: each dimension
    is either kept or replaced by ``None`` (unknown), and occasionally the whole rank
    is unknown (``None``). With ``unknown=False`` the shape itself.

    >>> from hypothesis import find
    >>> find(static_shapes((2, 3)), lambda s: s is not None and s[0] is None)
    (None, 3)
    """
    if not unknown:
        return tuple(shape)
    if draw(st.integers(0, 9)) == 0:
        return None
    return tuple(None if draw(st.booleans()) else d for d in shape)


# ---------------------------------------------------------------------------------------
# arrays


def arrays(dtype=np.float64, shape=None, min_value=-2.0, max_value=2.0, unique=False):
    """Arrays of ``dtype`` with finite elements in ``[min_value, max_value]``.

    ``shape`` is a tuple or a strategy of tuples (default :func:`shapes`). Integer
    dtypes draw integers in the same range; ``bool`` draws booleans.

    >>> from hypothesis import find
    >>> a = find(arrays(np.float32, (2, 3)), lambda a: (a > 1).any())
    >>> a.dtype, a.shape, bool(np.isfinite(a).all())
    (dtype('float32'), (2, 3), True)
    """
    dtype = np.dtype(dtype)
    if shape is None:
        shape = shapes()
    if dtype.kind == "f":
        width = 32 if dtype == np.float32 else 64
        if width == 32:  # bounds must be float32 numbers: round them inwards
            lo, hi = np.float32(min_value), np.float32(max_value)
            if lo < min_value:
                lo = np.nextafter(lo, np.float32(np.inf))
            if hi > max_value:
                hi = np.nextafter(hi, np.float32(-np.inf))
            min_value, max_value = float(lo), float(hi)
        elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False,
                             width=width)
    elif dtype.kind in "iu":
        elements = st.integers(int(np.ceil(min_value)), int(np.floor(max_value)))
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        raise ValueError(f"arrays: expected a float, integer or bool dtype, found {dtype}")
    return hnp.arrays(dtype, shape, elements=elements, unique=unique)


# ---------------------------------------------------------------------------------------
# random graphs


@dataclass(frozen=True)
class Step:
    """One node of a :class:`GraphRecipe`: ``op`` (a key of :data:`RECIPE_OPS`) applied
    to earlier nodes ``args`` with static parameters ``params``.
    """

    op: str
    args: tuple
    params: tuple = ()


def _softmax_np(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _fg():
    import flowgraph as fg
    return fg


def _index(params):
    """The static index tuple of a "slice" step."""
    axis, start, stop, as_index = params
    if as_index:
        return (slice(None),) * axis + (start,)
    return (slice(None),) * axis + (slice(start, stop),)


# op -> (flowgraph builder, NumPy reference), both f(args, params).
RECIPE_OPS = {
    "tanh": (lambda a, p: _fg().tanh(a[0]), lambda a, p: np.tanh(a[0])),
    "sigmoid": (lambda a, p: _fg().sigmoid(a[0]), lambda a, p: 1 / (1 + np.exp(-a[0]))),
    "exp": (lambda a, p: _fg().exp(a[0]), lambda a, p: np.exp(a[0])),
    "square": (lambda a, p: _fg().square(a[0]), lambda a, p: np.square(a[0])),
    "negative": (lambda a, p: -a[0], lambda a, p: -a[0]),
    "cube": (lambda a, p: a[0] ** 3, lambda a, p: a[0] ** 3),
    # log, sqrt and divide see `square(x) + c` with c >= 0.5, bounded away from zero
    "log_pos": (lambda a, p: _fg().log(_fg().square(a[0]) + p[0]),
                lambda a, p: np.log(np.square(a[0]) + p[0])),
    "sqrt_pos": (lambda a, p: _fg().sqrt(_fg().square(a[0]) + p[0]),
                 lambda a, p: np.sqrt(np.square(a[0]) + p[0])),
    "add": (lambda a, p: a[0] + a[1], lambda a, p: a[0] + a[1]),
    "subtract": (lambda a, p: _fg().subtract(a[0], a[1]), lambda a, p: a[0] - a[1]),
    "multiply": (lambda a, p: a[0] * a[1], lambda a, p: a[0] * a[1]),
    "divide_pos": (lambda a, p: a[0] / (_fg().square(a[1]) + p[0]),
                   lambda a, p: a[0] / (np.square(a[1]) + p[0])),
    "scale": (lambda a, p: a[0] * p[0] + p[1], lambda a, p: a[0] * p[0] + p[1]),
    "matmul": (lambda a, p: _fg().matmul(a[0], a[1], transpose_b=p[0]),
               lambda a, p: a[0] @ (np.swapaxes(a[1], -1, -2) if p[0] else a[1])),
    "transpose": (lambda a, p: _fg().transpose(a[0], p), lambda a, p: np.transpose(a[0], p)),
    "reduce_sum": (lambda a, p: _fg().reduce_sum(a[0], p[0], keepdims=p[1]),
                   lambda a, p: np.sum(a[0], axis=p[0], keepdims=p[1])),
    "reduce_mean": (lambda a, p: _fg().reduce_mean(a[0], p[0], keepdims=p[1]),
                    lambda a, p: np.mean(a[0], axis=p[0], keepdims=p[1])),
    "softmax": (lambda a, p: _fg().nn.softmax(a[0], p[0]),
                lambda a, p: _softmax_np(a[0], p[0])),
    "log_softmax": (lambda a, p: _fg().nn.log_softmax(a[0], p[0]),
                    lambda a, p: np.log(_softmax_np(a[0], p[0]))),
    "concat": (lambda a, p: _fg().concat(list(a), p[0]),
               lambda a, p: np.concatenate(a, axis=p[0])),
    "slice": (lambda a, p: a[0][_index(p)], lambda a, p: a[0][_index(p)]),
}


@dataclass
class GraphRecipe:
    """A random graph as data: input shapes and values, and the steps that combine them.

    Node ``i < len(inputs)`` is placeholder ``i``; node ``len(inputs) + j`` is
    ``steps[j]``; the last node is the output. ``static_shapes[i]`` is placeholder
    ``i``'s declared shape (``None`` entries are unknown dimensions).
    """

    inputs: list            # concrete input arrays
    static_shapes: list     # declared placeholder shapes
    steps: list = field(default_factory=list)
    dtype: np.dtype = np.dtype(np.float64)

    def build(self):
        """Create the placeholders and ops in the current default graph.

        Returns ``(output, placeholders, feed_dict)``.
        """
        fg = _fg()
        placeholders = [fg.placeholder(self.dtype, shape, name=f"input{i}")
                        for i, shape in enumerate(self.static_shapes)]
        nodes = list(placeholders)
        for step in self.steps:
            builder, _ = RECIPE_OPS[step.op]
            nodes.append(builder([nodes[i] for i in step.args], step.params))
        feed = {p: v for p, v in zip(placeholders, self.inputs)}
        return nodes[-1], placeholders, feed

    def evaluate_numpy(self, inputs=None):
        """The output computed with NumPy alone (the expected value of ``build()``'s
        output under its feed, or under other ``inputs`` of the same shapes).
        """
        nodes = [np.asarray(v, self.dtype) for v in (inputs or self.inputs)]
        with np.errstate(all="ignore"):
            for step in self.steps:
                _, ref = RECIPE_OPS[step.op]
                nodes.append(np.asarray(ref([nodes[i] for i in step.args], step.params),
                                        dtype=self.dtype))
        return nodes[-1]

    def __repr__(self):
        n = len(self.inputs)
        lines = [f"GraphRecipe({self.dtype.name})"]
        lines += [f"  n{i} = input{i} shape={v.shape} static={s}"
                  for i, (v, s) in enumerate(zip(self.inputs, self.static_shapes))]
        lines += [f"  n{n + j} = {s.op}({', '.join(f'n{a}' for a in s.args)}"
                  f"{', ' if s.params else ''}{', '.join(map(repr, s.params))})"
                  for j, s in enumerate(self.steps)]
        return "\n".join(lines)


@dataclass
class _Node:
    shape: tuple
    bound: float  # |value| <= bound


class _Builder:
    """Draw-time state of a recipe: node shapes and magnitude bounds."""

    def __init__(self, draw, recipe, max_bound=4.0):
        self.draw = draw
        self.recipe = recipe
        self.nodes = [_Node(v.shape, float(np.max(np.abs(v), initial=0.0)))
                      for v in recipe.inputs]
        self.max_bound = max_bound

    def add(self, op, args, params, shape, bound):
        self.recipe.steps.append(Step(op, tuple(args), tuple(params)))
        self.nodes.append(_Node(tuple(shape), float(bound)))
        return len(self.nodes) - 1

    def pick(self, where=lambda node: True):
        """A node index, biased towards recent nodes so graphs get deep."""
        candidates = [i for i, n in enumerate(self.nodes) if where(n)]
        if not candidates:
            return None
        if self.draw(st.booleans()):
            return candidates[-1]
        return self.draw(st.sampled_from(candidates))

    def tame(self, i, limit=None):
        """Node ``i``, squashed with tanh if its values may exceed ``limit``."""
        if self.nodes[i].bound <= (limit or self.max_bound):
            return i
        return self.add("tanh", [i], (), self.nodes[i].shape, 1.0)


def _broadcast(a, b):
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        return None


_UNARY = ("tanh", "sigmoid", "exp", "square", "negative", "cube", "log_pos", "sqrt_pos",
          "scale")
_BINARY = ("add", "subtract", "multiply", "divide_pos")
_STRUCTURAL = ("matmul", "transpose", "reduce_sum", "reduce_mean", "softmax", "log_softmax",
               "concat", "slice")


def _draw_step(b: _Builder, op):
    draw = b.draw
    if op in _UNARY:
        i = b.pick()
        n = b.nodes[i]
        if op == "tanh":
            return b.add(op, [i], (), n.shape, 1.0)
        if op == "sigmoid":
            return b.add(op, [i], (), n.shape, 1.0)
        if op == "exp":
            i = b.tame(i, 2.0)
            return b.add(op, [i], (), b.nodes[i].shape, np.exp(b.nodes[i].bound))
        if op in ("square", "cube"):
            i = b.tame(i, 2.0)
            power = 2 if op == "square" else 3
            return b.add(op, [i], (), b.nodes[i].shape, b.nodes[i].bound ** power)
        if op == "negative":
            return b.add(op, [i], (), n.shape, n.bound)
        if op in ("log_pos", "sqrt_pos"):
            i = b.tame(i, 2.0)
            c = draw(st.sampled_from([0.5, 1.0, 1.5]))
            top = b.nodes[i].bound ** 2 + c
            bound = max(abs(np.log(c)), np.log(top)) if op == "log_pos" else np.sqrt(top)
            return b.add(op, [i], (c,), b.nodes[i].shape, bound)
        scale = draw(st.sampled_from([-1.5, -0.5, 0.5, 2.0]))
        shift = draw(st.sampled_from([-1.0, 0.0, 0.25]))
        return b.add(op, [i], (scale, shift), n.shape, abs(scale) * n.bound + abs(shift))

    if op in _BINARY:
        i = b.tame(b.pick())
        j = b.pick(lambda m: _broadcast(m.shape, b.nodes[i].shape) is not None)
        j = b.tame(j)
        shape = _broadcast(b.nodes[i].shape, b.nodes[j].shape)
        x, y = b.nodes[i].bound, b.nodes[j].bound
        if op == "divide_pos":
            c = draw(st.sampled_from([0.5, 1.0]))
            return b.add(op, [i, j], (c,), shape, x / c)
        bound = x * y if op == "multiply" else x + y
        if draw(st.booleans()):
            i, j = j, i
        return b.add(op, [i, j], (), shape, bound)

    if op == "matmul":
        i = b.pick(lambda m: len(m.shape) == 2)
        if i is None:
            return None
        i = b.tame(i, 2.0)
        rows, inner = b.nodes[i].shape
        transpose_b = draw(st.booleans())
        want = (lambda m: m.shape[1] == inner) if transpose_b else \
            (lambda m: m.shape[0] == inner)
        j = b.pick(lambda m: len(m.shape) == 2 and want(m))
        if j is None:  # no partner: x @ x.T always fits
            j, transpose_b = i, True
        j = b.tame(j, 2.0)
        cols = b.nodes[j].shape[0] if transpose_b else b.nodes[j].shape[1]
        return b.add(op, [i, j], (transpose_b,), (rows, cols),
                     inner * b.nodes[i].bound * b.nodes[j].bound)

    i = b.pick(lambda m: len(m.shape) >= 1)
    if i is None:
        return None
    n = b.nodes[i]
    rank = len(n.shape)
    if op == "transpose":
        perm = tuple(draw(st.permutations(range(rank))))
        return b.add(op, [i], perm, tuple(n.shape[k] for k in perm), n.bound)
    if op in ("reduce_sum", "reduce_mean"):
        axis = draw(st.sampled_from([None] + list(range(-rank, rank))))
        keepdims = draw(st.booleans())
        axes = range(rank) if axis is None else [axis % rank]
        shape = tuple(1 if k in axes else d for k, d in enumerate(n.shape)) if keepdims \
            else tuple(d for k, d in enumerate(n.shape) if k not in axes)
        count = int(np.prod([n.shape[k] for k in axes]))
        bound = n.bound * count if op == "reduce_sum" else n.bound
        return b.add(op, [i], (axis, keepdims), shape, bound)
    if op in ("softmax", "log_softmax"):
        i = b.tame(i)
        axis = draw(st.integers(-rank, rank - 1))
        size = n.shape[axis]
        bound = 1.0 if op == "softmax" else 2 * b.nodes[i].bound + np.log(size)
        return b.add(op, [i], (axis,), n.shape, bound)
    if op == "concat":
        axis = draw(st.integers(0, rank - 1))
        same = lambda m: len(m.shape) == rank and all(  # noqa: E731
            d == e for k, (d, e) in enumerate(zip(m.shape, n.shape)) if k != axis)
        j = b.pick(same)
        shape = list(n.shape)
        shape[axis] += b.nodes[j].shape[axis]
        return b.add(op, [i, j], (axis,), shape, max(n.bound, b.nodes[j].bound))
    # slice: a range (or a single index) along one axis
    axis = draw(st.integers(0, rank - 1))
    size = n.shape[axis]
    start = draw(st.integers(0, size - 1))
    if draw(st.integers(0, 3)) == 0:
        return b.add(op, [i], (axis, start, None, True),
                     n.shape[:axis] + n.shape[axis + 1:], n.bound)
    stop = draw(st.integers(start + 1, size))
    shape = n.shape[:axis] + (stop - start,) + n.shape[axis + 1:]
    return b.add(op, [i], (axis, start, stop, False), shape, n.bound)


@st.composite
def graphs(draw, max_inputs=3, max_ops=6, max_side=3, dtype=np.float64, unknown_dims=False,
           ops=None, min_ops=1):
    """Random well-formed graphs of differentiable ops, as :class:`GraphRecipe`.

    Inputs are broadcast-compatible variants of one base shape (full, size-1 and
    dropped dimensions), with values in [-2, 2]; ``min_ops`` to ``max_ops`` steps of
    ``ops`` (default: every key of :data:`RECIPE_OPS`) combine them (when none of
    ``ops`` applies to the nodes drawn so far, tanh steps make up ``min_ops``). ``unknown_dims=True`` declares some
    placeholder dimensions (or ranks) as unknown. Magnitudes are tracked while drawing:
    an operand that might be large is squashed with tanh first, so values stay in
    [-1e3, 1e3] and derivatives stay well conditioned.

    >>> import flowgraph as fg
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, derandomize=True, deadline=None)
    ... @given(graphs(ops=["matmul", "softmax", "add", "exp"], unknown_dims=True))
    ... def test_forward_matches_numpy(recipe):
    ...     with fg.Graph().as_default():
    ...         out, placeholders, feed = recipe.build()
    ...         got = fg.Session().run(out, feed)
    ...     np.testing.assert_allclose(got, recipe.evaluate_numpy(), rtol=1e-12)
    >>> test_forward_matches_numpy()
    """
    dtype = np.dtype(dtype)
    allowed = tuple(ops) if ops is not None else tuple(RECIPE_OPS)
    unknown = [op for op in allowed if op not in RECIPE_OPS]
    if unknown:
        raise ValueError(f"graphs: unknown ops {unknown}; expected keys of RECIPE_OPS")
    rank = draw(st.integers(1, 3))
    base = tuple(draw(st.lists(st.integers(1, max_side), min_size=rank, max_size=rank)))
    inputs, statics = [], []
    for k in range(draw(st.integers(1, max_inputs))):
        if k == 0:
            shape = base
        else:  # a broadcast variant: leading dims dropped, some dims set to 1
            keep = draw(st.integers(0, rank))
            shape = tuple(1 if draw(st.integers(0, 3)) == 0 else d
                          for d in base[rank - keep:])
        inputs.append(draw(arrays(dtype, shape)))
        statics.append(draw(static_shapes(shape, unknown=unknown_dims)))
    recipe = GraphRecipe(inputs, statics, dtype=dtype)
    builder = _Builder(draw, recipe)
    target = draw(st.integers(min_ops, max(min_ops, max_ops)))
    for _ in range(3 * target + 3):  # a drawn op may not apply (matmul needs rank 2)
        if len(recipe.steps) >= target:
            break
        _draw_step(builder, draw(st.sampled_from(allowed)))
    while len(recipe.steps) < max(min_ops, 1):  # nothing applied: pad with tanh
        builder.add("tanh", [len(builder.nodes) - 1], (), builder.nodes[-1].shape, 1.0)
    return recipe
