"""The six AIoTBench reference networks, from torchvision.

Heavy: ResNet50, InceptionV3, DenseNet121. Light: SqueezeNet 1.1, MobileNetV2, MnasNet 1.0.
The published multiply-accumulates are the figures the FLOPs count is checked against.

Registering them imports nothing heavy: ``torchvision.models`` pulls in torch and
torch._dynamo (about 5 s), which every pytest process would pay just to list the networks.
It is imported when a network is built; the cards carry its published top-1 as constants
(a test holds them equal to torchvision's weights metadata).
"""

from __future__ import annotations

import os
from typing import Any

from pytest_aiotbench.networks.card import (
    NetworkCard,
    Preprocessing,
    PretrainedWeightsUnavailable,
    image_input,
)


def _torchvision_network(
    name: str, builder_name: str, weights_name: str, published_gmacs: float, top1_percent: float,
    input_size: int = 224, resize: int = 256, **random_kwargs: Any,
) -> NetworkCard:
    def build(pretrained: bool) -> Any:
        from pytest_aiotbench.networks.torchvision_compat import torchvision_models

        models = torchvision_models()
        builder = getattr(models, builder_name)
        if not pretrained:
            return builder(weights=None, **random_kwargs)
        weights = getattr(models, weights_name).IMAGENET1K_V1
        try:
            return builder(weights=weights)
        except Exception as exc:  # no network, a proxy, a truncated or tampered file
            raise PretrainedWeightsUnavailable(_pretrained_help(name, weights, exc)) from exc

    return NetworkCard(
        name=name,
        builder=build,
        inputs=image_input((1, 3, input_size, input_size)),
        preprocessing=Preprocessing(resize=resize, crop=input_size),
        published_gmacs=published_gmacs,
        reference_top1=top1_percent / 100,
        weights=f"torchvision {weights_name}.IMAGENET1K_V1",
        has_pretrained=True,
        origin="reference",
    )


def _pretrained_help(name: str, weights: Any, exc: Exception) -> str:
    import torch.hub

    target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    return (
        f"pretrained weights for {name} could not be loaded ({type(exc).__name__}: {exc}). "
        f"Download {weights.url} on a machine with network access and place it at {target} "
        f"(or set TORCH_HOME), or run with --aiot-weights=random to benchmark random weights")


#: Published multiply-accumulates (G) and the ImageNet top-1 (%) of torchvision's
#: IMAGENET1K_V1 weights, as their ``meta["_metrics"]["ImageNet-1K"]["acc@1"]`` gives it.
REFERENCE_NETWORKS = [
    _torchvision_network("resnet50", "resnet50", "ResNet50_Weights", 4.09, 76.13),
    _torchvision_network("inception_v3", "inception_v3", "Inception_V3_Weights", 5.71, 77.294,
                         input_size=299, resize=342, aux_logits=True, init_weights=True),
    _torchvision_network("densenet121", "densenet121", "DenseNet121_Weights", 2.83, 74.434),
    _torchvision_network("squeezenet1_1", "squeezenet1_1", "SqueezeNet1_1_Weights", 0.35,
                         58.178),
    _torchvision_network("mobilenet_v2", "mobilenet_v2", "MobileNet_V2_Weights", 0.30, 71.878),
    _torchvision_network("mnasnet1_0", "mnasnet1_0", "MNASNet1_0_Weights", 0.31, 73.456),
]
