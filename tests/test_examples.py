"""The examples run and learn (tiny settings, in-process)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import char_rnn  # noqa: E402
import compare_cells  # noqa: E402
import corpus  # noqa: E402
import data_parallel  # noqa: E402
import hello_char_rnn  # noqa: E402
import mnist_cnn  # noqa: E402
import ptb_word_lm  # noqa: E402
import relu_layer  # noqa: E402
import sequence_classifier  # noqa: E402
from flowgraph.errors import CheckpointError  # noqa: E402

TINY = ["--hidden", "24", "--seq-len", "10", "--batch", "8", "--max-chars", "30000",
        "--lr", "0.02", "--sample-every", "20", "--sample-length", "20", "--eval-batches",
        "3"]


def test_char_rnn_loss_falls_and_resume_continues(tmp_path, capsys):
    ckpt = str(tmp_path / "model.npz")
    result = char_rnn.main(TINY + ["--steps", "40", "--checkpoint", ckpt])
    out = capsys.readouterr().out
    losses = result.losses
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5   # it learns
    assert np.mean(losses[-5:]) < result.baseline              # beats the unigram model
    assert "unigram-entropy baseline" in out and "chars/s" in out
    assert "--- sample at step 20 ---" in out and "final loss:" in out
    assert os.path.exists(ckpt)

    resumed = char_rnn.main(TINY + ["--steps", "5", "--checkpoint", ckpt, "--resume"])
    out = capsys.readouterr().out
    assert "resumed from" in out and "at step 40" in out
    assert "(mean of last 5 steps)" in out          # not "20" when only 5 ran
    # continuing from the trained weights: far below the untrained first loss
    assert np.mean(resumed.losses) < losses[0] - 0.5

    with pytest.raises(CheckpointError, match="expected shape"):
        char_rnn.main(TINY[2:] + ["--hidden", "16", "--steps", "1", "--checkpoint", ckpt,
                                  "--resume"])


def test_char_rnn_trainer_carries_the_state_between_batches():
    text = corpus.stdlib_text(5000)
    vocab = corpus.Vocabulary(text)
    import flowgraph as fg
    with fg.Graph().as_default() as graph:
        model = char_rnn.build_model(len(vocab), "gru", 2, 8, seq_len=5, batch=3)
    trainer = char_rnn.Trainer(fg.Session(graph), model)
    batcher = corpus.StreamBatcher(vocab.encode(text), 3, 5)
    x, y, fresh = batcher(0)
    assert fresh
    trainer.train_step(x, y, fresh)
    first = [s.copy() for s in trainer.state]
    assert all(s.shape == (3, 8) and np.abs(s).sum() > 0 for s in first)
    x2, _, fresh2 = batcher(1)
    assert not fresh2 and np.array_equal(batcher.inputs[:, 5:10], x2)
    trainer.train_step(*batcher(1))
    assert not np.allclose(trainer.state[0], first[0])


def test_stream_batcher_targets_are_next_characters():
    ids = np.arange(100, dtype=np.int32)
    b = corpus.StreamBatcher(ids, 4, 6)
    x, y, _ = b(1)
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(x[:, 0], [6, 30, 54, 78])
    assert corpus.unigram_entropy(np.array([0, 1, 0, 1])) == pytest.approx(np.log(2))


def test_compare_cells_table(capsys):
    rows = compare_cells.main(["--cells", "lstm", "rnn", "--layers", "1", "2", "--sizes",
                               "8", "--steps", "3", "--max-chars", "20000", "--seq-len",
                               "6", "--eval-batches", "2"])
    assert [(r[0], r[1]) for r in rows] == [("lstm", 1), ("rnn", 1), ("lstm", 2), ("rnn", 2)]
    assert all(np.isfinite(r[5]) and r[5] < 5.0 for r in rows)
    assert "| LSTM | 2 | 8 |" in capsys.readouterr().out


def test_relu_layer_matches_numpy(capsys):
    h, grad = relu_layer.main()
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    W = np.array([[1.0, -1.0], [0.5, 2.0], [0.5, 0.5]])
    pre = x @ W + [0.1, -0.1]
    np.testing.assert_allclose(h, np.maximum(pre, 0), rtol=1e-6)
    np.testing.assert_allclose(grad, x.T @ (pre > 0).astype(float), rtol=1e-6)


def test_hello_char_rnn_learns_hello():
    losses, text = hello_char_rnn.main(steps=80, verbose=False)
    assert text == "hello"
    assert losses[-1] < 0.05 < losses[0]


def test_sequence_classifier_beats_chance():
    acc = sequence_classifier.main(steps=5, train_steps=100, batch=32, verbose=False)
    assert acc > 0.8


def test_char_rnn_trains_on_a_text_file(tmp_path, capsys):
    text_file = tmp_path / "abc.txt"
    text_file.write_text("abcd" * 400, encoding="utf-8")
    result = char_rnn.main(["--text", str(text_file), "--cell", "gru", "--layers", "2",
                            "--hidden", "12", "--seq-len", "6", "--batch", "4", "--steps",
                            "40", "--lr", "0.05", "--sample-every", "0", "--sample-length",
                            "8", "--eval-batches", "2", "--checkpoint",
                            str(tmp_path / "abc.npz"), "--quiet"])
    out = capsys.readouterr().out
    assert "vocabulary 4" in out and f"{text_file}" in out
    # a deterministic cycle: the model ends far below the unigram entropy log(4)
    assert result.valid_loss < 0.5 * result.baseline


def test_ptb_word_lm_learns_and_the_eval_models_share_its_weights(capsys):
    """The TF1 PTB tutorial's program at toy size: training perplexity falls across
    epochs, the validation model (reuse=True) scores far below the uniform vocabulary,
    and the learning rate decays as the tutorial's schedule says."""
    result = ptb_word_lm.main(["--max-words", "12000", "--vocab-size", "300",
                               "--hidden-size", "24", "--num-steps", "5", "--batch-size",
                               "8", "--max-max-epoch", "2", "--max-epoch", "1",
                               "--quiet"])
    out = capsys.readouterr().out
    assert "Epoch: 1 Learning rate: 1.000" in out and "Epoch: 2 Learning rate: 0.500" in out
    assert result.train[1] < result.train[0]
    # 300 words: an untrained shared model would score about 300; a trained one far less
    assert max(result.valid) < 150 and result.test < 150
    assert "Test Perplexity:" in out


def test_word_corpus_and_ptb_iterator():
    words = corpus.stdlib_words(3000)
    vocab = corpus.WordVocabulary(words, 50)
    ids = vocab.encode(words)
    assert len(vocab) == 50 and vocab.words[0] == "<unk>" and ids.max() == 49
    assert vocab.decode(ids[:5]) == [w if w in vocab.index else "<unk>" for w in words[:5]]
    x, y = next(corpus.ptb_iterator(ids, 4, 6))
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_char_rnn_loop_trains_like_the_unrolled_graph(tmp_path, capsys):
    """--loop (dynamic_rnn) computes the same steps as the unrolled graph: the same
    losses, step for step, from the same seed."""
    common = TINY + ["--steps", "6", "--sample-every", "0", "--sample-length", "5",
                     "--quiet"]
    unrolled = char_rnn.main(common + ["--checkpoint", str(tmp_path / "a.npz")])
    loop = char_rnn.main(common + ["--checkpoint", str(tmp_path / "b.npz"), "--loop"])
    capsys.readouterr()
    np.testing.assert_allclose(loop.losses, unrolled.losses, rtol=1e-4)
    assert loop.losses[-1] < loop.losses[0]


def test_data_parallel_example_runs_in_one_process_even_with_no_timed_step(capsys):
    """`python examples/data_parallel.py --steps 2` (fewer steps than --warmup) trains
    and says no step was timed, instead of failing on its timing summary."""
    history = data_parallel.main(["--steps", "2", "--hidden", "8", "--seq", "4"])
    out = capsys.readouterr().out
    assert [n for n, _ in history] == [0, 1]
    assert "1 rank(s): no step timed (--steps 2 <= --warmup 3)" in out
    data_parallel.main(["--steps", "5", "--hidden", "8", "--seq", "4"])
    assert "steps/s (median of 2 steps" in capsys.readouterr().out


def test_mnist_cnn_example_learns_and_prints_as_the_tutorial(capsys):
    """`python examples/mnist_cnn.py` at toy size: the CNN tutorial's output lines, the
    loss falls, and the synthetic digits are learnt far above chance (0.1)."""
    result = mnist_cnn.main(["--steps", "30", "--batch", "16", "--eval-every", "10",
                             "--train-size", "400", "--test-size", "200"])
    out = capsys.readouterr().out
    assert "step 0, training accuracy" in out and "step 20, training accuracy" in out
    assert "test accuracy" in out and "first step" in out and "ms/step" in out
    assert len(result.losses) == 30 and len(result.train_accuracy) == 3
    assert np.mean(result.losses[-5:]) < 0.5 * np.mean(result.losses[:3])
    assert result.test_accuracy > 0.5
