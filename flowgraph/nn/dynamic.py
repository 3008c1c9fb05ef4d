"""Recurrent networks as one symbolic loop (``dynamic_rnn``), and the unrolled
bidirectional form (``static_bidirectional_rnn``).

``dynamic_rnn`` runs the cell in a ``While`` loop over the time axis
(:mod:`flowgraph.control_flow`): the graph does not grow with the sequence length and a
new length needs no new plan. With ``sequence_length``, as in TF1, row ``b``'s outputs
at steps ``t >= sequence_length[b]`` are zeros and its state is carried through, so the
final state is each row's state after its own last step. The backward direction of a
bidirectional network is the same loop run from the last step to the first, which
equals TF1's reverse-the-valid-part-of-each-row formulation.

>>> import numpy as np
>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     cell = fg.nn.GRUCell(4, seed=0)
...     x = fg.placeholder(fg.float32, (None, None, 3))          # [batch, time, features]
...     outputs, state = fg.nn.dynamic_rnn(cell, x, dtype=fg.float32)
...     with fg.Session() as sess:
...         for T in (5, 50):                                  # one plan for every T
...             out = sess.run(outputs, {x: np.ones((2, T, 3), np.float32)})
...             print(out.shape)
(2, 5, 4)
(2, 50, 4)
"""
from __future__ import annotations

from .. import api as F
from .. import dtypes
from ..control_flow import _loop
from ..errors import ShapeError
from ..nest import flatten
from ..variable_scopes import variable_scope
from .cells import _state_zeros
from .rnn import _select_state, batch_lengths


def _leaf(x):
    return not isinstance(x, (list, tuple, dict))




def _initial_state(cell, first_step, initial_state, dtype, what):
    if initial_state is not None:
        return initial_state
    if dtype is None:
        raise ValueError(f"{what}: expected dtype when no initial_state is given")
    dtype = dtypes.as_dtype(dtype)
    if hasattr(cell, "zero_state_like"):
        return cell.zero_state_like(first_step, dtype)
    return _state_zeros(cell.state_size, None, dtype, like=first_step)


def _rnn_loop(cell, inputs_tm, state, lengths, reverse, name):
    """The cell over time-major ``inputs_tm`` in one loop: ``(outputs_tm, state)``."""
    # Build the cell's variables outside the loop, so they are named as in an
    # unrolled graph (rnn/lstm_cell/kernel); this call is never run.
    cell(inputs_tm[0], state)
    flat_state, rebuild = flatten(state, is_leaf=_leaf)
    ns = len(flat_state)

    def body(*args):
        old = rebuild(list(args[:ns]))
        x_t, t = args[ns], args[ns + 1]
        out, new = cell(x_t, old)
        if lengths is not None:
            live = lengths > F.cast(t, lengths.dtype)                  # [batch, 1]
            out = F.where(live, out, F.zeros_like(out))
            new = _select_state(live, new, old)
        new_flat, _ = flatten(new, is_leaf=_leaf)
        return list(new_flat) + [out]

    final, emits, _, _, _ = _loop(body, flat_state, seqs=[inputs_tm], n_emits=1,
                                  reverse=reverse, with_index=True, name=name)
    return emits[0], rebuild(final)


def _time_major(inputs, time_major, what):
    inputs = F.convert_to_tensor(inputs)
    if inputs.shape is not None and len(inputs.shape) != 3:
        raise ShapeError(f"{what}: expected inputs of rank 3 ([batch, time, features]"
                         f"{' time-major' if time_major else ''}), found {inputs.name} of "
                         f"shape {inputs.shape}")
    return inputs if time_major else F.transpose(inputs, (1, 0, 2))


def _batch_major(outputs, time_major):
    return outputs if time_major else F.transpose(outputs, (1, 0, 2))


def dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None, dtype=None,
                time_major=False, scope=None, parallel_iterations=None, swap_memory=False):
    """Run ``cell`` over ``inputs`` ``[batch, time, features]`` (``[time, batch,
    features]`` with ``time_major``) in one loop: ``(outputs, final_state)``.

    Outputs and gradients equal those of ``static_rnn`` over the unstacked steps.
    ``sequence_length`` needs one length per row (checked, as TF1). TF1's
    ``parallel_iterations`` and ``swap_memory`` are accepted and change nothing.
    """
    with variable_scope(scope or "rnn"):
        x = _time_major(inputs, time_major, "dynamic_rnn")
        lengths = batch_lengths(sequence_length, x, 1, "dynamic_rnn")
        state = _initial_state(cell, x[0], initial_state, dtype, "dynamic_rnn")
        outputs, final = _rnn_loop(cell, x, state, lengths, False, "while")
    return _batch_major(outputs, time_major), final


def bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None,
                              initial_state_fw=None, initial_state_bw=None, dtype=None,
                              parallel_iterations=None, swap_memory=False,
                              time_major=False, scope=None):
    """A forward and a backward ``dynamic_rnn`` over ``inputs``:
    ``((outputs_fw, outputs_bw), (state_fw, state_bw))``. The backward outputs are in
    input order (TF1): with ``sequence_length`` each row is reversed within its own
    length.
    """
    with variable_scope(scope or "bidirectional_rnn"):
        x = _time_major(inputs, time_major, "bidirectional_dynamic_rnn")
        lengths = batch_lengths(sequence_length, x, 1, "bidirectional_dynamic_rnn")
        with variable_scope("fw"):
            s_fw = _initial_state(cell_fw, x[0], initial_state_fw, dtype,
                                  "bidirectional_dynamic_rnn")
            out_fw, st_fw = _rnn_loop(cell_fw, x, s_fw, lengths, False, "while")
        with variable_scope("bw"):
            s_bw = _initial_state(cell_bw, x[0], initial_state_bw, dtype,
                                  "bidirectional_dynamic_rnn")
            out_bw, st_bw = _rnn_loop(cell_bw, x, s_bw, lengths, True, "while")
    return ((_batch_major(out_fw, time_major), _batch_major(out_bw, time_major)),
            (st_fw, st_bw))


def _unrolled(cell, inputs, state, lengths, steps):
    outputs = [None] * len(inputs)
    for t in steps:
        out, new = cell(inputs[t], state)
        if lengths is not None:
            live = lengths > t
            out = F.where(live, out, F.zeros_like(out))
            new = _select_state(live, new, state)
        state = new
        outputs[t] = out
    return outputs, state


def static_bidirectional_rnn(cell_fw, cell_bw, inputs, initial_state_fw=None,
                             initial_state_bw=None, dtype=None, sequence_length=None,
                             scope=None):
    """The unrolled bidirectional network over a list of ``[batch, features]`` steps:
    ``(outputs, state_fw, state_bw)``, each output the forward and backward outputs
    of its step concatenated along axis 1 (TF1).
    """
    inputs = [F.convert_to_tensor(x) for x in inputs]
    if not inputs:
        raise ShapeError("static_bidirectional_rnn: expected a non-empty list of inputs")
    with variable_scope(scope or "bidirectional_rnn"):
        lengths = batch_lengths(sequence_length, inputs[0], 0, "static_bidirectional_rnn")
        steps = range(len(inputs))
        with variable_scope("fw"):
            s_fw = _initial_state(cell_fw, inputs[0], initial_state_fw, dtype or
                                  inputs[0].dtype, "static_bidirectional_rnn")
            out_fw, st_fw = _unrolled(cell_fw, inputs, s_fw, lengths, steps)
        with variable_scope("bw"):
            s_bw = _initial_state(cell_bw, inputs[0], initial_state_bw, dtype or
                                  inputs[0].dtype, "static_bidirectional_rnn")
            out_bw, st_bw = _unrolled(cell_bw, inputs, s_bw, lengths, reversed(steps))
        outputs = [F.concat([f, b], 1) for f, b in zip(out_fw, out_bw)]
    return outputs, st_fw, st_bw


__all__ = ["dynamic_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn"]
