"""The parts of TF1's ``tf.contrib`` that flowgraph has, under their TF1 paths, so a
ported program can keep ``fg.contrib.rnn.LSTMCell`` or
``fg.contrib.seq2seq.sequence_loss``:

- ``fg.contrib.rnn``: the cells of ``fg.nn.rnn_cell`` (``LSTMCell``, ``GRUCell``,
  ``BasicLSTMCell``, ``MultiRNNCell``, ``DropoutWrapper``, ...), ``static_rnn`` and
  ``static_bidirectional_rnn``;
- ``fg.contrib.seq2seq.sequence_loss`` (= ``fg.nn.sequence_loss``);
- ``fg.contrib.layers.xavier_initializer(uniform=True, seed=None)`` (TF1's formulas:
  Glorot-uniform, or with ``uniform=False`` a normal truncated at two standard
  deviations with ``stddev = sqrt(1.3 / fan_avg)``).
- ``fg.contrib.layers``' weight regularizers (``l1_regularizer``, ``l2_regularizer``,
  ``l1_l2_regularizer``, ``sum_regularizer``, ``apply_regularization``; see
  :mod:`flowgraph.regularizers`) and ``batch_norm`` (:mod:`flowgraph.batch_norm`).

Nothing else of ``tf.contrib`` exists (an attribute error says so).

>>> import flowgraph as fg
>>> fg.contrib.rnn.LSTMCell is fg.nn.LSTMCell, fg.contrib.seq2seq.sequence_loss is fg.nn.sequence_loss
(True, True)
"""
from . import layers, rnn, seq2seq

__all__ = ["layers", "rnn", "seq2seq"]
