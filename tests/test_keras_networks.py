"""Keras networks: TensorFlow's own implementations of the reference networks and a user's
Keras model, through TensorFlow's converter and tf2onnx, with Keras's own preprocessing."""

from __future__ import annotations

import dataclasses
import itertools

import keras
import numpy as np
import onnx
import pytest
from PIL import Image

from pytest_aiotbench import networks
from pytest_aiotbench.networks import implementations
from pytest_aiotbench.networks.reference import PretrainedWeightsUnavailable
from pytest_aiotbench.networks.registry import register_network, unregister
from pytest_aiotbench.runner.aiot_runner import preprocess

KERAS_REFERENCE = ["resnet50", "inception_v3", "densenet121", "mobilenet_v2"]
#: The mode of ``keras.applications.imagenet_utils.preprocess_input`` each network's module
#: applies (resnet50: caffe, inception_v3 and mobilenet_v2: tf, densenet121: torch).
KERAS_MODULES = {"resnet50": keras.applications.resnet50,
                 "inception_v3": keras.applications.inception_v3,
                 "densenet121": keras.applications.densenet,
                 "mobilenet_v2": keras.applications.mobilenet_v2}


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A JPEG with structure in every channel, not square (the resize and crop matter)."""
    height, width = 300, 400
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([rows * 255 // height, cols * 255 // width,
                       (rows + cols) % 256], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    return path


@pytest.mark.parametrize("name", KERAS_REFERENCE)
def test_preprocess_scales_as_kerass_own_preprocess_input(name, photo):
    """The one ``preprocess`` with the Keras card's spec equals Keras's own function applied
    to the same resized and cropped pixels."""
    spec = dataclasses.asdict(networks.get(name, "keras").preprocessing)
    raw_spec = {**spec, "mean": (0.0,) * 3, "std": (1.0,) * 3, "channel_order": "RGB",
                "pixel_range": 255.0}
    raw = preprocess(str(photo), raw_spec)  # the crop's RGB pixels, 0..255, NHWC
    expected = KERAS_MODULES[name].preprocess_input(raw.copy())
    ours = preprocess(str(photo), spec)
    assert ours.shape == (1, spec["crop"], spec["crop"], 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


def test_a_builder_of_the_wrong_kind_is_named_with_what_to_do():
    @register_network(input_shape=(1, 8, 8, 3), num_classes=4)
    def keras_without_saying():
        inputs = keras.Input((8, 8, 3), batch_size=1)
        return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))

    @register_network(input_shape=(1, 8, 8, 3), num_classes=4, implementation="keras")
    def neither():
        return "a string"

    try:
        with pytest.raises(TypeError, match=r"'keras_without_saying' returned a Keras model, "
                                            r"but .*\(implementation='keras'\)"):
            networks.get("keras_without_saying").build(pretrained=False)
        with pytest.raises(TypeError, match=r"'neither' returned builtins.str, neither a "
                                            r"torch.nn.Module nor a Keras model"):
            networks.get("neither").build(pretrained=False)
    finally:
        unregister("keras_without_saying")
        unregister("neither")


def test_the_return_annotation_says_the_implementation():
    @register_network(input_shape=(1, 8, 8, 3), num_classes=4)
    def annotated() -> keras.Model:
        inputs = keras.Input((8, 8, 3), batch_size=1)
        return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))

    @register_network(implementation="keras")
    def default_input() -> None:
        raise AssertionError("not built here")

    try:
        card = networks.get("annotated")
        assert card.implementation == "keras" and card.label == "annotated-keras"
        assert card.preprocessing.layout == "NHWC" and card.preprocessing.crop == 8
        assert card.build(pretrained=False).output.shape == (1, 4)
        # Without an input shape: a 224x224 RGB image in Keras's layout.
        assert networks.get("default_input").input_shape == (1, 224, 224, 3)
        assert networks.get("default_input").preprocessing.resize == 256
    finally:
        unregister("annotated")
        unregister("default_input")


def test_the_keras_fingerprint_is_the_same_model_whatever_was_built_before():
    """Keras numbers unnamed layers per process: the cache key must not see that."""
    def build(seed: int):
        implementations.get("keras").seed(seed)
        inputs = keras.Input((8, 8, 3), batch_size=1)
        hidden = keras.layers.Conv2D(4, 3)(inputs)
        return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(hidden)))

    fingerprint = implementations.get("keras").fingerprint
    first = fingerprint(build(0))
    assert fingerprint(build(0)) == first  # its layers now conv2d_1, dense_1, ...
    assert fingerprint(build(1)) != first


def test_keras_pretrained_weights_that_cannot_be_had_give_a_clear_error(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(PretrainedWeightsUnavailable) as error:
        networks.get("mobilenet_v2", "keras").build(pretrained=True)
    message = str(error.value)
    assert "mobilenet_v2 (keras)" in message and "--aiot-weights=random" in message
    assert f"place it in {tmp_path / 'models'}" in message
    assert "https://storage.googleapis.com/" in message and ".h5" in message


KERAS_MODULE = '''
import keras
import tensorflow as tf
from pytest_aiotbench import Input, register_network, test_workload  # noqa: F401


@register_network(input_shape=(1, 32, 32, 3), num_classes=10, implementation="keras")
def tiny_keras():
    """A tiny Keras CNN for 32x32 images."""
    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


class Determinant(keras.layers.Layer):
    def call(self, x):
        square = tf.reshape(x[:, :4, :4, 0], (-1, 4, 4))
        return tf.reshape(tf.linalg.det(square), (-1, 1)) + keras.ops.zeros((1, 10))


@register_network(input_shape=(1, 8, 8, 3), num_classes=10, implementation="keras")
def unconvertible():
    """TFLite has no determinant."""
    inputs = keras.Input((8, 8, 3), batch_size=1)
    return keras.Model(inputs, Determinant()(inputs))


def text_model(answer):
    """ids and a mask to three scores and the pooled sum, answered as ``answer`` puts them."""
    ids = keras.Input((16,), dtype="int64", name="ids")
    mask = keras.Input((16,), dtype="int64", name="mask")
    weights = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = keras.ops.sum(keras.layers.Embedding(500, 8)(ids) * weights, 1)
    return keras.Model([ids, mask], answer(keras.layers.Dense(3)(pooled), pooled))


TEXT = [Input("ids", (1, 16), "int64", high=500), Input("mask", (1, 16), "int64", high=2)]


@register_network(inputs=TEXT, task="generic", implementation="keras")
def keras_text():
    """Two int64 inputs, two outputs (a list): ids and a mask to scores and the pooled sum."""
    return text_model(lambda scores, pooled: [scores, pooled])

'''


def test_a_keras_dict_answer_is_flattened_by_its_sorted_keys_as_tensorflow_does():
    """tf2onnx writes a dict's outputs by sorted keys (tf.nest's order) and the TFLite
    export puts its outputs in that order: the fp32 reference names them so too."""
    ids = keras.Input((4,), dtype="int64")
    pooled = keras.ops.sum(keras.layers.Embedding(10, 2)(ids), 1)
    model = keras.Model(ids, {"scores": keras.layers.Dense(3)(pooled), "pooled": pooled})
    answer = implementations.get("keras").outputs(model, [np.zeros((1, 4), np.int64)])
    assert [(name, values.shape) for name, values in answer.items()] == [
        ("pooled", (1, 2)), ("scores", (1, 3))]


def test_a_keras_network_in_a_test_module_runs_where_it_can(pytester, run_plugin):
    """As the README says: TFLite through TensorFlow's converter (with its own int8),
    ONNX Runtime through tf2onnx, the torch-only frameworks skipped saying why; a model the
    converter refuses fails in its export stage with the converter's reason, and everything
    else is measured. Several inputs of integer ids and a list of outputs go through both
    converters."""
    pytester.makepyfile(test_keras=KERAS_MODULE)
    result, document = run_plugin("-v", "-rs", "--aiot-variant=fp32,int8")
    for framework in ("tflite", "tflite-int8", "onnxruntime", "onnxruntime-int8"):
        result.stdout.fnmatch_lines([f"*test_workload?tiny_keras-keras-{framework}-local? "
                                     "PASSED*"])
    result.stdout.fnmatch_lines([
        "*SKIPPED*pytorch-mobile takes torch models only: it has no converter for a keras "
        "model*",
        "*SKIPPED*executorch takes torch models only*"])
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_workload?unconvertible-keras-tflite-local?*",
        "export stage: exporting 'unconvertible' to tflite failed: RuntimeError: TensorFlow's "
        "TFLiteConverter refused the model: tf.MatrixDeterminant has no TFLite builtin*"])
    # tf2onnx has a determinant: the model runs on ONNX Runtime all the same.
    result.stdout.fnmatch_lines(["*unconvertible-keras-onnxruntime-local? PASSED*"])
    result.assert_outcomes(passed=10, skipped=12, errors=2)
    rows = {(w["network"], w["framework"], w["variant"]): w
            for w in document["devices"]["local"]["workloads"]}
    tiny = rows[("tiny_keras", "tflite", "fp32")]
    assert tiny["implementation"] == "keras" and tiny["status"] == "passed"
    # 32x32x3 -> 8 (3x3) ; 16x16x8 depthwise 3x3 ; 16x16x8 -> 16 (1x1) ; 16 -> 10
    assert tiny["macs"] == 32 * 32 * 8 * 27 + 16 * 16 * 8 * 9 + 16 * 16 * 16 * 8 + 16 * 10
    assert rows[("tiny_keras", "tflite", "int8")]["validity"]["passed"]
    assert "tf2onnx" in " ".join(rows[("tiny_keras", "onnxruntime", "fp32")]["notes"])
    assert rows[("unconvertible", "tflite", "fp32")]["stage"] == "export"
    # Each output checked in the model's order (TFLiteConverter wrote the list's pooled sum
    # first until the export put them back).
    for framework, variant in itertools.product(("tflite", "onnxruntime"), ("fp32", "int8")):
        text = rows[("keras_text", framework, variant)]
        assert [check["name"] for check in text["validity"]["outputs"]] == [
            "output_0", "output_1"], text["id"]
        assert text["validity"]["passed"] and text["unit"] == "inference", text["id"]
    # ids -> 8 (an embedding reads, it multiplies nothing) ; 8 -> 3
    assert rows[("keras_text", "onnxruntime", "fp32")]["macs"] == 8 * 3
    onnx_file = rows[("keras_text", "onnxruntime", "fp32")]["artifact"]["path"]
    assert [(one.name, one.type.tensor_type.elem_type) for one in
            onnx.load(onnx_file).graph.input] == [("input_0", onnx.TensorProto.INT64),
                                                  ("input_1", onnx.TensorProto.INT64)]


def test_torch_and_keras_implementations_side_by_side(pytester, run_plugin, digits_set):
    """The reference MobileNetV2 in both implementations, in one run, with the labelled
    images decoded and preprocessed on the device: Keras's on TFLite (NHWC, Keras's [-1, 1]),
    torchvision's on ONNX Runtime (its TFLite export takes 37 s on CI's cores, and torch's
    TFLite route is the small networks' test)."""
    # Collecting the reference suite registers no network: this process can do it.
    listed, _ = run_plugin("--pyargs", "pytest_aiotbench.suite", "--collect-only",
                           "--aiot-implementation=keras", json_report=False, in_process=True)
    listed.stdout.fnmatch_lines(["*no keras implementation of squeezenet1_1, mnasnet1_0: not "
                                 "run in keras"])
    collected = [line for line in listed.stdout.lines if "test_workload[" in line]
    assert len(collected) == 4 * 4 and all("-keras-" in line for line in collected)
    result, document = run_plugin("--pyargs", "pytest_aiotbench.suite", "-v",
                                  "--aiot-network=mobilenet_v2",
                                  "--aiot-framework=tflite,onnxruntime",
                                  "--aiot-implementation=torch,keras", "-k",
                                  "keras-tflite or not (keras or tflite)",
                                  f"--aiot-dataset={digits_set['val']}", "--aiot-images=10")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_workload?mobilenet_v2-onnxruntime-local? PASSED*",
                                 "*test_workload?mobilenet_v2-keras-tflite-local? PASSED*"],
                                consecutive=False)
    table = [line.split()[:4] for line in result.stdout.lines
             if line.startswith("mobilenet_v2 ")]
    assert sorted(table) == [["mobilenet_v2", "keras", "tflite", "fp32"],
                             ["mobilenet_v2", "torch", "onnxruntime", "fp32"]]
    rows = {w["implementation"]: w for w in document["devices"]["local"]["workloads"]}
    assert set(rows) == {"torch", "keras"}
    for row in rows.values():
        assert row["validity"]["passed"] and row["images"] == 10 and row["top1"] is not None
        assert row["macs"] / 0.30e9 == pytest.approx(1, abs=0.02)
    assert rows["keras"]["artifact"]["sha256"] != rows["torch"]["artifact"]["sha256"]
    # keras.applications leave the batch open; the file takes batch 1, as the native
    # runner's TFLite backend needs.
    from ai_edge_litert.interpreter import Interpreter

    keras_file = Interpreter(model_path=rows["keras"]["artifact"]["path"])
    assert list(keras_file.get_input_details()[0]["shape_signature"]) == [1, 224, 224, 3]
