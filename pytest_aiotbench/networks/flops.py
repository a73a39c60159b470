"""Count a network's multiply-accumulates from the model itself.

The convention of the published figures (ResNet50: 4.09 G): the multiply-accumulates of the
convolutions and matrix products, not of activations, normalisation or pooling.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def torch_macs(model: Any, example: tuple[Any, ...]) -> int:
    """torch's FlopCounterMode counts 2 FLOPs per multiply-accumulate of exactly those.
    Attention is counted as its products: torch's fused paths (TransformerEncoderLayer's and
    MultiheadAttention's fast path, one opaque op each) are turned off while counting, and
    the CPU's fused scaled-dot-product attention, which the counter does not know, is
    counted as its two matrix products; a network then counts the same as its hand-written
    equivalent."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with (torch.no_grad(), _without_dynamo_import(), _unfused_attention(),
          FlopCounterMode(display=False, custom_mapping=_attention_formulas()) as counter):
        model(*example)
    return counter.get_total_flops() // 2


@contextlib.contextmanager
def _unfused_attention() -> Iterator[None]:
    """torch.backends.mha's fast path off for the block (where this torch has the switch)."""
    import torch

    switch = getattr(torch.backends, "mha", None)
    if switch is None or not hasattr(switch, "set_fastpath_enabled"):
        yield
        return
    before = switch.get_fastpath_enabled()
    switch.set_fastpath_enabled(False)
    try:
        yield
    finally:
        switch.set_fastpath_enabled(before)


def _attention_formulas() -> dict[Any, Any]:
    """FLOP formulas for the fused attention ops the counter lacks: Q·Kᵀ and the weights · V,
    2 FLOPs per multiply-accumulate, as its own formula for the GPU kernels counts them."""
    import torch
    from torch.utils import flop_counter

    def two_products(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    ops = [getattr(torch.ops.aten, name, None)
           for name in ("_scaled_dot_product_flash_attention_for_cpu",)]
    return {op: two_products for op in ops
            if op is not None and op not in flop_counter.flop_registry}


@contextlib.contextmanager
def _without_dynamo_import() -> Iterator[None]:
    """Count without importing torch._dynamo (about 1.6 s, in every session that prepares a
    torch network). torch wraps a dispatch mode's ``__torch_dispatch__`` in
    ``torch._compile._disable_dynamo``, which imports torch._dynamo on the first call only
    to keep dynamo from tracing into the mode, and caches the result on the function as
    ``__dynamo_disable``. Where dynamo is not imported nothing is being traced, so the plain
    function is that result; the cache is cleared afterwards, so that a later use under
    dynamo gets the real one. Where torch's internals differ, nothing is changed (and the
    count only takes longer)."""
    from torch.utils import flop_counter

    mode = getattr(flop_counter, "_FlopCounterMode", None)
    raw = getattr(mode, "__dict__", {}).get("__torch_dispatch__")
    dispatch = getattr(raw, "__wrapped__", None)
    if (dispatch is None or "torch._dynamo" in sys.modules
            or hasattr(dispatch, _DYNAMO_DISABLE_CACHE)):
        yield
        return
    setattr(dispatch, _DYNAMO_DISABLE_CACHE, dispatch)
    try:
        yield
    finally:
        if getattr(dispatch, _DYNAMO_DISABLE_CACHE, None) is dispatch:
            delattr(dispatch, _DYNAMO_DISABLE_CACHE)


#: The attribute ``torch._compile._disable_dynamo`` caches its wrapped function in.
_DYNAMO_DISABLE_CACHE = "__dynamo_disable"


def keras_macs(call: Callable[..., Any], specs: Sequence[Any]) -> int:
    """A Keras model's ``call`` traced into a TensorFlow graph at its inputs' specs (so any
    Keras model counts: functional, sequential or subclassed), then summed over the
    convolution and matrix product operations from their static shapes."""
    import tensorflow as tf

    traced = tf.function(call).get_concrete_function(*specs)
    return sum(_operation_macs(operation) for operation in traced.graph.get_operations())


def _operation_macs(operation: Any) -> int:
    kind = operation.type
    if kind not in ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"):
        return 0
    output = operation.outputs[0].shape.as_list()
    if kind == "Conv2D":  # filter [h, w, in, out]: each output element reads h*w*in inputs
        kernel_h, kernel_w, channels_in, _ = operation.inputs[1].shape.as_list()
        return math.prod(output) * kernel_h * kernel_w * channels_in
    if kind == "DepthwiseConv2dNative":  # each output element reads h*w inputs
        kernel_h, kernel_w = operation.inputs[1].shape.as_list()[:2]
        return math.prod(output) * kernel_h * kernel_w
    left = operation.inputs[0].shape.as_list()
    transposed = operation.get_attr("transpose_a" if kind == "MatMul" else "adj_x")
    inner = left[-2] if transposed else left[-1]
    return math.prod(output) * inner
