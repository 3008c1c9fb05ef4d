"""Recurrent cells with the equations and variable layouts of the README's cell table.

A cell is called as ``output, new_state = cell(inputs, state)`` on one time step of
``[batch, input_dim]`` inputs; its variables are created on the first call (their dtype
is the inputs' dtype) and are attributes of the cell (``cell.kernel``, ``cell.bias``,
...). ``[h; x]`` is ``concat([h, x], axis=1)``, h first.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     cell = fg.nn.LSTMCell(3, seed=0)
...     x = fg.placeholder(fg.float32, (2, 4))
...     out, state = cell(x, cell.zero_state(2, fg.float32))
...     cell.kernel.shape, cell.bias.shape, out.shape
((7, 12), (12,), (2, 3))
"""
from __future__ import annotations

import collections

import numpy as np

from .. import api as F
from .. import dtypes
from ..errors import ShapeError
from ..graph import device as device_scope
from ..graph import name_scope
from ..variable_scopes import AUTO_REUSE, get_variable, get_variable_scope, variable_scope
from . import init


class LSTMStateTuple(collections.namedtuple("LSTMStateTuple", ("c", "h"))):
    """The state of an LSTM: cell state ``c`` and output ``h``."""

    __slots__ = ()

    @property
    def dtype(self):
        return self.c.dtype


def _input_dim(inputs, cell):
    if inputs.shape is None or len(inputs.shape) != 2 or inputs.shape[1] is None:
        raise ShapeError(f"{type(cell).__name__} '{cell.name}': expected inputs of shape "
                         f"[batch, input_dim] with a known input_dim, found "
                         f"{inputs.name} of shape {inputs.shape}")
    return int(inputs.shape[1])


def _check_state(cell, state, units):
    shape = getattr(state, "shape", None)
    if shape is not None and (len(shape) != 2 or shape[1] not in (None, units)):
        raise ShapeError(f"{type(cell).__name__} '{cell.name}': expected a state of shape "
                         f"[batch, {units}], found {state.name} of shape {shape}")


def zeros_for_batch(like, units, dtype):
    """A ``[batch, units]`` zero tensor whose batch size is that of ``like`` (its first
    dimension), known statically or only at run time.
    """
    dtype = dtypes.as_dtype(dtype)
    batch = like.shape[0] if like.shape else None
    if batch is not None:
        return F.zeros((batch, units), dtype)
    column = F.zeros_like(like[:, :1], dtype=dtype)  # [batch, 1], batch known at run time
    return column * F.zeros((1, units), dtype)


def _state_zeros(size, batch_size, dtype, like=None):
    if isinstance(size, LSTMStateTuple):
        return LSTMStateTuple(*(_state_zeros(s, batch_size, dtype, like) for s in size))
    if isinstance(size, tuple):
        return tuple(_state_zeros(s, batch_size, dtype, like) for s in size)
    if like is not None:
        return zeros_for_batch(like, size, dtype)
    return F.zeros((int(batch_size), size), dtype)


class RNNCell:
    """Base class: ``state_size``, ``output_size``, ``zero_state``, build on first call.

    ``seed`` (an int, a NumPy Generator or None) seeds the initial weights;
    ``kernel_initializer(shape, seed, dtype) -> array`` replaces Glorot-uniform, and so
    does TF1's ``initializer(shape, dtype)``. ``reuse=True`` (TF1) builds in the scope
    named after the cell with reuse: the variables must exist.

    Variables are made with ``fg.get_variable`` inside ``fg.variable_scope(None,
    default_name=name)`` at the first call (TF1's layers), so a cell built under a
    reusing scope shares the variables of the same name. A kernel takes, in order: the
    cell's ``kernel_initializer``, the enclosing variable scope's initializer, or
    Glorot-uniform from ``seed``; biases always start at their documented values.
    """

    default_name = "rnn_cell"

    def __init__(self, num_units, name=None, seed=None, kernel_initializer=None,
                 reuse=None, initializer=None):
        self._reuse = reuse
        if initializer is not None and kernel_initializer is None:
            # TF1's ``initializer=``: a callable (shape, dtype) for the kernels
            def kernel_initializer(shape, rng, dtype, _init=initializer):
                return _init(shape, dtype=dtype)
        self.num_units = int(num_units)
        if self.num_units <= 0:
            raise ValueError(f"{type(self).__name__}: expected num_units > 0, found {num_units}")
        self.name = name or self.default_name
        self._rng = init.as_rng(seed)
        self._explicit_kernel_init = kernel_initializer
        self._kernel_init = kernel_initializer or init.glorot_uniform
        self._scope = None
        self._variable_scope = None
        self.built = False
        self.variables = []
        self.input_dim = None

    @property
    def state_size(self):
        return self.num_units

    @property
    def output_size(self):
        return self.num_units

    def zero_state(self, batch_size, dtype=dtypes.float32):
        """A state of zeros for ``batch_size`` rows (an int)."""
        return _state_zeros(self.state_size, batch_size, dtype)

    def zero_state_like(self, inputs, dtype=None):
        """A state of zeros with the batch size of ``inputs`` (known or not)."""
        return _state_zeros(self.state_size, None, dtype or inputs.dtype, like=inputs)

    # --- variables ---------------------------------------------------------------------
    def _variable(self, name, value, shape=None, dtype=None):
        """``get_variable(name)`` in the cell's scope; ``value`` an array or a callable
        ``(shape, dtype) -> array`` (called only when the variable is made)."""
        if callable(value):
            var = get_variable(name, shape, dtype, initializer=value)
        else:
            value = np.asarray(value)
            var = get_variable(name, value.shape, value.dtype,
                               initializer=lambda shape, dtype=None: value)
        setattr(self, name, var)
        self.variables.append(var)
        return var

    def _kernel(self, name, shape, dtype):
        if self._explicit_kernel_init is None and get_variable_scope().initializer is not None:
            initial = None       # the enclosing scope's initializer (TF1)
        else:
            def initial(shape, dtype=dtype):
                return np.asarray(self._kernel_init(shape, self._rng, dtype), dtype=dtype)
        if initial is None:
            var = get_variable(name, shape, dtype)
            setattr(self, name, var)
            self.variables.append(var)
            return var
        return self._variable(name, initial, shape, dtype)

    def _build(self, input_dim, dtype):
        raise NotImplementedError

    @property
    def trainable_variables(self):
        return list(self.variables)

    weights = trainable_weights = trainable_variables  # Keras/TF1 Layer spellings

    def __call__(self, inputs, state):
        inputs = F.convert_to_tensor(inputs)
        input_dim = _input_dim(inputs, self)
        if not self.built:
            if self._reuse is True or self._reuse is AUTO_REUSE:
                opened = variable_scope(self.name, reuse=self._reuse)
            else:
                opened = variable_scope(None, default_name=self.name)
            with opened as scope:
                self._variable_scope = scope
                self._scope = scope.name.rsplit("/", 1)[-1]
                self._build(input_dim, inputs.dtype)
            self.input_dim = input_dim
            self.built = True
        elif input_dim != self.input_dim:
            raise ShapeError(f"{type(self).__name__} '{self._scope}': built for inputs of "
                             f"dimension {self.input_dim}, found {inputs.name} of shape "
                             f"{inputs.shape}")
        with name_scope(self._scope):
            return self._step(inputs, state)

    def _step(self, inputs, state):
        raise NotImplementedError

    def __repr__(self):
        return f"<fg.nn.{type(self).__name__} '{self._scope or self.name}' " \
               f"num_units={self.num_units}>"


class BasicRNNCell(RNNCell):
    """``h' = tanh([h; x] @ kernel + bias)``; ``kernel [H+I, H]``, ``bias [H]``."""

    default_name = "basic_rnn_cell"

    def __init__(self, num_units, activation=None, name=None, seed=None,
                 kernel_initializer=None, reuse=None, initializer=None):
        super().__init__(num_units, name, seed, kernel_initializer, reuse, initializer)
        self.activation = activation or F.tanh

    def _build(self, input_dim, dtype):
        H = self.num_units
        self._kernel("kernel", (H + input_dim, H), dtype)
        self._variable("bias", np.zeros(H, dtype))

    def _step(self, inputs, state):
        _check_state(self, state, self.num_units)
        h = self.activation(F.matmul(F.concat([state, inputs], 1), self.kernel) + self.bias)
        return h, h


class LSTMCell(RNNCell):
    """LSTM with ``kernel [H+I, 4H]`` (column blocks ``i, f, o, g``) and ``bias [4H]``
    whose ``f`` block starts at ``forget_bias`` (nothing else is added in the graph)::

        i, f, o = sigmoid(.), g = tanh(.)   of   [h; x] @ kernel + bias
        c' = f * c + i * g;   h' = o * tanh(c')

    The state is ``LSTMStateTuple(c, h)``.
    """

    default_name = "lstm_cell"

    def __init__(self, num_units, forget_bias=1.0, name=None, seed=None,
                 kernel_initializer=None, reuse=None, initializer=None, state_is_tuple=True,
                 activation=None, use_peepholes=False, cell_clip=None, num_proj=None,
                 proj_clip=None, dtype=None):
        if not state_is_tuple:
            raise ValueError("LSTMCell: state_is_tuple=False (a concatenated state) is not "
                             "supported; the state is an LSTMStateTuple(c, h)")
        # TF1's LSTMCell variants that change the equations or the state: accepted at
        # their defaults (TF1 code spells them out), refused otherwise rather than
        # silently running a plain LSTM.
        unsupported = {"use_peepholes": (use_peepholes, False), "cell_clip": (cell_clip, None),
                       "num_proj": (num_proj, None), "proj_clip": (proj_clip, None)}
        given = [f"{k}={v!r}" for k, (v, default) in unsupported.items() if v != default]
        if given:
            raise ValueError(f"LSTMCell: {', '.join(given)} is not supported (no peepholes, "
                             f"cell clipping or projection); expected the defaults")
        super().__init__(num_units, name, seed, kernel_initializer, reuse, initializer)
        self.forget_bias = float(forget_bias)
        # activation (TF1; default tanh) replaces both tanh of the equations
        self.activation = activation or F.tanh

    @property
    def state_size(self):
        return LSTMStateTuple(self.num_units, self.num_units)

    def _build(self, input_dim, dtype):
        H = self.num_units
        self._kernel("kernel", (H + input_dim, 4 * H), dtype)
        bias = np.zeros(4 * H, dtype)
        bias[H:2 * H] = self.forget_bias
        self._variable("bias", bias)

    def _step(self, inputs, state):
        if not isinstance(state, tuple) or len(state) != 2:
            raise ShapeError(f"{type(self).__name__} '{self._scope}': expected the state "
                             f"to be an LSTMStateTuple(c, h), found {type(state).__name__}")
        c, h = state
        _check_state(self, c, self.num_units)
        _check_state(self, h, self.num_units)
        act = self.activation
        z = F.matmul(F.concat([h, inputs], 1), self.kernel) + self.bias
        i, f, o, g = F.split(z, 4, axis=1)
        new_c = F.sigmoid(f) * c + F.sigmoid(i) * act(g)
        new_h = F.sigmoid(o) * act(new_c)
        return new_h, LSTMStateTuple(new_c, new_h)


class BasicLSTMCell(LSTMCell):
    """TF1's ``tf.nn.rnn_cell.BasicLSTMCell``: an :class:`LSTMCell` (no peepholes, no
    projection, no cell clipping) with TF1's constructor ``(num_units, forget_bias=1.0,
    state_is_tuple=True, activation=None, reuse=None, name=None, dtype=None)``; its
    variables are made in ``basic_lstm_cell/`` and have LSTMCell's layout (``[h; x]``,
    blocks ``i, f, o, g``, the forget bias in the bias's starting value).
    ``activation`` (default ``tanh``) replaces both tanh of the equations, as in TF1.
    ``seed=`` and ``kernel_initializer=`` are flowgraph's, as for the other cells.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     cell = fg.nn.rnn_cell.BasicLSTMCell(3, seed=0)
    ...     x = fg.placeholder(fg.float32, (2, 4))
    ...     out, state = cell(x, cell.zero_state(2, fg.float32))
    ...     cell.kernel.name, out.shape, type(state).__name__
    ('basic_lstm_cell/kernel:0', (2, 3), 'LSTMStateTuple')
    """

    default_name = "basic_lstm_cell"

    def __init__(self, num_units, forget_bias=1.0, state_is_tuple=True, activation=None,
                 reuse=None, name=None, dtype=None, seed=None, kernel_initializer=None,
                 initializer=None):
        super().__init__(num_units, forget_bias, name, seed, kernel_initializer, reuse,
                         initializer, state_is_tuple)
        self.activation = activation or F.tanh
        self._dtype = None if dtype is None else dtypes.as_dtype(dtype)

    def _build(self, input_dim, dtype):
        if self._dtype is not None and self._dtype != dtype:
            from ..errors import DTypeError
            raise DTypeError(f"BasicLSTMCell '{self.name}': made with dtype="
                             f"{self._dtype.name}, found inputs of dtype {dtype.name}; "
                             f"expected them to agree (cast the inputs)")
        super()._build(input_dim, dtype)


class GRUCell(RNNCell):
    """Gated recurrent unit in two conventions.

    ``reset_after=False``: ``gate_kernel [H+I, 2H]`` (blocks ``r, z``), ``gate_bias [2H]``,
    ``candidate_kernel [H+I, H]``, ``candidate_bias [H]``::

        r, z = sigmoid([h; x] @ gate_kernel + gate_bias)
        n = tanh([r*h; x] @ candidate_kernel + candidate_bias);  h' = (1-z)*h + z*n

    ``reset_after=True`` is exactly ``torch.nn.GRU`` (gate order ``r, z, n``):
    ``kernel [I, 3H]`` (= ``weight_ih.T``), ``recurrent_kernel [H, 3H]``
    (= ``weight_hh.T``), ``bias [3H]`` (= ``bias_ih``), ``recurrent_bias [3H]``
    (= ``bias_hh``)::

        r = sigmoid(x@Wr + br + h@Ur + ur);  z = sigmoid(x@Wz + bz + h@Uz + uz)
        n = tanh(x@Wn + bn + r*(h@Un + un)); h' = (1-z)*n + z*h

    All biases start at zero; the recurrent kernel of ``reset_after=True`` starts
    orthogonal (per gate block).
    """

    default_name = "gru_cell"

    def __init__(self, num_units, reset_after=False, name=None, seed=None,
                 kernel_initializer=None, reuse=None, initializer=None):
        super().__init__(num_units, name, seed, kernel_initializer, reuse, initializer)
        self.reset_after = bool(reset_after)

    def _build(self, input_dim, dtype):
        H = self.num_units
        if self.reset_after:
            self._kernel("kernel", (input_dim, 3 * H), dtype)
            self._variable("recurrent_kernel", lambda shape, dtype=dtype: np.concatenate(
                [init.orthogonal((H, H), self._rng, dtype) for _ in range(3)], axis=1),
                (H, 3 * H), dtype)
            self._variable("bias", np.zeros(3 * H, dtype))
            self._variable("recurrent_bias", np.zeros(3 * H, dtype))
        else:
            self._kernel("gate_kernel", (H + input_dim, 2 * H), dtype)
            self._variable("gate_bias", np.zeros(2 * H, dtype))
            self._kernel("candidate_kernel", (H + input_dim, H), dtype)
            self._variable("candidate_bias", np.zeros(H, dtype))

    def _step(self, inputs, h):
        _check_state(self, h, self.num_units)
        if self.reset_after:
            xr, xz, xn = F.split(F.matmul(inputs, self.kernel) + self.bias, 3, axis=1)
            hr, hz, hn = F.split(F.matmul(h, self.recurrent_kernel) + self.recurrent_bias,
                                 3, axis=1)
            r = F.sigmoid(xr + hr)
            z = F.sigmoid(xz + hz)
            n = F.tanh(xn + r * hn)
            new_h = (1.0 - z) * n + z * h
        else:
            gates = F.sigmoid(F.matmul(F.concat([h, inputs], 1), self.gate_kernel)
                              + self.gate_bias)
            r, z = F.split(gates, 2, axis=1)
            n = F.tanh(F.matmul(F.concat([r * h, inputs], 1), self.candidate_kernel)
                       + self.candidate_bias)
            new_h = (1.0 - z) * h + z * n
        return new_h, new_h


class MultiRNNCell(RNNCell):
    """Cells stacked in layers: the output of layer ``k`` is the input of ``k+1``; the
    state is a tuple of the layers' states. Layer ``k``'s variables are named
    ``multi_rnn_cell/cell_k/...``.
    """

    default_name = "multi_rnn_cell"

    def __init__(self, cells, state_is_tuple=True, name=None):
        if not state_is_tuple:
            raise ValueError("MultiRNNCell: state_is_tuple=False (one concatenated state) "
                             "is not supported; the state is a tuple of the layers' states")
        if isinstance(state_is_tuple, str):      # MultiRNNCell(cells, "name"): the old order
            name = state_is_tuple
        cells = list(cells)
        if not cells:
            raise ValueError("MultiRNNCell: expected at least one cell")
        if len(set(map(id, cells))) != len(cells):
            raise ValueError("MultiRNNCell: the same cell object appears twice; layers "
                             "need their own cells (their own weights)")
        self.cells = cells
        self.name = name or self.default_name
        self.num_units = cells[-1].output_size
        self._scope = None
        self._variable_scope = None
        self.built = False

    @property
    def state_size(self):
        return tuple(c.state_size for c in self.cells)

    @property
    def output_size(self):
        return self.cells[-1].output_size

    @property
    def variables(self):
        return [v for c in self.cells for v in c.variables]

    trainable_variables = weights = trainable_weights = variables

    def __call__(self, inputs, state):
        if not isinstance(state, tuple) or len(state) != len(self.cells):
            raise ShapeError(f"MultiRNNCell '{self._scope or self.name}': expected a tuple "
                             f"of {len(self.cells)} layer states, found "
                             f"{type(state).__name__}")
        if not self.built:
            with variable_scope(None, default_name=self.name) as scope:
                self._variable_scope = scope
                self._scope = scope.name.rsplit("/", 1)[-1]
            self.built = True
        x, new_states = inputs, []
        for k, (cell, s) in enumerate(zip(self.cells, state)):
            with variable_scope(self._variable_scope), variable_scope(f"cell_{k}"):
                x, s = cell(x, s)
            new_states.append(s)
        return x, tuple(new_states)


class DeviceWrapper(RNNCell):
    """Runs ``cell``'s ops (and places its variables) on ``device``.

    Attributes not found on the wrapper (``kernel``, ``bias``, ...) are the cell's.
    """

    def __init__(self, cell, device):
        self.cell = cell
        self.device = device

    state_size = property(lambda self: self.cell.state_size)
    output_size = property(lambda self: self.cell.output_size)
    variables = property(lambda self: self.cell.variables)
    trainable_variables = property(lambda self: self.cell.trainable_variables)

    def zero_state(self, batch_size, dtype=dtypes.float32):
        with device_scope(self.device):
            return self.cell.zero_state(batch_size, dtype)

    def zero_state_like(self, inputs, dtype=None):
        with device_scope(self.device):
            return self.cell.zero_state_like(inputs, dtype)

    def __call__(self, inputs, state):
        with device_scope(self.device):
            return self.cell(inputs, state)

    def __getattr__(self, name):
        if name == "cell":  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(self.cell, name)

    def __repr__(self):
        return f"<fg.nn.DeviceWrapper {self.cell!r} on {self.device}>"


__all__ = ["LSTMStateTuple", "RNNCell", "BasicRNNCell", "LSTMCell", "BasicLSTMCell", "GRUCell",
           "MultiRNNCell", "DeviceWrapper"]
