"""The reference networks in TensorFlow's own implementation, from ``keras.applications``,
as AIoTBench ran TensorFlow's ResNet50 on TFLite.

Keras has four of the six: ResNet50, InceptionV3, DenseNet121, MobileNetV2. It has no
SqueezeNet and no MnasNet, and a Keras port of our own would not be TensorFlow's
implementation, so those two run in torch only (``--aiot-implementation=keras`` says so).
Each network takes its inputs as Keras's weights expect them (``card.KERAS_*``) and answers
logits, as the torch ones do (Keras's default softmax left out: it has no weights and would
hide differences from the fp32 check).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any

from pytest_aiotbench.networks.card import (
    KERAS_CAFFE,
    KERAS_TF,
    KERAS_TORCH,
    NetworkCard,
    Preprocessing,
    PretrainedWeightsUnavailable,
    image_input,
)


def _keras_network(name: str, application: str, preprocessing: Preprocessing,
                   published_gmacs: float, top1: float, input_size: int = 224) -> NetworkCard:
    def build(pretrained: bool) -> Any:
        import keras

        make = getattr(keras.applications, application)
        if not pretrained:
            return _depthwise_drawn_by_fan_in(make(weights=None, classifier_activation=None))
        try:
            return make(weights="imagenet", classifier_activation=None)
        except Exception as exc:  # no network, a proxy, a truncated or tampered file
            raise PretrainedWeightsUnavailable(_pretrained_help(name, exc)) from exc

    return NetworkCard(
        name=name,
        builder=build,
        inputs=image_input((1, input_size, input_size, 3)),
        preprocessing=preprocessing,
        implementation="keras",
        published_gmacs=published_gmacs,
        reference_top1=top1,
        weights=f"keras.applications.{application}(weights='imagenet')",
        has_pretrained=True,
        origin="reference",
    )


def _depthwise_drawn_by_fan_in(model: Any) -> Any:
    """Random depthwise kernels drawn He-normal over their true fan-in (kernel height x
    width). Keras's default initialiser counts a depthwise kernel's fan-in as a full
    convolution's, too small by the square root of its channels: random MobileNetV2 logits
    then vanish (1e-11) and leave nothing for the checks to compare."""
    import keras

    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            height, width = layer.kernel.shape[:2]
            layer.kernel.assign(keras.random.normal(layer.kernel.shape,
                                                    stddev=math.sqrt(2.0 / (height * width))))
    return model


def _pretrained_help(name: str, exc: Exception) -> str:
    found = re.search(r"https?://\S+?\.h5", str(exc))
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    where = os.path.join(home, "models")
    what = (f"Download {found.group(0)} on a machine with network access and place it in "
            f"{where}" if found else f"Place Keras's weights file for it in {where}")
    return (f"pretrained weights for {name} (keras) could not be loaded "
            f"({type(exc).__name__}: {exc}). {what} (or set KERAS_HOME), or run with "
            "--aiot-weights=random to benchmark random weights")


#: Published multiply-accumulates (G) and Keras's published ImageNet top-1 of its weights.
KERAS_NETWORKS = [
    _keras_network("resnet50", "ResNet50", KERAS_CAFFE, 3.86, 0.749),
    _keras_network("inception_v3", "InceptionV3",
                   dataclasses.replace(KERAS_TF, resize=342, crop=299),
                   5.71, 0.779, input_size=299),
    _keras_network("densenet121", "DenseNet121", KERAS_TORCH, 2.83, 0.750),
    _keras_network("mobilenet_v2", "MobileNetV2", KERAS_TF, 0.30, 0.713),
]
