"""Neural-network building blocks: activations, losses, embeddings, recurrent cells."""
from .losses import (embedding_lookup, log_softmax, softmax,
                     softmax_cross_entropy_with_logits,
                     sparse_softmax_cross_entropy_with_logits)
from ..api import relu, sigmoid, tanh

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy_with_logits",
           "sparse_softmax_cross_entropy_with_logits", "embedding_lookup", "relu", "sigmoid",
           "tanh"]
