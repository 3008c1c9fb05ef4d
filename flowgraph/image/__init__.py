"""TF1's ``tf.image`` namespace: the resizers (:mod:`flowgraph.image.resize`: bilinear
and nearest-neighbour with TF1's exact coordinates) and the cheap image ops
(:mod:`flowgraph.image.basic`), all compositions of existing ops, so their gradients
to any order, kernels and placement come from those ops. ``extract_image_patches`` is
TF1's ``tf.image.extract_image_patches`` (:mod:`flowgraph.nn.conv`)."""
from ..nn.conv import extract_image_patches
from .basic import (central_crop, convert_image_dtype, crop_to_bounding_box,
                    flip_left_right, flip_up_down, pad_to_bounding_box,
                    per_image_standardization, rgb_to_grayscale)
from .resize import ResizeMethod, resize_bilinear, resize_images, resize_nearest_neighbor

__all__ = ["ResizeMethod", "resize_images", "resize_bilinear", "resize_nearest_neighbor",
           "flip_left_right", "flip_up_down", "per_image_standardization", "central_crop",
           "pad_to_bounding_box", "crop_to_bounding_box", "convert_image_dtype",
           "rgb_to_grayscale", "extract_image_patches"]
