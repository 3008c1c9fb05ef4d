"""Whole training steps of real models: flowgraph against the same model in torch.

Three programs, each a full training step (forward, loss, backward, clipping where the
model has it, the optimizer's update) with the same shapes, the same optimizer and the
same initial weights on both sides; the first step's losses are checked equal before
anything is timed:

- ``char``: the model of ``examples/char_rnn.py`` (embedding 64, LSTM 128, vocabulary
  96, 32 steps x batch 48, softmax cross-entropy, Adam, clipping to norm 5; the state is
  fed in and fetched out as the example does);
- ``ptb``: TF1's PTB "small" language model (2-layer LSTM 200, vocabulary 10,000,
  20 steps x batch 20, loss summed over time and averaged over the batch, SGD with
  learning rate 1, clipping to norm 5);
- ``rows``: an LSTM 128 classifier over the 28 rows of a 28x28 image, 10 classes,
  batch 128, Adam;
- ``cnn``: the CNN of ``examples/mnist_cnn.py`` (TF1's Deep MNIST / ``tf.layers``
  tutorial: conv 5x5x32 + ReLU + max-pool 2x2, conv 5x5x64 + batch normalization in
  training mode + ReLU + max-pool, dense 1024 + ReLU, dense 10; sparse softmax
  cross-entropy plus an L2 penalty on the kernels; Adam with the moving-average updates
  as control dependencies), batch 50 of 28x28x1 images. Dropout is left out: the two
  frameworks draw different masks, and the first losses must agree.

flowgraph and torch are timed in turn within every repeat (medians after warm-up), on
one pinned core with one BLAS thread, each program in a fresh process (torch's step
depends on the heap the programs before it left; ``--in-process`` to measure them all
in one); the CPU model is printed with the table::

    python benchmarks/programs.py --out benchmarks/results/programs
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (interleaved_medians_ms, pin_threads, rows_in_fresh_processes,  # noqa: E402
                    write_results, write_rows_json)

PROGRAMS = {
    "char": dict(vocab=96, embed=64, hidden=128, layers=1, T=32, B=48, opt="adam",
                 lr=0.005, clip=5.0, loss="mean"),
    "ptb": dict(vocab=10_000, embed=200, hidden=200, layers=2, T=20, B=20, opt="sgd",
                lr=1.0, clip=5.0, loss="sum_time"),
    "rows": dict(inputs=28, hidden=128, T=28, B=128, classes=10, opt="adam", lr=0.001,
                 clip=None),
    "cnn": dict(size=28, B=50, filters=(32, 64), dense=1024, classes=10, opt="adam",
                lr=0.001, l2=1e-4, clip=None),
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


# --- the data ----------------------------------------------------------------------------

def make_batch(name, cfg, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    if name == "cnn":
        x = rng.random((cfg["B"], cfg["size"], cfg["size"], 1), dtype=np.float32)
        y = rng.integers(0, cfg["classes"], cfg["B"]).astype(np.int32)
        return x, y
    if name == "rows":
        x = rng.random((cfg["B"], cfg["T"], cfg["inputs"]), dtype=np.float32)
        y = rng.integers(0, cfg["classes"], cfg["B"]).astype(np.int32)
        return x, y
    ids = rng.integers(0, cfg["vocab"], (cfg["B"], cfg["T"] + 1)).astype(np.int32)
    return ids[:, :-1], ids[:, 1:]


# --- flowgraph -----------------------------------------------------------------------------

def fg_cnn_program(cfg):
    """:func:`fg_program` for ``cnn``: the model of ``examples/mnist_cnn.py`` (less its
    dropout), written with ``fg.layers`` as the example is."""
    import flowgraph as fg
    graph = fg.Graph()
    with graph.as_default():
        fg.set_random_seed(0)
        B, S, (f1, f2) = cfg["B"], cfg["size"], cfg["filters"]
        x = fg.placeholder(fg.float32, (B, S, S, 1), name="x")
        y = fg.placeholder(fg.int32, (B,), name="y")
        training = fg.placeholder_with_default(False, shape=[], name="is_training")
        l2 = fg.contrib.layers.l2_regularizer(cfg["l2"])
        h = fg.layers.conv2d(x, f1, 5, padding="same", activation=fg.nn.relu,
                             kernel_regularizer=l2, name="conv1")
        h = fg.layers.max_pooling2d(h, 2, 2)
        h = fg.layers.conv2d(h, f2, 5, padding="same", use_bias=False,
                             kernel_regularizer=l2, name="conv2")
        h = fg.layers.batch_normalization(h, training=training, name="bn2")
        h = fg.layers.max_pooling2d(fg.nn.relu(h), 2, 2)
        h = fg.reshape(h, [B, (S // 4) * (S // 4) * f2])
        h = fg.layers.dense(h, cfg["dense"], activation=fg.nn.relu, kernel_regularizer=l2,
                            name="fc1")
        logits = fg.layers.dense(h, cfg["classes"], kernel_regularizer=l2, name="logits")
        loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits)) + fg.losses.get_regularization_loss()
        with fg.control_dependencies(fg.get_collection(fg.GraphKeys.UPDATE_OPS)):
            train_op = fg.train.AdamOptimizer(cfg["lr"]).minimize(loss)
        variables = fg.trainable_variables()
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        # by layer name: conv1/kernel, bn2/gamma, ... (no ":0")
        initial = {v.name.split(":")[0]: sess.variable_value(v) for v in variables}
        call = sess.make_callable([loss, train_op], [x, y, training])

        def step(xv, yv):
            return float(call(xv, yv, True)[0])
    step.session = sess
    return step, initial, {}


def torch_cnn_program(cfg, initial):
    """:func:`torch_program` for ``cnn``: the same layers in torch (NCHW inside, the
    flatten in flowgraph's NHWC order), the same initial weights, the L2 penalty as
    ``l2_regularizer``'s ``scale * sum(w ** 2) / 2`` on the kernels."""
    import numpy as np
    import torch
    nn = torch.nn
    (f1, f2), S = cfg["filters"], cfg["size"]
    conv1 = nn.Conv2d(1, f1, 5, padding=2)
    conv2 = nn.Conv2d(f1, f2, 5, padding=2, bias=False)
    bn2 = nn.BatchNorm2d(f2, eps=1e-3, momentum=0.01)       # TF1's momentum 0.99
    fc1 = nn.Linear((S // 4) * (S // 4) * f2, cfg["dense"])
    out = nn.Linear(cfg["dense"], cfg["classes"])

    def load(param, value):
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    load(conv1.weight, initial["conv1/kernel"].transpose(3, 2, 0, 1))
    load(conv1.bias, initial["conv1/bias"])
    load(conv2.weight, initial["conv2/kernel"].transpose(3, 2, 0, 1))
    load(bn2.weight, initial["bn2/gamma"])
    load(bn2.bias, initial["bn2/beta"])
    load(fc1.weight, initial["fc1/kernel"].T)
    load(fc1.bias, initial["fc1/bias"])
    load(out.weight, initial["logits/kernel"].T)
    load(out.bias, initial["logits/bias"])
    modules = [conv1, conv2, bn2, fc1, out]
    for m in modules:
        m.train()
    params = [p for m in modules for p in m.parameters()]
    kernels = [conv1.weight, conv2.weight, fc1.weight, out.weight]
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    F = torch.nn.functional

    def step(xv, yv):
        opt.zero_grad(set_to_none=True)
        h = torch.from_numpy(xv).permute(0, 3, 1, 2)
        h = F.max_pool2d(F.relu(conv1(h)), 2, 2)
        h = F.max_pool2d(F.relu(bn2(conv2(h))), 2, 2)
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)         # NHWC's flatten
        logits = out(F.relu(fc1(h)))
        loss = F.cross_entropy(logits, torch.from_numpy(yv).long()) + \
            cfg["l2"] * sum((k * k).sum() for k in kernels) / 2
        loss.backward()
        opt.step()
        return loss.item()
    return step


def fg_program(name, cfg, dtype="float32"):
    """(step(x, y) -> loss, {weight name: initial array}) for one program."""
    import numpy as np
    import flowgraph as fg
    if name == "cnn":
        return fg_cnn_program(cfg)
    graph = fg.Graph()
    with graph.as_default():
        H, T, B = cfg["hidden"], cfg["T"], cfg["B"]
        if name == "rows":
            x = fg.placeholder(fg.float32, (B, T, cfg["inputs"]), name="x")
            y = fg.placeholder(fg.int32, (B,), name="y")
            cell = fg.nn.LSTMCell(H, seed=1)
            outputs, _ = fg.nn.static_rnn(cell, fg.unstack(x, axis=1),
                                          initial_state=cell.zero_state(B, fg.float32))
            readout = fg.nn.Dense(cfg["classes"], seed=2)
            logits = readout(outputs[-1])
            loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=logits))
            cells = [cell]
            embedding = None
        else:
            x = fg.placeholder(fg.int32, (B, T), name="x")
            y = fg.placeholder(fg.int32, (B, T), name="y")
            rng = np.random.default_rng(3)
            embedding = fg.Variable(rng.uniform(-0.1, 0.1, (cfg["vocab"], cfg["embed"]))
                                    .astype(np.float32), name="embedding")
            cells = [fg.nn.LSTMCell(H, forget_bias=0.0 if name == "ptb" else 1.0,
                                    seed=10 + k) for k in range(cfg["layers"])]
            cell = cells[0] if len(cells) == 1 else fg.nn.MultiRNNCell(cells)
            state_in = fg.nn.state_placeholders(cell, B, fg.float32, name="state_in")
            steps = fg.unstack(fg.nn.embedding_lookup(embedding, x), axis=1)
            outputs, state_out = fg.nn.static_rnn(cell, steps, initial_state=state_in)
            readout = fg.nn.Dense(cfg["vocab"], seed=2)
            logits = readout(fg.concat(outputs, axis=0))          # time-major rows
            targets = fg.reshape(fg.transpose(y), (-1,))
            ce = fg.nn.sparse_softmax_cross_entropy_with_logits(labels=targets,
                                                                logits=logits)
            loss = (fg.reduce_mean(ce) if cfg["loss"] == "mean"
                    else fg.reduce_sum(ce) / float(B))
        variables = ([embedding] if embedding is not None else []) + \
            [v for c in cells for v in (c.kernel, c.bias)] + [readout.kernel, readout.bias]
        opt = (fg.train.AdamOptimizer(cfg["lr"]) if cfg["opt"] == "adam"
               else fg.train.GradientDescentOptimizer(cfg["lr"]))
        grads = fg.gradients(loss, variables)
        if cfg["clip"]:
            grads, _ = fg.clip_by_global_norm(grads, cfg["clip"])
        train_op = opt.apply_gradients(zip(grads, variables))
        # eager: the timed steps run the compiled kernels (and no compiler thread
        # shares the pinned core with the timing loop)
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        initial = {v.name: sess.variable_value(v) for v in variables}
        if name == "rows":
            call = sess.make_callable([loss, train_op], [x, y])

            def step(xv, yv):
                return float(call(xv, yv)[0])
        else:
            flat_in = fg.nn.flatten_state(state_in)
            flat_out = fg.nn.flatten_state(state_out)
            call = sess.make_callable([loss, flat_out, train_op], [x, y] + flat_in)
            state = [np.zeros((B, H), np.float32) for _ in flat_in]

            def step(xv, yv):
                # the state of one batch is the next one's initial state, as in training
                loss_value, new_state, _ = call(xv, yv, *state)
                state[:] = new_state
                return float(loss_value)
    step.session = sess     # for step_profile.py --program
    layout = dict(cells=[(c.kernel.name, c.bias.name) for c in cells],
                  readout=(readout.kernel.name, readout.bias.name),
                  embedding=embedding.name if embedding is not None else None)
    return step, initial, layout


# --- torch -----------------------------------------------------------------------------

def _lstm_to_torch(kernel, bias, input_dim, H):
    """flowgraph's LSTM kernel [H+I, 4H] (rows h then x; gate blocks i, f, o, g) as
    torch's weight_ih [4H, I], weight_hh [4H, H] (gate blocks i, f, g, o) and bias."""
    import numpy as np
    order = np.concatenate([np.arange(0, H), np.arange(H, 2 * H), np.arange(3 * H, 4 * H),
                            np.arange(2 * H, 3 * H)])
    k = kernel[:, order]
    return k[H:].T.copy(), k[:H].T.copy(), bias[order].copy()


def torch_program(name, cfg, initial, layout):
    import numpy as np
    import torch
    if name == "cnn":
        return torch_cnn_program(cfg, initial)
    H, T, B = cfg["hidden"], cfg["T"], cfg["B"]
    layers = cfg.get("layers", 1)
    input_dim = cfg["inputs"] if name == "rows" else cfg["embed"]
    lstm = torch.nn.LSTM(input_dim, H, num_layers=layers)
    with torch.no_grad():
        for k, (kname, bname) in enumerate(layout["cells"]):
            w_ih, w_hh, b = _lstm_to_torch(initial[kname], initial[bname],
                                           input_dim if k == 0 else H, H)
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(w_ih))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(w_hh))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(b))
            # flowgraph's cell has one bias: torch's second one stays zero and frozen
            # (trained, it would get the same gradient and double the bias's update)
            getattr(lstm, f"bias_hh_l{k}").zero_()
            getattr(lstm, f"bias_hh_l{k}").requires_grad_(False)
    out_dim = cfg["classes"] if name == "rows" else cfg["vocab"]
    readout = torch.nn.Linear(H, out_dim)
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(initial[layout["readout"][0]].T.copy()))
        readout.bias.copy_(torch.from_numpy(initial[layout["readout"][1]]))
    modules = [lstm, readout]
    embedding = None
    if layout["embedding"]:
        embedding = torch.nn.Embedding(cfg["vocab"], cfg["embed"])
        with torch.no_grad():
            embedding.weight.copy_(torch.from_numpy(initial[layout["embedding"]]))
        modules.insert(0, embedding)
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=cfg["lr"]) if cfg["opt"] == "adam"
           else torch.optim.SGD(params, lr=cfg["lr"]))
    state = [None]

    def step(xv, yv):
        opt.zero_grad(set_to_none=True)
        if name == "rows":
            out, _ = lstm(torch.from_numpy(xv).transpose(0, 1))
            loss = torch.nn.functional.cross_entropy(readout(out[-1]),
                                                     torch.from_numpy(yv).long())
        else:
            ids = torch.from_numpy(xv).long().t()                  # [T, B]
            out, new_state = lstm(embedding(ids), state[0])
            logits = readout(out.reshape(T * B, H))                # time-major rows
            targets = torch.from_numpy(yv).long().t().reshape(-1)
            ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            loss = ce.mean() if cfg["loss"] == "mean" else ce.sum() / B
            state[0] = tuple(s.detach() for s in new_state)
        loss.backward()
        if cfg["clip"]:
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
        opt.step()
        return loss.item()
    return step


def measure(names, repeats, warmup):
    """One row per program: flowgraph's and torch's median step, timed in turn in this
    process, after checking that their first-step losses agree."""
    import numpy as np
    import torch
    torch.set_num_threads(1)
    rows = []
    for name in names:
        cfg = PROGRAMS[name]
        fg_step, initial, layout = fg_program(name, cfg)
        torch_step = torch_program(name, cfg, initial, layout)
        x, y = make_batch(name, cfg)
        first_fg, first_torch = fg_step(x, y), torch_step(x, y)
        if not np.isclose(first_fg, first_torch, rtol=1e-4):
            raise AssertionError(f"{name}: first-step losses differ: flowgraph "
                                 f"{first_fg:.6f}, torch {first_torch:.6f}")
        ms = interleaved_medians_ms({"flowgraph": lambda: fg_step(x, y),
                                     "torch": lambda: torch_step(x, y)}, repeats, warmup)
        row = {"program": name, "flowgraph_ms": round(ms["flowgraph"], 2),
               "torch_ms": round(ms["torch"], 2),
               "ratio": round(ms["flowgraph"] / ms["torch"], 3),
               "first_loss": round(first_fg, 5)}
        rows.append(row)
        print(f"{name:5s} flowgraph {row['flowgraph_ms']:8.2f} ms  torch "
              f"{row['torch_ms']:8.2f} ms  ratio {row['ratio']:.3f}  (first loss "
              f"{first_fg:.5f} = torch {first_torch:.5f})", flush=True)
    return rows


def run(names, repeats, warmup, out=None, in_process=True):
    """:func:`measure` the programs (each in a fresh process unless ``in_process``:
    torch's step depends on the heap the programs before it left; see
    :func:`common.rows_in_fresh_processes`) and write the table to ``out``."""
    if in_process or len(names) == 1:
        rows = measure(names, repeats, warmup)
    else:
        rows = rows_in_fresh_processes(os.path.abspath(__file__), [
            ["--programs", name, "--repeats", str(repeats), "--warmup", str(warmup),
             "--threads", "1"] for name in names])
    if out:
        write_results(rows, ["program", "flowgraph_ms", "torch_ms", "ratio", "first_loss"],
                      out, f"Training steps of whole programs, one core ({cpu_model()})",
                      notes=[f"median of {repeats} interleaved repeats after {warmup} "
                             "warm-up steps; one thread"])
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--programs", nargs="+", choices=sorted(PROGRAMS),
                   default=["char", "ptb", "rows", "cnn"])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    p.add_argument("--in-process", action="store_true",
                   help="measure every program in this process (by default each runs "
                        "in a fresh one: torch's time depends on the heap the programs "
                        "before it left)")
    p.add_argument("--rows-json", help=argparse.SUPPRESS)   # a child's rows
    args = p.parse_args(argv)
    if args.threads != 1:
        p.error("the programs are measured on one core with one thread (--threads 1)")
    pin_threads(args.threads)
    if args.rows_json:
        write_rows_json(measure(args.programs, args.repeats, args.warmup), args.rows_json)
        return None
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, {args.threads} thread(s) used")
    return run(args.programs, args.repeats, args.warmup, args.out, args.in_process)


if __name__ == "__main__":
    main()
