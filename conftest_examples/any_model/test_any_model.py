"""Benchmark what you ship, not only image classifiers: several inputs of any dtype, outputs
as a tuple or a dict, each network scored by its task.

Copy this file into your tests folder and run:

    pytest test_any_model.py --aiot-device=all

Each network declares its inputs with ``Input`` (name, shape, dtype, and the range its probe
inputs are drawn from), in the order its forward takes them. Every output the model returns
is checked against the fp32 model on its own scale (the JSON row's ``validity.outputs``),
and the task says what the quality figure in VIPS and VOPS is: top-1 agreement for a
classifier, per-pixel class agreement for a segmentation map, and for anything else the share
of probes whose every output stays within the tolerance.
"""

import torch

from pytest_aiotbench import Input, register_network, test_workload  # noqa: F401

#: BERT's vocabulary size: token ids are drawn below it.
VOCABULARY = 30522
SEQUENCE = 32


class TextClassifier(torch.nn.Module):
    """Token ids and an attention mask in, two class scores out: a tiny transformer
    encoder of the kind that sorts messages on a phone."""

    def __init__(self, width: int = 64, classes: int = 2):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCABULARY, width)
        self.position = torch.nn.Parameter(torch.randn(1, SEQUENCE, width) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=2 * width,
                                                 batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers=2,
                                                   enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        hidden = self.encoder(self.embed(input_ids) + self.position)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


@register_network(inputs=[Input("input_ids", (1, SEQUENCE), "int64", high=VOCABULARY),
                          Input("attention_mask", (1, SEQUENCE), "int64", high=2)],
                  num_classes=2)
def text_classifier() -> torch.nn.Module:
    """Two int64 inputs (ids, mask), one output: sentence classification."""
    return TextClassifier()


class DetectionHead(torch.nn.Module):
    """A single-shot detector's head on a small backbone: per anchor, four box offsets and
    the class scores, returned as a tuple (boxes, scores)."""

    def __init__(self, anchors: int = 3, classes: int = 5):
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU())
        self.boxes = torch.nn.Conv2d(32, anchors * 4, 1)
        self.scores = torch.nn.Conv2d(32, anchors * classes, 1)
        self.classes = classes

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(image)
        boxes = self.boxes(features).flatten(2).transpose(1, 2).reshape(1, -1, 4)
        scores = self.scores(features).flatten(2).transpose(1, 2).reshape(1, -1, self.classes)
        return boxes, scores.softmax(-1)


@register_network(input_shape=(1, 3, 64, 64), task="generic")
def detection_head() -> torch.nn.Module:
    """One image in, a tuple (boxes, scores) out, each checked on its own scale."""
    return DetectionHead()


class TinySegmenter(torch.nn.Module):
    """An encoder-decoder that answers as torchvision's segmentation models do:
    ``{"out": (1, classes, H, W)}``."""

    def __init__(self, classes: int = 6):
        super().__init__()
        self.encode = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.BatchNorm2d(32), torch.nn.ReLU())
        self.classify = torch.nn.Conv2d(32, classes, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = self.classify(self.encode(image))
        return {"out": torch.nn.functional.interpolate(scores, size=image.shape[-2:],
                                                       mode="bilinear", align_corners=False)}


@register_network(input_shape=(1, 3, 64, 64), task="segmentation")
def tiny_segmenter() -> torch.nn.Module:
    """A {"out": map} answer, scored by per-pixel class agreement with fp32."""
    return TinySegmenter()


class KeywordSpotter(torch.nn.Module):
    """Twelve keywords from 49 frames of 10 MFCCs, as in "Hello Edge" (DS-CNN, small)."""

    def __init__(self, keywords: int = 12):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, (10, 4), (2, 2), (5, 1)), torch.nn.BatchNorm2d(32),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 32, 3, 1, 1, groups=32), torch.nn.BatchNorm2d(32),
            torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 1), torch.nn.BatchNorm2d(32),
            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.classify = torch.nn.Linear(32, keywords)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(mfcc))


@register_network(inputs=[Input("mfcc", (1, 1, 49, 10), "float32", low=-30.0, high=30.0)],
                  num_classes=12)
def keyword_spotter() -> torch.nn.Module:
    """MFCC features in (not an image: its units are inferences), keyword scores out."""
    return KeywordSpotter()
