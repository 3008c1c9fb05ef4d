"""Unrolled recurrent networks and helpers for truncated backpropagation through time.

``static_rnn`` unrolls a cell over a Python list of time steps. For truncated BPTT,
feed the state: build placeholders shaped like the state with
``state_placeholders(cell)``, pass them as ``initial_state``, fetch ``final_state``
and feed its values into the next batch (``feed_state``).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     cell = fg.nn.GRUCell(4, seed=0)
...     xs = [fg.placeholder(fg.float32, (None, 3)) for _ in range(5)]
...     outputs, final = fg.nn.static_rnn(cell, xs, dtype=fg.float32)
...     len(outputs), final.shape
(5, (None, 4))
"""
from __future__ import annotations

from .. import api as F
from .. import dtypes
from ..array_ops import shape as dynamic_shape
from .. import shapes as S
from ..errors import ShapeError
from ..nest import flatten
from ..variable_scopes import variable_scope
from .cells import LSTMStateTuple, _state_zeros


def batch_lengths(sequence_length, like, batch_axis, what):
    """``sequence_length`` as a ``[batch, 1]`` integer column, checked as TF1 does:
    an integer vector with one length per row of ``like`` (along ``batch_axis``). A
    static mismatch is a ``ShapeError`` here; one known only at run time fails the
    ``sequence_length_matches_batch`` reshape (a ``[1]`` vector for a batch of 2 would
    otherwise broadcast, giving every row the first length). ``None`` for ``None``."""
    if sequence_length is None:
        return None
    lengths = F.convert_to_tensor(sequence_length)
    if not dtypes.is_integer(lengths.dtype) or (lengths.shape is not None
                                                 and len(lengths.shape) != 1):
        raise ShapeError(f"{what}: expected sequence_length to be an integer vector "
                         f"[batch], found {lengths.name} of dtype {lengths.dtype.name} and "
                         f"shape {S.fmt(lengths.shape)}")
    batch = None if like.shape is None else like.shape[batch_axis]
    if lengths.shape is not None and None not in (batch, lengths.shape[0]) \
            and lengths.shape[0] != batch:
        raise ShapeError(f"{what}: expected sequence_length of shape ({batch},) (the "
                         f"inputs' batch size), found {lengths.name} of shape "
                         f"{S.fmt(lengths.shape)}")
    if batch is None or lengths.shape is None or lengths.shape[0] is None:
        lengths = F.reshape(lengths, [batch if batch is not None
                                      else dynamic_shape(like)[batch_axis]],
                            name="sequence_length_matches_batch")
    return F.expand_dims(lengths, 1)                                   # [batch, 1]


def static_rnn(cell, inputs, initial_state=None, dtype=None, sequence_length=None,
               scope=None):
    """Unroll ``cell`` over ``inputs``, a list of ``[batch, input_dim]`` tensors.

    Returns ``(outputs, final_state)``: one output per time step and the state after
    the last. With no ``initial_state`` the state starts at zeros of ``dtype`` (the
    inputs' dtype by default), with the inputs' batch size, known or not.

    ``sequence_length`` (an int vector ``[batch]``), as in TF1: for row ``b``, steps
    ``t >= sequence_length[b]`` output zeros and leave the state unchanged, so
    ``final_state`` is each row's state after its own last step.
    """
    inputs = [F.convert_to_tensor(x) for x in inputs]
    if not inputs:
        raise ShapeError("static_rnn: expected a non-empty list of input tensors")
    with variable_scope(scope or "rnn"):
        if initial_state is None:
            dtype = dtypes.as_dtype(dtype) if dtype is not None else inputs[0].dtype
            state = cell.zero_state_like(inputs[0], dtype) if hasattr(
                cell, "zero_state_like") else _state_zeros(cell.state_size, None, dtype,
                                                           like=inputs[0])
        else:
            state = initial_state
        lengths = batch_lengths(sequence_length, inputs[0], 0, "static_rnn")
        outputs = []
        for t, x in enumerate(inputs):
            out, new_state = cell(x, state)
            if lengths is not None:
                live = lengths > t                                   # [batch, 1] bool
                out = F.where(live, out, F.zeros_like(out))
                new_state = _select_state(live, new_state, state)
            state = new_state
            outputs.append(out)
    return outputs, state


def _select_state(live, new, old):
    """``new`` where ``live`` else ``old``, through nested state tuples."""
    if isinstance(new, LSTMStateTuple):
        return LSTMStateTuple(*(_select_state(live, n, o) for n, o in zip(new, old)))
    if isinstance(new, tuple):
        return tuple(_select_state(live, n, o) for n, o in zip(new, old))
    return F.where(live, new, old)


def state_placeholders(cell, batch_size=None, dtype=dtypes.float32, name="state"):
    """Placeholders with the structure of ``cell.state_size`` (``LSTMStateTuple``s and
    tuples of layers), each ``[batch_size, units]``; feed them with ``feed_state``.
    """
    counter = iter(range(10**9))

    def make(size):
        if isinstance(size, LSTMStateTuple):
            return LSTMStateTuple(*(make(s) for s in size))
        if isinstance(size, tuple):
            return tuple(make(s) for s in size)
        return F.placeholder(dtype, (batch_size, size), name=f"{name}_{next(counter)}")

    return make(cell.state_size)


def flatten_state(state):
    """The tensors (or arrays) of a nested state, in a fixed order."""
    return flatten(state, is_leaf=lambda x: hasattr(x, "shape") and not isinstance(
        x, tuple))[0]


def feed_state(placeholders, values, feed_dict=None):
    """``feed_dict`` extended with ``placeholders -> values`` (two states of one
    structure, e.g. the fetched final state of the previous batch).
    """
    feed = dict(feed_dict or {})
    flat_p, flat_v = flatten_state(placeholders), flatten_state(values)
    if len(flat_p) != len(flat_v):
        raise ShapeError(f"feed_state: the state has {len(flat_p)} tensors but "
                         f"{len(flat_v)} values were given")
    feed.update(zip(flat_p, flat_v))
    return feed


__all__ = ["static_rnn", "state_placeholders", "flatten_state", "feed_state"]
