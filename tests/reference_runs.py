"""The reference path and the compiled path, side by side, for tests that compare them.

``REF`` interprets the graph op by op with NumPy (the specification); ``OPT`` compiles
it, eagerly, so that a test can look at the plan's generated kernels right after a run
(tests/test_tiering.py covers the background and never modes).

>>> import flowgraph as fg
>>> with fg.Graph().as_default() as g:
...     y = fg.constant([1.0, 2.0]) * 3.0
...     reference, compiled = run_both([y], graph=g)
>>> [r.tolist() for r in reference] == [c.tolist() for c in compiled]
True
"""
import flowgraph as fg

REF = fg.SessionConfig(optimize=False)
OPT = fg.SessionConfig(optimize=True, compile="eager")


def run_both(fetches, feed_dict=None, graph=None):
    """``[reference results, compiled results]`` of one ``Session.run``."""
    out = []
    for config in (REF, OPT):
        with fg.Session(graph, config) as sess:
            out.append(sess.run(fetches, feed_dict))
    return out
