"""TF1's ``tf.contrib.seq2seq``: ``sequence_loss`` only (see :mod:`flowgraph.contrib`)."""
from ..nn.losses import sequence_loss

__all__ = ["sequence_loss"]
