"""Training: optimizers, gradient clipping and checkpoints."""
