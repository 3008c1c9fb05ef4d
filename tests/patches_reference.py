"""Naive loops for the image-patches primitives (im2col and col2im), written
independently of :mod:`flowgraph.ops` (the specification the tests check the
reference kernels, the CPU and GPU kernels and the graph functions against), and a
Hypothesis strategy of geometries where every window fits. A module without tests, so
the Hypothesis cases of test_ops_forward and test_gradients can import it."""
import numpy as np
from hypothesis import strategies as st


def naive_patches(x, ksizes, strides, rates, pads):
    (kh, kw), (sh, sw), (dh, dw), (pt, pb, pl, pr) = ksizes, strides, rates, pads
    n, h, w, c = x.shape
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, oh, ow, kh * kw * c), x.dtype)
    for oy in range(oh):
        for ox in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, q = oy * sh - pt + i * dh, ox * sw - pl + j * dw
                    if 0 <= r < h and 0 <= q < w:
                        t = i * kw + j
                        out[:, oy, ox, t * c:(t + 1) * c] = x[:, r, q, :]
    return out


def naive_col2im(g, image, ksizes, strides, rates, pads):
    (kh, kw), (sh, sw), (dh, dw), (pt, _, pl, _) = ksizes, strides, rates, pads
    n, oh, ow, k = g.shape
    c = k // (kh * kw)
    out = np.zeros((n, *image, c), np.float64)
    for oy in range(oh):
        for ox in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, q = oy * sh - pt + i * dh, ox * sw - pl + j * dw
                    if 0 <= r < image[0] and 0 <= q < image[1]:
                        t = i * kw + j
                        out[:, r, q, :] += g[:, oy, ox, t * c:(t + 1) * c]
    return out.astype(g.dtype)


@st.composite
def geometries(draw, max_side=6, max_c=3):
    """``(x shape, ksizes, strides, rates, pads)`` where every window fits."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    hw = []
    for a in range(2):
        span = (k[a] - 1) * d[a] + 1
        least = max(1, span - pads[2 * a] - pads[2 * a + 1])
        hw.append(draw(st.integers(least, max(least, max_side))))
    shape = (draw(st.integers(1, 2)), *hw, draw(st.integers(1, max_c)))
    return shape, k, s, d, pads
