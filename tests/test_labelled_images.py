"""Accuracy on labelled images, measured on the device with the deployed artifact: real
digits, a real trained network, every framework; the paper's protocol; bad datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REFERENCE_MODULE, TINY_CNN_MODULE
from digits import SPEC

from pytest_aiotbench.images import DatasetError, load_dataset
from pytest_aiotbench.runner.aiot_runner import preprocess

ALL_FRAMEWORKS = ["tflite", "onnxruntime", "pytorch-mobile", "executorch"]


def vips_from_rows(workloads: list[dict]) -> float:
    scored = [w for w in workloads if w["status"] == "passed"]
    return sum(w["accuracy"] / (w["stats"]["mean_s"] if w["latency_basis"] == "end-to-end"
                                else w["stats"]["median_s"]) for w in scored)


def test_trained_digits_network_is_accurate_on_every_framework(pytester, run_plugin,
                                                               digits_set):
    assert digits_set["host_top1"] >= 0.9  # the network itself is good
    pytester.makepyfile(test_digits=digits_set["module"])
    result, document = run_plugin(f"--aiot-dataset={digits_set['val']}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*accuracy source labelled: top-1/top-5 measured on the "
                                 "device*400 labelled items*"])
    workloads = document["devices"]["local"]["workloads"]
    assert {w["framework"] for w in workloads} == set(ALL_FRAMEWORKS)
    for workload in workloads:
        assert workload["accuracy_source"] == "labelled images"
        assert workload["images"] == 400
        assert workload["top1"] >= 0.9, workload["framework"]
        assert workload["top5"] >= workload["top1"]
        # Same weights, same preprocessing: the frameworks agree with the host to the image.
        assert workload["top1"] == pytest.approx(digits_set["host_top1"], abs=0.01)
        assert workload["end_to_end"]["n"] == 400
        assert workload["end_to_end"]["median_s"] > workload["labelled_inference"]["median_s"]
        assert workload["latency_basis"] == "inference"
    assert document["devices"]["local"]["vips"] == pytest.approx(vips_from_rows(workloads))


def test_paper_protocol_is_one_end_to_end_pass_first_image_included(pytester, run_plugin,
                                                                    digits_set):
    pytester.makepyfile(test_digits=digits_set["module"])
    result, document = run_plugin(f"--aiot-dataset={digits_set['val']}", "--aiot-images=50",
                                  "--aiot-protocol=paper", "--aiot-framework=tflite,onnxruntime")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*mean e2e ms*", "*t = mean seconds per image over one "
                                 "end-to-end pass*first image included*"])
    for workload in document["devices"]["local"]["workloads"]:
        assert workload["stop_reason"] == "one_pass" and workload["warmup_samples_s"] == []
        assert len(workload["samples_s"]) == workload["images"] == 50
        assert workload["end_to_end"]["n"] == 50
        assert workload["first_inference_s"] == workload["samples_s"][0]
        assert workload["latency_basis"] == "end-to-end"
    threads = {w["framework"]: w["threads"] for w in document["devices"]["local"]["workloads"]}
    assert threads["tflite"] == 1  # as the original app ran TFLite
    rows = document["devices"]["local"]["workloads"]
    assert document["devices"]["local"]["vips"] == pytest.approx(vips_from_rows(rows))


def test_subset_is_seeded_and_class_balanced(digits_set):
    first = load_dataset(digits_set["val"], count=30, per_class=3, seed=7)
    again = load_dataset(digits_set["val"], count=30, per_class=3, seed=7)
    other = load_dataset(digits_set["val"], count=30, per_class=3, seed=8)
    assert [i.path for i in first.images] == [i.path for i in again.images]
    assert [i.path for i in first.images] != [i.path for i in other.images]
    counts = {}
    for image in first.images:
        counts[image.label] = counts.get(image.label, 0) + 1
    assert sorted(counts.values()) == [3] * 10
    assert first.available == 400
    few = load_dataset(digits_set["val"], count=10, per_class=5, seed=0)
    assert len(few.images) == 10 and len({i.label for i in few.images}) == 2


def test_preprocessing_matches_the_cards_layout(digits_set):
    image = next(Path(digits_set["val"]).glob("*/*.JPEG"))
    tensor = preprocess(str(image), {**SPEC, "resize": 40, "crop": 24})
    assert tensor.shape == (1, 3, 24, 24) and tensor.dtype.name == "float32"
    assert -1.0 <= tensor.min() and tensor.max() <= 1.0  # (x - 0.5) / 0.5 of [0, 1]


def copy_dataset(source: Path, target: Path, classes: int = 2, per_class: int = 3) -> Path:
    for folder in sorted(source.iterdir())[:classes]:
        (target / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            shutil.copy(image, target / folder.name / image.name)
    return target


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "folder * does not exist"),
    ("empty", "no images in *"),
    ("text file", "*notes.txt is not an image*"),
    ("broken jpeg", "cannot read image *broken.JPEG*"),
])
def test_bad_datasets_are_named_in_a_usage_error(pytester, run_plugin, digits_set, tmp_path,
                                                 damage, message):
    root = tmp_path / "set"
    if damage != "missing":
        root.mkdir()
    if damage in ("text file", "broken jpeg"):
        copy_dataset(digits_set["val"], root)
    if damage == "text file":
        (root / "0" / "notes.txt").write_text("not an image")
    if damage == "broken jpeg":
        (root / "1" / "broken.JPEG").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DatasetError):
        load_dataset(root)
    # The dataset is read once the items are collected; a module registering no network of
    # its own lets this process collect it.
    pytester.makepyfile(test_reference=REFERENCE_MODULE)
    result, _ = run_plugin(f"--aiot-dataset={root}", json_report=False, in_process=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--aiot-dataset: {message}"])


def test_classes_a_network_cannot_output_fail_that_item_naming_the_class(
        pytester, run_plugin, digits_set, tmp_path):
    root = copy_dataset(digits_set["val"], tmp_path / "set", classes=10, per_class=2)
    extra = root / "zz_unknown"
    extra.mkdir()
    shutil.copy(next((root / "3").iterdir()), extra / "odd.JPEG")
    pytester.makepyfile(test_digits=digits_set["module"], test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin(f"--aiot-dataset={root}", "--aiot-framework=onnxruntime")
    result.assert_outcomes(errors=2)  # the network stage refuses the labels
    result.stdout.fnmatch_lines(["*network stage: class 'zz_unknown'*has index 10, but "
                                 "'digits_cnn' outputs 10 classes*"])
    assert len(document["devices"]["local"]["workloads"]) == 2


def test_labels_file_maps_files_to_classes(digits_set, tmp_path):
    root = copy_dataset(digits_set["val"], tmp_path / "set", classes=2, per_class=2)
    lines = [f"{p.relative_to(root)} 7" for p in sorted(root.glob("*/*.JPEG"))]
    (tmp_path / "labels.txt").write_text("\n".join(lines))
    dataset = load_dataset(root, labels_file=tmp_path / "labels.txt")
    assert {i.label for i in dataset.images} == {7}
    (tmp_path / "bad.txt").write_text("only-a-path\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:1"):
        load_dataset(root, labels_file=tmp_path / "bad.txt")


def test_paper_protocol_needs_labelled_images(pytester, run_plugin):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, _ = run_plugin("--aiot-protocol=paper", json_report=False, in_process=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--aiot-protocol=paper*--aiot-dataset=DIR*"])


def test_quantized_variants_report_their_accuracy_change_and_speed_up(pytester, run_plugin,
                                                                      digits_set):
    pytester.makepyfile(test_digits=digits_set["module"])
    result, document = run_plugin("-rs", f"--aiot-dataset={digits_set['val']}",
                                  "--aiot-images=200",
                                  "--aiot-variant=fp32,fp16,dynamic-int8,int8")
    # tflite 4, onnxruntime 3, executorch 2, pytorch-mobile 1 made; the rest skip, saying why.
    result.assert_outcomes(passed=10, skipped=6)
    result.stdout.fnmatch_lines(["SKIPPED*pytorch-mobile has no int8 variant (it offers: fp32)*"])
    result.stdout.fnmatch_lines(["*Δacc*speed-up*"])
    rows = {(w["framework"], w["variant"]): w for w in document["devices"]["local"]["workloads"]
            if w["status"] == "passed"}
    assert set(rows) == {("tflite", v) for v in ("fp32", "fp16", "dynamic-int8", "int8")} | {
        ("onnxruntime", v) for v in ("fp32", "dynamic-int8", "int8")} | {
        ("executorch", v) for v in ("fp32", "int8")} | {("pytorch-mobile", "fp32")}
    for (framework, variant), row in rows.items():
        assert row["accuracy_source"] == "labelled images"
        assert row["top1"] >= 0.85, (framework, variant, row["top1"])
        if variant != "fp32":
            fp32 = rows[(framework, "fp32")]
            assert row["artifact"]["sha256"] != fp32["artifact"]["sha256"]
            assert row["artifact"]["bytes"] < fp32["artifact"]["bytes"]  # smaller weights
    # Quantization changes the answers measurably (not a copy of fp32 under another name).
    assert rows[("tflite", "int8")]["validity"]["max_rel_error"] > 1e-4
    assert rows[("onnxruntime", "int8")]["validity"]["max_rel_error"] > 1e-4
    vips = sum(w["accuracy"] / w["stats"]["median_s"] for w in rows.values())
    assert document["devices"]["local"]["vips"] == pytest.approx(vips)
