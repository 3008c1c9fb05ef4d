"""TF1's ``tf.nn.rnn_cell`` namespace: the cells, under the names a TF1 program uses
(``fg.nn.rnn_cell.BasicLSTMCell`` is ``fg.nn.BasicLSTMCell``).

>>> import flowgraph as fg
>>> fg.nn.rnn_cell.LSTMCell is fg.nn.LSTMCell
True
"""
from .cells import (BasicLSTMCell, BasicRNNCell, DeviceWrapper, GRUCell, LSTMCell,
                    LSTMStateTuple, MultiRNNCell, RNNCell)
from .dropouts import DropoutWrapper

__all__ = ["BasicLSTMCell", "BasicRNNCell", "DeviceWrapper", "DropoutWrapper", "GRUCell",
           "LSTMCell", "LSTMStateTuple", "MultiRNNCell", "RNNCell"]
