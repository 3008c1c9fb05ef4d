"""Neural-network building blocks: activations, losses, embeddings, dense layers,
initializers and recurrent cells."""
from . import init
from .cells import (BasicLSTMCell, BasicRNNCell, DeviceWrapper, GRUCell, LSTMCell,
                    LSTMStateTuple, MultiRNNCell, RNNCell)
from .dropouts import DropoutWrapper, dropout
from .layers import Dense, bias_add, dense, xw_plus_b
from .losses import (embedding_lookup, log_softmax, softmax,
                     softmax_cross_entropy_with_logits,
                     softmax_cross_entropy_with_logits_v2,
                     sparse_softmax_cross_entropy_with_logits)
# TF1's losses beyond cross-entropy (issue 14)
from .losses import l2_loss, sequence_loss, sigmoid_cross_entropy_with_logits
from .losses import weighted_cross_entropy_with_logits
from .dynamic import bidirectional_dynamic_rnn, dynamic_rnn, static_bidirectional_rnn
from . import rnn_cell  # TF1's tf.nn.rnn_cell namespace
from .rnn import feed_state, flatten_state, state_placeholders, static_rnn
from ..api import relu, sigmoid, tanh
# TF1's activations and normalizations, as compositions
from .activations import (batch_normalization, elu, l2_normalize, leaky_relu, moments, relu6,
                          selu, softplus, softsign, swish)
from .evaluation import in_top_k
from ..selection_ops import top_k
# TF1's convolution and pooling, as im2col compositions
from .conv import avg_pool, conv1d, conv2d, max_pool
# TF1's transposed convolution: a matmul and one col2im (flowgraph.patches_ops)
from .conv import conv2d_transpose
# TF1's depthwise and separable convolutions (compositions on ExtractPatches)
from .depthwise import depthwise_conv2d, depthwise_conv2d_native, separable_conv2d
from ..math_ops import log_sigmoid
# TF1's candidate samplers and sampled losses (word2vec's nce_loss, sampled softmax)
from ..candidate_sampling_ops import (fixed_unigram_candidate_sampler,
                                      log_uniform_candidate_sampler, uniform_candidate_sampler)
from .sampled_losses import nce_loss, sampled_softmax_loss

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy_with_logits",
           "sparse_softmax_cross_entropy_with_logits", "embedding_lookup", "relu", "sigmoid",
           "tanh", "init", "Dense", "dense", "RNNCell", "BasicRNNCell", "LSTMCell", "GRUCell",
           "MultiRNNCell", "DeviceWrapper", "LSTMStateTuple", "static_rnn",
           "state_placeholders", "flatten_state", "feed_state", "dropout", "DropoutWrapper",
           # issue 14
           "xw_plus_b", "l2_loss", "sequence_loss", "sigmoid_cross_entropy_with_logits",
           "weighted_cross_entropy_with_logits",
           "softmax_cross_entropy_with_logits_v2",
           "bias_add",
           # loops
           "dynamic_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn",
           # TF1's activations and normalizations
           "leaky_relu", "elu", "softplus", "l2_normalize", "moments", "relu6", "selu",
           "swish", "log_sigmoid", "in_top_k", "softsign", "batch_normalization", "top_k",
           # TF1's BasicLSTMCell and tf.nn.rnn_cell
           "BasicLSTMCell", "rnn_cell",
           # TF1's convolution and pooling
           "conv2d", "max_pool", "avg_pool", "conv1d",
           # TF1's transposed convolution
           "conv2d_transpose",
           # TF1's depthwise and separable convolutions
           "depthwise_conv2d", "depthwise_conv2d_native", "separable_conv2d",
           # TF1's candidate samplers and sampled losses
           "uniform_candidate_sampler", "log_uniform_candidate_sampler",
           "fixed_unigram_candidate_sampler", "nce_loss", "sampled_softmax_loss"]
