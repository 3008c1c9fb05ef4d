"""TF1's ``tf.contrib.rnn``: the cells of :mod:`flowgraph.nn.rnn_cell` and the static
RNNs (see :mod:`flowgraph.contrib`)."""
from ..nn.dynamic import static_bidirectional_rnn
from ..nn.rnn import static_rnn
from ..nn.rnn_cell import (BasicLSTMCell, BasicRNNCell, DeviceWrapper, DropoutWrapper,
                           GRUCell, LSTMCell, LSTMStateTuple, MultiRNNCell, RNNCell)

__all__ = ["BasicLSTMCell", "BasicRNNCell", "DeviceWrapper", "DropoutWrapper", "GRUCell",
           "LSTMCell", "LSTMStateTuple", "MultiRNNCell", "RNNCell", "static_rnn",
           "static_bidirectional_rnn"]
