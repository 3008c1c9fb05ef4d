"""TF1's ``tf.linalg`` namespace: flowgraph's linear algebra under TF 1.15's
``tf.linalg.*`` names (the same function objects). As in TF1, ``tf.linalg.transpose``
is ``tf.linalg.matrix_transpose`` (it swaps the last two axes), not ``tf.transpose``.

>>> import flowgraph as fg
>>> fg.linalg.matmul is fg.matmul, fg.linalg.transpose is fg.matrix_transpose
(True, True)
>>> with fg.Graph().as_default():
...     a = fg.constant([[1.0, 2.0], [3.0, 4.0]])
...     print(fg.Session().run(fg.linalg.matmul(a, fg.linalg.eye(2))).tolist())
[[1.0, 2.0], [3.0, 4.0]]
"""
from .api import matmul
from .contraction_ops import tensordot
from .einsum_ops import einsum
from .norm_ops import norm
from .diag_ops import matrix_diag as diag
from .diag_ops import matrix_diag_part as diag_part
from .diag_ops import trace
from .math_ops import eye
from .slicing_ops import matrix_transpose
from .slicing_ops import matrix_transpose as transpose
from .nn.activations import l2_normalize

__all__ = ["einsum", "eye", "l2_normalize", "matmul", "matrix_transpose", "norm", "tensordot",
           "transpose", "diag", "diag_part", "trace"]
