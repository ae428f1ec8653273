"""Where any ONNX classifier can be cut: its input and every inner float tensor of a fixed case shape.

Shapes come from ONNX shape inference, so a tensor qualifies when its first axis is the (symbolic)
batch axis and every other axis has a known size; its width is the values one case sends from the
device at that cut. Whether a cut separates the graph (nothing after it needs a tensor from before
it) is proven when the model is partitioned there (domicile.split.partition).
"""

from __future__ import annotations

import math

from domicile.models.registry import SplitSpec

_FLOAT_TYPES = (1, 10, 11)  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE
_CASE_RANK = 2  # at least [batch, values]


def split_spec(blob: bytes, input_name: str) -> SplitSpec:
    """The candidate cuts of a model (its input first, in graph order), their widths and case shapes."""
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load_from_string(blob))
    outputs = {o.name for o in model.graph.output}
    infos = {v.name: v for v in (*model.graph.input, *model.graph.value_info)}
    shapes: dict[str, tuple[int, ...]] = {}
    for name in [input_name, *(out for node in model.graph.node for out in node.output)]:
        info = infos.get(name)
        if info is None or name in outputs or name in shapes:
            continue
        tensor = info.type.tensor_type
        dims = list(tensor.shape.dim)
        if (name != input_name and tensor.elem_type not in _FLOAT_TYPES) or len(dims) < _CASE_RANK:
            continue
        if dims[0].HasField("dim_value"):  # a fixed first axis: not the batch
            continue
        case = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in dims[1:])
        if all(size > 0 for size in case):
            shapes[name] = case
    return SplitSpec(cuts=tuple(shapes), cut_widths={cut: math.prod(shape) for cut, shape in shapes.items()},
                     cut_shapes=shapes)  # fmt: skip
