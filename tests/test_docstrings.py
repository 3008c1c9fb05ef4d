"""The runnable examples in the foundation's docstrings run and print what they show."""
import doctest
import importlib

import pytest

MODULES = ["flowgraph.api", "flowgraph.autodiff", "flowgraph.devices", "flowgraph.dtypes",
           "flowgraph.errors", "flowgraph.executor", "flowgraph.explain", "flowgraph.graph",
           "flowgraph.nest",
           "flowgraph.ops", "flowgraph.placement", "flowgraph.session", "flowgraph.shapes",
           "flowgraph.variables", "flowgraph.visualize", "flowgraph.nn.losses",
           "flowgraph.control_flow", "flowgraph.nn.dynamic",
           "flowgraph.testing.gradcheck", "flowgraph.testing.compare",
           "flowgraph.testing.strategies", "flowgraph.train.saver", "kernels.cache_auth",
           "kernels.sealed_cache", "flowgraph.philox", "flowgraph.random_ops",
           "flowgraph.initializers", "flowgraph.variable_scopes", "flowgraph.nn.dropouts",
           "kernels.cpu.philox"]
# TF1's more ops, losses, optimizers and schedules (issue 14)
MODULES += ["flowgraph.array_ops", "flowgraph.nn.layers", "flowgraph.train.optimizers",
            "flowgraph.train.schedules"]
MODULES += ["flowgraph.distributed.steps"]
MODULES += ["flowgraph.tiering"]
MODULES += ["kernels.cpu.softmax_xent", "kernels.cpu.scatter"]
# the sparse embedding gradient's clipping, the float32 vector math (issue 16)
MODULES += ["flowgraph.train.clip", "kernels.cpu.vmath"]
# one compiled pipeline for every placement (issue 11)
MODULES += ["flowgraph.compiler", "flowgraph.placed_plan", "flowgraph.backends",
            "flowgraph.backends.cpu", "flowgraph.backends.cuda",
            "flowgraph.backends.cpu_steps", "flowgraph.buffers", "flowgraph.schedule",
            "flowgraph.passes"]
# compiled loops (issue 13)
MODULES += ["flowgraph.loop_passes", "flowgraph.loop_step", "flowgraph.loop_rows"]
# facts about an op live on its Primitive (issue 11)
MODULES += ["flowgraph.primitives", "kernels.scalar", "kernels.cpu.ufuncs"]
# TF1's TensorShape / Dimension (Tensor.get_shape())
MODULES += ["flowgraph.tensor_shape", "flowgraph.nn.activations", "flowgraph.nn.cells",
            "flowgraph.nn.rnn_cell"]
# TF1's tf.layers and tf.losses
MODULES += ["flowgraph.layers", "flowgraph.losses", "flowgraph.math_ops",
            "flowgraph.slicing_ops", "flowgraph.nn.evaluation"]
# the API audit: TF1's operators, collections, and the write-conflict check
MODULES += ["flowgraph.tf1_operators", "flowgraph.graph_collections",
            "flowgraph.write_conflicts", "flowgraph.contrib"]
# TF1's segment sums (tf.case's example is in flowgraph.control_flow)
MODULES += ["flowgraph.segment_ops"]
# TF1's convolution and pooling
MODULES += ["flowgraph.nn.conv"]
# the image-patches primitives under conv2d (im2col, col2im) and their CPU kernels
MODULES += ["flowgraph.patches_ops", "kernels.cpu.patches"]
# TF1's depthwise/separable convolutions and tf.image (resizers, cheap image ops)
MODULES += ["flowgraph.nn.depthwise", "flowgraph.image", "flowgraph.image.resize",
            "flowgraph.image.basic"]
# TF1's tf.nn.top_k and tf.boolean_mask
MODULES += ["flowgraph.selection_ops"]
# TF1's tf.Print
MODULES += ["flowgraph.logging_ops"]
# TF1's tf.tensordot
MODULES += ["flowgraph.contraction_ops"]
# TF1's batch normalization layer and weight regularizers
MODULES += ["flowgraph.batch_norm", "flowgraph.regularizers"]
# TF1.15's tf.math, tf.random, tf.linalg namespaces
MODULES += ["flowgraph.math", "flowgraph.random", "flowgraph.linalg"]
# TF1's tf.einsum
MODULES += ["flowgraph.einsum_ops"]
# TF1's tf.norm, tf.sort/argsort, tf.linspace, tf.meshgrid
MODULES += ["flowgraph.norm_ops", "flowgraph.sort_ops", "flowgraph.grid_ops"]
MODULES += ["flowgraph.safe_math_ops", "flowgraph.diag_ops", "flowgraph.math_helpers"]
# TF1's sampling ops, candidate samplers and sampled losses
MODULES += ["flowgraph.sampling_ops", "flowgraph.candidate_sampling_ops",
            "flowgraph.nn.sampled_losses"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, fresh_graph):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring examples of {name} failed"
