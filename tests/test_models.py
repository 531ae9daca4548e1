"""The paper's CNN (Table 1) and the 1-channel VGG16 build with the right sizes."""
from __future__ import annotations

import pytest
import torch

from fer_utils.models import build_model, count_parameters


def test_cnn_matches_keras_parameter_count() -> None:
    """Table 1 with 'valid' convs has exactly the 4,966,022 trainable weights Keras reports."""
    assert count_parameters(build_model("cnn")) == 4_966_022


@pytest.mark.parametrize("name", ["cnn", "vgg16"])
def test_output_is_six_logits(name: str) -> None:
    """Gray 64x64 faces map to one logit per emotion."""
    model = build_model(name).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 6)


def test_vgg16_grays_imagenet_first_conv(tmp_path) -> None:
    """A user-supplied RGB state dict loads with conv1 averaged over its three input channels."""
    from fer_utils.models._torchvision import torchvision
    from fer_utils.models.vgg import vgg16_gray

    rgb = torchvision.models.vgg16(weights=None).state_dict()
    torch.save(rgb, tmp_path / "vgg16.pth")
    model = vgg16_gray(imagenet_weights=tmp_path / "vgg16.pth")
    assert torch.allclose(model.features[0].weight, rgb["features.0.weight"].mean(1, keepdim=True))
    assert torch.equal(model.classifier[0].weight, rgb["classifier.0.weight"])


def test_unknown_model_is_named() -> None:
    """A typo in the model name says which names exist."""
    with pytest.raises(ValueError, match="vgg16"):
        build_model("resnet")
