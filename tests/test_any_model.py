"""Any model, not only one-image classifiers: inputs declared with their dtypes, outputs as
the model returns them (a tensor, a tuple, a dict), each checked on its own scale, each
network scored by its task."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pytest_aiotbench import Input, tasks
from pytest_aiotbench.artifacts.prepare import BuildError, make_probes, prepare_network
from pytest_aiotbench.measure import compare
from pytest_aiotbench.networks import implementations, registry
from pytest_aiotbench.networks.card import NetworkCard, Output, image_input
from pytest_aiotbench.networks.implementations import named_outputs
from pytest_aiotbench.runner.protocol import DTYPES

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "conftest_examples" / "any_model" / "test_any_model.py"
#: The issue's three: two int64 inputs, a tuple of outputs, a dict with a map.
BAR_NETWORKS = "text_classifier,detection_head,tiny_segmenter"


# ------------------------------------------------------------------------- inputs
def test_the_card_and_the_protocol_name_the_same_dtypes():
    from pytest_aiotbench.networks.card import DTYPES as CARD_DTYPES

    assert CARD_DTYPES == DTYPES


@pytest.mark.parametrize(("arguments", "problem"), [
    (("ids", (1, 8), "int64"), "needs high="),
    (("ids", (1, 8), "int65"), "unknown dtype 'int65'"),
    (("ids", (1, 8), "int32", 5, 5), "low (5) must be below high (5)"),
    (("input ids", (1, 8), "int64", 0, 9), "must be a Python identifier"),
    (("x", (1, 0), "float32"), "must be positive sizes"),
])
def test_an_input_that_cannot_be_drawn_is_refused_naming_it(arguments, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        Input(*arguments)


def test_probes_are_drawn_per_input_in_its_dtype_and_range():
    card = NetworkCard("text", lambda pretrained: None, inputs=(
        Input("ids", (1, 16), "int64", low=5, high=9), Input("mask", (1, 16), "bool"),
        Input("audio", (1, 100), "float32", low=-2.0, high=2.0),
        Input("pixels", (1, 3, 4, 4), "uint8")))
    ids, mask, audio, pixels = make_probes(card, 50, seed=0)
    assert ids.dtype == np.int64 and ids.shape == (50, 16)
    assert set(np.unique(ids)) == {5, 6, 7, 8}
    assert mask.dtype == np.bool_ and set(np.unique(mask)) == {False, True}
    assert audio.dtype == np.float32 and -2 <= audio.min() < -1.9 and 1.9 < audio.max() < 2
    assert pixels.dtype == np.uint8 and pixels.max() > 250
    again = make_probes(card, 50, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (ids, mask, audio, pixels),
                                                    strict=True))


def test_the_short_form_draws_the_images_it_always_drew():
    """The probes of an input_shape= card are the normalised pixels of before: the fp32
    references and cached artifacts of every classifier stay what they were."""
    card = NetworkCard("cnn", lambda pretrained: None, inputs=image_input((1, 3, 8, 8)))
    (images,) = make_probes(card, 2, seed=3)
    rng = np.random.default_rng([3, 1])
    pixels = rng.random((2, 3, 8, 8), dtype=np.float32)
    mean = np.asarray(card.preprocessing.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(card.preprocessing.std, np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(images, (pixels - mean) / std)
    assert card.short_form and card.takes_images


def test_registration_refuses_what_it_cannot_take():
    def builder() -> torch.nn.Module:
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="not both"):
        registry.register_network("both_forms", input_shape=(1, 3, 8, 8),
                                  inputs=[Input("x", (1, 3, 8, 8))])(builder)
    with pytest.raises(ValueError, match="input names must differ"):
        registry.register_network("twice", inputs=[Input("x", (1, 4)),
                                                   Input("x", (1, 4))])(builder)
    with pytest.raises(tasks.UnknownTaskError, match="known tasks: classification, "
                                                     "segmentation, generic"):
        registry.register_network("detector", task="detection")(builder)
    assert "both_forms" not in registry.names() and "twice" not in registry.names()


class SmallEmbedding(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids).mean(1)


def test_ids_past_the_embedding_are_a_clear_error_naming_the_input(tmp_path):
    card = NetworkCard("too_many_ids", lambda pretrained: SmallEmbedding(),
                       inputs=(Input("ids", (1, 6), "int64", high=1000),))
    with pytest.raises(BuildError) as error:
        prepare_network(card, pretrained=False, seed=0, probe_count=2, workdir=tmp_path)
    message = str(error.value)
    assert "'ids' draws from [0, 1000)" in message and "high=" in message


# ------------------------------------------------------------------------ outputs
def test_outputs_are_named_as_the_exporters_flatten_them():
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    assert list(named_outputs(a)) == ["output"]
    assert list(named_outputs((a, b))) == ["output_0", "output_1"]
    assert list(named_outputs({"out": a, "aux": b})) == ["out", "aux"]
    assert list(named_outputs((a, {"boxes": b, "scores": [c]}))) == [
        "output_0", "output_1.boxes", "output_1.scores.output_0"]


def per_probe(*outputs: np.ndarray) -> list[list[np.ndarray]]:
    return [[output[probe] for output in outputs] for probe in range(len(outputs[0]))]


SCALES = (Output("boxes", (1, 4), "float32"), Output("scores", (1, 3), "float32"))


def test_each_output_is_checked_on_its_own_scale():
    """A tiny output's error is not hidden by a large one's scale, and each is named."""
    rng = np.random.default_rng(0)
    boxes, scores = rng.random((2, 4)) * 1e6, rng.random((2, 3)) * 1e-6
    generic = tasks.get("generic")
    same = compare(per_probe(boxes, scores), (boxes, scores), SCALES, 1e-4, generic)
    assert same.passed and same.agreement == 1.0
    assert [check.to_json()["name"] for check in same.outputs] == ["boxes", "scores"]
    off = scores.copy()
    off[1, 0] += 1e-3 * np.abs(scores[1]).max()  # 1e-15 absolute: nothing beside the boxes
    judged = compare(per_probe(boxes, off), (boxes, scores), SCALES, 1e-4, generic)
    assert not judged.passed and judged.agreement == 0.5
    assert [check.passed for check in judged.outputs] == [True, False]
    assert "output 'scores'" in judged.describe()


def test_an_output_the_artifact_lacks_is_named():
    boxes, scores = np.ones((1, 4)), np.ones((1, 3))
    judged = compare([[boxes[0]]], (boxes, scores), SCALES, 1e-4, tasks.get("generic"))
    assert not judged.passed and judged.outputs[1].problem
    assert "output 'scores': the artifact gave 1 outputs" in judged.describe()


def test_segmentation_agreement_is_per_pixel():
    reference = np.zeros((1, 2, 2, 3))  # one probe, 2 classes, a 2x3 map: class 1 nowhere
    reference[0, 1] = -1.0
    got = reference.copy()
    got[0, 1, 0, 0] = 5.0  # one pixel of six changes class
    flat = [got.reshape(1, -1)[0]]
    judged = compare([flat], (reference.reshape(1, -1),),
                     (Output("out", (1, 2, 2, 3), "float32"),), 1.0, tasks.get("segmentation"))
    assert judged.agreement == pytest.approx(5 / 6)
    assert judged.agreement_measure.startswith("per-pixel class agreement")


# -------------------------------------------------------------- the bar
def json_rows(document: dict) -> dict[str, dict]:
    return {row["id"]: row for device in document["devices"].values()
            for row in device["workloads"]}


def test_a_text_classifier_a_tuple_head_and_a_dict_map_on_every_framework_and_runner(
        pytester, run_plugin, native_runners, artifact_cache):
    """The issue's bar, with the example module as shipped: every item passes on the four
    frameworks, every row checks each of its outputs, the ONNX file of the text classifier
    takes two int64 ids; then the native runner, on the same artifacts, answers the same."""
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result, document = run_plugin(EXAMPLE.name, f"--aiot-network={BAR_NETWORKS}")
    result.assert_outcomes(passed=12)
    rows = json_rows(document)
    outputs = {"text_classifier": ["output"], "detection_head": ["output_0", "output_1"],
               "tiny_segmenter": ["out"]}
    for row in rows.values():
        names = [check["name"] for check in row["validity"]["outputs"]]
        assert names == outputs[row["network"]], row["id"]
        assert all(check["passed"] for check in row["validity"]["outputs"])
    assert {row["accuracy_source"] for row in rows.values()
            if row["network"] == "tiny_segmenter"} == {
        tasks.get("segmentation").agreement_measure}
    assert {row["unit"] for row in rows.values()} == {"image", "inference"}
    onnx_file = next(Path(row["artifact"]["path"]) for row in rows.values()
                     if row["id"].startswith("text_classifier-onnxruntime"))
    graph = onnx.load(str(onnx_file)).graph
    assert [(one.name, one.type.tensor_type.elem_type) for one in graph.input] == [
        ("input_ids", onnx.TensorProto.INT64), ("attention_mask", onnx.TensorProto.INT64)]
    table = result.stdout.str()
    assert "inf/s" in table and "pixels-fp32" in table and "within-tol" in table

    # The segmenter's dict natively where a backend names outputs itself (PyTorch Mobile);
    # its map goes through the other native backends' code of the tuple head and the mIoU test.
    native, native_document = run_plugin(EXAMPLE.name, f"--aiot-network={BAR_NETWORKS}",
                                         "--aiot-runner=native", "-k",
                                         "not tiny_segmenter or pytorch")
    native.assert_outcomes(passed=9)
    native_rows = json_rows(native_document)
    assert {row["runner"] for row in native_rows.values()} == {"native"}
    for row_id, row in native_rows.items():
        checks, python_checks = row["validity"]["outputs"], rows[row_id]["validity"]["outputs"]
        assert [check["name"] for check in checks] == [check["name"] for check in python_checks]
        # Both runners read the artifact's outputs in one order and by the same names.
        assert [check["in_artifact"] for check in checks] == [
            check["in_artifact"] for check in python_checks]
        assert row["artifact"]["sha256"] == rows[row_id]["artifact"]["sha256"]
    segmenter = {row["framework"]: [check["in_artifact"] for check in row["validity"]["outputs"]]
                 for row in rows.values() if row["network"] == "tiny_segmenter"}
    assert [check["in_artifact"] for check in native_rows[
        "tiny_segmenter-pytorch-mobile-local"]["validity"]["outputs"]] == ["out"]
    assert segmenter["pytorch-mobile"] == ["out"] and segmenter["executorch"] == ["output"]


def example_module():
    """The example module, imported here (it registers its networks in this process)."""
    spec = importlib.util.spec_from_file_location("any_model_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unregister_example() -> None:
    for name in ("text_classifier", "detection_head", "tiny_segmenter", "keyword_spotter"):
        registry.unregister(name)


def example_predictions(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The example's text classifier, built as the session builds it (seed 0), on the host."""
    module = example_module()
    try:
        implementations.get("torch").seed(0)
        model = module.text_classifier().eval()
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(mask)).argmax(1).numpy()
    finally:
        unregister_example()


def test_labelled_arrays_score_a_text_classifier_by_top1_on_both_runners(
        pytester, run_plugin, native_runners, tmp_path):
    """A .npz of the inputs by name and their labels: top-1 on the device, the same items
    through both runners, the predictions those of the fp32 model. Its int64 ids calibrate
    the int8 variants (as the int32 a TFLite file takes them: a once-failing conversion)."""
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 30522, (12, 32)).astype(np.int64)
    mask = (rng.random((12, 32)) < 0.8).astype(np.int64)
    labels = rng.integers(0, 2, 12)
    np.savez(tmp_path / "messages.npz", input_ids=ids, attention_mask=mask, labels=labels)
    expected = example_predictions(ids, mask)
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    dataset = f"--aiot-dataset={tmp_path / 'messages.npz'}"
    result, document = run_plugin(EXAMPLE.name, "--aiot-network=text_classifier,detection_head",
                                  "--aiot-framework=onnxruntime,tflite", dataset,
                                  "--aiot-variant=fp32,int8")
    result.assert_outcomes(passed=8)
    native, native_document = run_plugin(EXAMPLE.name, "--aiot-network=text_classifier",
                                         "--aiot-framework=onnxruntime,tflite", dataset,
                                         "--aiot-runner=native")
    native.assert_outcomes(passed=2)
    rows = [*json_rows(document).values(), *json_rows(native_document).values()]
    for row in rows:
        if row["network"] == "detection_head":  # not a classifier: its outputs judge it
            assert row["accuracy_source"] == tasks.get("generic").agreement_measure
            continue
        assert row["accuracy_source"] == "labelled images" and row["images"] == 12
        if row["variant"] == "int8":  # calibrated on the labelled items, not the probes
            assert row["validity"]["passed"] and "calibrated on 12 inputs" in " ".join(row["notes"])
            continue
        assert row["predictions"] == expected.tolist(), row["id"]
        assert row["top1"] == pytest.approx(float(np.mean(expected == labels)))
    assert sorted(row["runner"] for row in rows if row["network"] == "text_classifier"
                  and row["variant"] == "fp32") == ["native", "native", "python", "python"]


def test_labelled_arrays_that_do_not_fit_the_network_are_named(pytester, run_plugin, tmp_path):
    np.savez(tmp_path / "wrong.npz", input_ids=np.zeros((4, 16), np.int64),
             attention_mask=np.zeros((4, 32), np.int64), labels=np.zeros(4, np.int64))
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result, _ = run_plugin(EXAMPLE.name, "--aiot-network=text_classifier",
                           "--aiot-framework=onnxruntime", f"--aiot-dataset={tmp_path}/wrong.npz")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'input_ids' is int64 of items shaped (16,); network "
                                 "'text_classifier' takes int64 (32,)*"])


def test_mean_iou_sums_each_class_over_the_items_and_skips_unlabelled_pixels():
    from pytest_aiotbench.tasks.segmentation import IGNORE, mean_iou

    want = [np.array([[0, 0], [1, IGNORE]]), np.array([[1, 1], [1, 1]])]
    got = [np.array([[0, 1], [1, 0]]), np.array([[1, 1], [0, 1]])]
    # class 0: 1 shared of 3 (the ignored pixel counts for nothing); class 1: 4 of 6
    assert mean_iou(got, want) == pytest.approx((1 / 3 + 4 / 6) / 2)
    assert mean_iou(want, want) == 1.0


def example_segmenter_maps(inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The example's segmenter's class maps, built as the session builds it, on the host."""
    module = example_module()
    try:
        implementations.get("torch").seed(0)
        model = module.tiny_segmenter().eval()
        with torch.inference_mode():
            return [model(torch.from_numpy(batch))["out"][0].argmax(0).numpy()
                    for batch in inputs]
    finally:
        unregister_example()


def test_label_masks_score_a_segmenter_by_miou_on_both_runners(pytester, run_plugin,
                                                               native_runners, tmp_path):
    """A folder of images and masks (Pascal VOC's layout): each mask cropped as its image,
    the device's class map against it, mIoU over the classes; the same through both
    runners, and what the fp32 model scores on the host. Then label maps in a .npz."""
    from PIL import Image

    from pytest_aiotbench.runner.aiot_runner import preprocess, preprocess_mask
    from pytest_aiotbench.tasks.segmentation import mean_iou

    voc = tmp_path / "voc"
    (voc / "images").mkdir(parents=True)
    (voc / "masks").mkdir()
    rng = np.random.default_rng(3)
    for index in range(3):
        Image.fromarray(rng.integers(0, 255, (72, 90, 3), dtype=np.uint8)).save(
            voc / "images" / f"{index}.jpg")
        mask = rng.integers(0, 6, (72, 90)).astype(np.uint8)
        mask[:6] = 255  # a border nobody scores
        Image.fromarray(mask, mode="L").save(voc / "masks" / f"{index}.png")
    spec = {"resize": 73, "crop": 64, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225]}  # the card's: 64 * 256 / 224 = 73
    images = sorted((voc / "images").iterdir())
    masks = [preprocess_mask(str(voc / "masks" / f"{path.stem}.png"), spec) for path in images]
    pixels = [preprocess(str(path), spec) for path in images]
    expected = mean_iou(example_segmenter_maps(pixels), masks)
    assert 0 < expected < 1
    arrays = tmp_path / "maps.npz"
    np.savez(arrays, input=np.concatenate(pixels), labels=np.stack(masks))
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    scored = []
    for runner, data in (("python", voc), ("native", voc), ("python", arrays)):
        result, document = run_plugin(EXAMPLE.name, "--aiot-network=tiny_segmenter",
                                      "--aiot-framework=onnxruntime", f"--aiot-dataset={data}",
                                      f"--aiot-runner={runner}")
        result.assert_outcomes(passed=1)
        (row,) = json_rows(document).values()
        assert row["accuracy_source"] == "mIoU on labelled masks" and row["images"] == 3
        scored.append(row["miou"])
    assert scored == pytest.approx([expected] * 3, abs=1e-6)
