"""Benchmark your own network on every framework and device, like the reference six.

Copy this file into your tests folder and run:

    pytest test_my_network.py --aiot-device=all

The decorator registers the builder; importing ``test_workload`` makes pytest collect the
matrix here: every network registered in this module x every framework x every device.
"""

import torch

from pytest_aiotbench import register_network, test_workload  # noqa: F401


class EdgeNet(torch.nn.Module):
    """A small depthwise-separable classifier, the kind that ships on microcontrollers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> torch.nn.Module:
            return torch.nn.Sequential(
                torch.nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                torch.nn.BatchNorm2d(cin), torch.nn.ReLU6(),
                torch.nn.Conv2d(cin, cout, 1, bias=False),
                torch.nn.BatchNorm2d(cout), torch.nn.ReLU6())

        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(16),
            torch.nn.ReLU6(), block(16, 32, 2), block(32, 64, 2), block(64, 64, 1),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.classifier = torch.nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_network(input_shape=(1, 3, 96, 96), num_classes=10)
def edgenet(pretrained: bool = False) -> torch.nn.Module:
    """EdgeNet on 96x96 images (random weights; load yours where pretrained is asked)."""
    model = EdgeNet()
    if pretrained:
        model.load_state_dict(torch.load("edgenet.pt", map_location="cpu"))
    return model
