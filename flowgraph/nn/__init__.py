"""Neural-network building blocks: activations, losses, embeddings, dense layers,
initializers and recurrent cells."""
from . import init
from .cells import (BasicRNNCell, DeviceWrapper, GRUCell, LSTMCell, LSTMStateTuple,
                    MultiRNNCell, RNNCell)
from .layers import Dense, dense
from .losses import (embedding_lookup, log_softmax, softmax,
                     softmax_cross_entropy_with_logits,
                     sparse_softmax_cross_entropy_with_logits)
from .dynamic import bidirectional_dynamic_rnn, dynamic_rnn, static_bidirectional_rnn
from .rnn import feed_state, flatten_state, state_placeholders, static_rnn
from ..api import relu, sigmoid, tanh

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy_with_logits",
           "sparse_softmax_cross_entropy_with_logits", "embedding_lookup", "relu", "sigmoid",
           "tanh", "init", "Dense", "dense", "RNNCell", "BasicRNNCell", "LSTMCell", "GRUCell",
           "MultiRNNCell", "DeviceWrapper", "LSTMStateTuple", "static_rnn",
           "state_placeholders", "flatten_state", "feed_state", "dynamic_rnn",
           "bidirectional_dynamic_rnn", "static_bidirectional_rnn"]
