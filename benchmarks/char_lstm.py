"""The char-LSTM training step that benchmarks/placement.py and benchmarks/scaling.py
time: ``examples/char_rnn.py``'s model (embedding, 1-layer LSTM, softmax readout, Adam,
global-norm clipping; T=32, H=256, vocabulary 96) as a compiled step function.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T, H, VOCAB = 32, 256, 96


def char_rnn_module():
    spec = importlib.util.spec_from_file_location(
        "char_rnn_example", os.path.join(ROOT, "examples", "char_rnn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_step(batch, device="/cpu:0", soft=False, data_parallel=False, seed=0):
    """``(step, session, model)``: ``step()`` runs one training step on fixed random
    data of ``batch`` rows (this rank's rows under data parallelism)."""
    import flowgraph as fg
    char_rnn = char_rnn_module()
    graph = fg.Graph()
    with graph.as_default():
        model = char_rnn.build_model(VOCAB, hidden=H, seq_len=T, batch=batch, lr=1e-3,
                                     device=device, data_parallel=data_parallel)
        sess = fg.Session(config=fg.SessionConfig(allow_soft_placement=soft,
                                                  compile="eager"))
        fn = sess.make_callable([model.loss, model.train_op],
                                [model.inputs, model.targets] + model.flat_state_in)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, VOCAB, (batch, T)).astype(np.int32)
    targets = rng.integers(0, VOCAB, (T * batch,)).astype(np.int32)
    state = char_rnn.zero_state(model.flat_state_in, batch)
    feeds = [inputs, targets, *state]

    def step():
        return fn(*feeds)
    step.feeds = feeds
    return step, sess, model
