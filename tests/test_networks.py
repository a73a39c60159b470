"""The registry, the reference cards (torchvision's six, Keras's four), FLOPs from the
models, torchvision's import trap, and the pretrained-weights path."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import NO_UNUSED_PLUGINS

from pytest_aiotbench import networks
from pytest_aiotbench.networks import implementations
from pytest_aiotbench.networks.reference import PretrainedWeightsUnavailable
from pytest_aiotbench.networks.registry import register_network, unregister

REFERENCE = ["resnet50", "inception_v3", "densenet121", "squeezenet1_1", "mobilenet_v2",
             "mnasnet1_0"]
PUBLISHED_GMACS = {"resnet50": 4.09, "inception_v3": 5.71, "densenet121": 2.83,
                   "squeezenet1_1": 0.35, "mobilenet_v2": 0.30, "mnasnet1_0": 0.31}
#: Keras's ResNet50 is the original (stride 2 in the first 1x1 convolution of a stage, as
#: He et al.'s Caffe model), a little cheaper than torchvision's ResNet50 v1.5.
KERAS_PUBLISHED_GMACS = {"resnet50": 3.86, "inception_v3": 5.71, "densenet121": 2.83,
                         "mobilenet_v2": 0.30}


def test_registry_holds_the_six_reference_networks():
    assert [n for n in networks.names() if n in REFERENCE] == REFERENCE
    assert networks.get("inception_v3").input_shape == (1, 3, 299, 299)
    assert networks.get("inception_v3").preprocessing.resize == 342
    assert networks.get("resnet50").preprocessing.crop == 224
    # Keras's four beside them, the torch one staying each network's primary implementation.
    assert [n for n in REFERENCE if "keras" in networks.implementations_of(n)] == list(
        KERAS_PUBLISHED_GMACS)
    assert networks.get("resnet50").implementation == "torch"
    keras_inception = networks.get("inception_v3", "keras")
    assert keras_inception.input_shape == (1, 299, 299, 3)
    assert keras_inception.preprocessing.layout == "NHWC"
    assert keras_inception.label == "inception_v3-keras"
    with pytest.raises(networks.UnknownNetworkError, match="no keras implementation"):
        networks.get("squeezenet1_1", "keras")


def test_reference_top1_is_torchvision_weights_metadata():
    """The cards carry it as constants, so that listing the networks imports no torchvision."""
    from pytest_aiotbench.networks.torchvision_compat import torchvision_models

    models = torchvision_models()
    for name in REFERENCE:
        card = networks.get(name)
        weights = getattr(models, card.weights.split()[1].split(".")[0]).IMAGENET1K_V1
        assert card.reference_top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100


def test_listing_the_networks_and_counting_macs_import_nothing_they_do_not_need():
    """Every pytest process lists the networks: torchvision alone costs seconds of imports.
    Counting a torch network's multiply-accumulates imports no torch._dynamo (1.6 s)."""
    probe = textwrap.dedent("""
        import sys
        from pytest_aiotbench import networks
        from pytest_aiotbench.networks import implementations
        cards = networks.cards()
        assert cards[0].reference_top1 and cards[0].published_gmacs, cards[0]
        heavy = ("torch", "torchvision", "tensorflow", "keras", "onnxruntime", "executorch",
                 "ai_edge_litert", "litert_torch")
        print("listing imported", sorted(name for name in heavy if name in sys.modules))
        import torch
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(),
                                    torch.nn.Linear(8 * 30 * 30, 10))
        import numpy as np
        macs = implementations.get("torch").macs(model, [np.zeros((1, 3, 32, 32), np.float32)])
        print("macs", macs, "dynamo", "torch._dynamo" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "listing imported []" in done.stdout
    # 3*3*3 per output of the 8x30x30 convolution, then 7200 per logit.
    assert f"macs {8 * 30 * 30 * 27 + 10 * 7200} dynamo False" in done.stdout


@pytest.mark.parametrize("name", REFERENCE)
def test_flops_are_counted_from_the_model_within_2_percent_of_published(name):
    card = networks.get(name)
    torch.manual_seed(0)
    macs = implementations.get("torch").macs(card.build(pretrained=False),
                                             [np.zeros(card.input_shape, np.float32)])
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.02)


@pytest.mark.parametrize("name", list(KERAS_PUBLISHED_GMACS))
def test_keras_flops_are_counted_from_the_traced_graph_within_2_percent_of_published(name):
    card = networks.get(name, "keras")
    macs = implementations.get("keras").macs(card.build(pretrained=False),
                                             [np.zeros(card.input_shape, np.float32)])
    assert macs / 1e9 == pytest.approx(KERAS_PUBLISHED_GMACS[name], rel=0.02)
    assert card.published_gmacs == KERAS_PUBLISHED_GMACS[name]


def test_unknown_network_names_the_known_ones():
    with pytest.raises(networks.UnknownNetworkError) as error:
        networks.get("resnet5O")
    assert "resnet5O" in str(error.value) and "mobilenet_v2" in str(error.value)


def test_decorator_registers_a_builder_and_refuses_a_silent_clash():
    @register_network(input_shape=(1, 3, 16, 16), num_classes=4)
    def four_way():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 4))

    try:
        card = networks.get("four_way")
        assert card.num_classes == 4 and card.origin == __name__
        assert card.build(pretrained=False)(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
        with pytest.raises(ValueError, match="no pretrained weights"):
            card.build(pretrained=True)
        with pytest.raises(ValueError, match="already registered"):
            register_network("four_way", origin="somewhere.else")(lambda: None)
    finally:
        unregister("four_way")


def test_torchvision_classifiers_load_where_torchvision_import_fails():
    """The registry's torchvision is a CUDA build; against the CPU torch its import dies."""
    probe = textwrap.dedent("""
        import torch
        try:
            import torchvision
            print("plain-import-ok")
        except RuntimeError as exc:
            print("plain-import-failed:", exc)
        from pytest_aiotbench.networks.torchvision_compat import torchvision_models
        import pytest_aiotbench.networks.torchvision_compat as compat
        model = torchvision_models().resnet50().eval()
        print("logits", tuple(model(torch.zeros(1, 3, 224, 224)).shape))
        print("fallback", compat.fallback_reason is not None)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "logits (1, 1000)" in done.stdout
    if "plain-import-failed" in done.stdout:
        assert "torchvision::nms does not exist" in done.stdout
        assert "fallback True" in done.stdout


USERS_TORCHVISION_MODULE = """
import torch
from torchvision.models import efficientnet_b0
from torchvision.models.segmentation import lraspp_mobilenet_v3_large


def test_torchvision_models_of_my_own():
    assert efficientnet_b0().eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    assert net(torch.zeros(1, 3, 64, 64))["out"].shape == (1, 21, 64, 64)
"""


def test_a_users_test_module_imports_torchvision_s_models_as_usual(pytester):
    """With the plugin installed, a test module's plain ``from torchvision.models import``
    works in this environment, whose torchvision cannot load its C++ ops against the CPU
    torch (the plugin is imported before any test module)."""
    pytester.makepyfile(test_mine=USERS_TORCHVISION_MODULE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *NO_UNUSED_PLUGINS)
    result.assert_outcomes(passed=1)


def test_pretrained_weights_that_cannot_be_had_give_a_clear_error(tmp_path, monkeypatch):
    # An empty hub folder and no route out: the download fails as it does on this machine.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    card = networks.get("squeezenet1_1")
    with pytest.raises(PretrainedWeightsUnavailable) as error:
        card.build(pretrained=True)
    message = str(error.value)
    assert "squeezenet1_1" in message and "--aiot-weights=random" in message
    assert str(tmp_path) in message  # where to put the file by hand


def test_pretrained_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    """The real loading path: torchvision's loader, reading a checkpoint already in the
    cache folder (as after a download on a connected machine, or one copied there by hand).
    The weights are random but in the exact layout and file name torchvision expects."""
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    card = networks.get("squeezenet1_1")
    torch.manual_seed(3)
    expected = card.build(pretrained=False).state_dict()
    from pytest_aiotbench.networks.torchvision_compat import torchvision_models

    url = torchvision_models().SqueezeNet1_1_Weights.IMAGENET1K_V1.url
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(expected, checkpoints / url.rsplit("/", 1)[1])
    # torch.hub checks a checkpoint's hash when it downloads it, not when it finds it cached.
    loaded = card.build(pretrained=True).state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)


class HandWrittenEncoderLayer(torch.nn.Module):
    """nn.TransformerEncoderLayer's computation (post-norm, ReLU) written out op by op."""

    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.up, self.down = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, width)
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(batch, length, width)
        x = self.norm1(x + self.out(attended))
        return self.norm2(x + self.down(torch.relu(self.up(x))))


def test_attention_counts_its_products_whichever_path_torch_takes():
    """torch's fused paths (the encoder layer's and attention's fast path in eval mode, the
    CPU's fused scaled-dot-product attention) count the same as the hand-written layer: the
    projections, the two attention products and the feed-forward."""
    from pytest_aiotbench.networks.flops import torch_macs

    width, heads, hidden, length = 64, 4, 128, 16
    expected = 4 * length * width * width + 2 * length * length * width \
        + 2 * length * width * hidden
    fused = torch.nn.TransformerEncoderLayer(width, heads, hidden, batch_first=True).eval()
    tokens = (torch.zeros(1, length, width),)
    assert torch_macs(fused, tokens) == expected
    assert torch_macs(HandWrittenEncoderLayer(width, heads, hidden).eval(), tokens) == expected
    attention = torch.nn.MultiheadAttention(width, heads, batch_first=True).eval()
    for need_weights in (True, False):
        assert torch_macs(lambda x, w=need_weights: attention(x, x, x, need_weights=w)[0],
                          tokens) == expected - 2 * length * width * hidden
    assert torch.backends.mha.get_fastpath_enabled()  # turned back on after counting
