import pytest
import torch

from thrifty.models import MODELS, create_model, load_weights


@pytest.mark.parametrize("name,shape,classes", [
    ("cnn", (1, 28, 28), 10), ("cnn", (3, 32, 32), 100), ("mlp", (1, 8, 8), 10),
    ("resnet18", (3, 32, 32), 10), ("resnet50", (3, 32, 32), 100),
    ("mobilenetv2", (3, 32, 32), 10), ("resnet18", (1, 28, 28), 10),
])
def test_models_give_logits(name, shape, classes):
    torch.manual_seed(0)
    model = create_model(name, classes, shape).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, classes)


def test_cifar_resnet_keeps_resolution_in_stem():
    model = create_model("resnet18", 10, (3, 32, 32))
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)


def test_torchvision_models_by_name():
    model = create_model("tv:resnet18", 5, (3, 64, 64)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    with pytest.raises(ValueError, match="unknown torchvision model"):
        create_model("tv:nonsense_net", 5, (3, 64, 64))


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="unknown model 'vgg99'.*cnn"):
        create_model("vgg99", 10, (1, 28, 28))
    assert {"cnn", "mlp", "resnet18", "resnet50", "mobilenetv2"} <= set(MODELS)


def test_weights_from_file_skip_mismatched_head(tmp_path):
    torch.manual_seed(0)
    src = create_model("cnn", 100, (3, 32, 32))
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = create_model("cnn", 10, (3, 32, 32), weights=tmp_path / "w.pt")
    assert torch.equal(dst.features[0].weight, src.features[0].weight)
    assert dst.classifier.weight.shape == (10, 128)  # head kept at its own size
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_weights(dst, tmp_path / "missing.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no tensor"):
        load_weights(dst, tmp_path / "bad.pt")


def test_model_args_reach_the_factory_and_typos_are_refused(tmp_path):
    import pytest

    from thrifty.engine import make_config
    from thrifty.models import create_model

    model = create_model("mlp", 10, (1, 8, 8), hidden=[32, 16])
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 10]
    with pytest.raises(ValueError, match="does not take the hyper-parameter"):
        create_model("mlp", 10, (1, 8, 8), hiden=3)
    with pytest.raises(ValueError, match="option 'model_args' must be a mapping"):
        make_config({"workload": "digits-mlp", "model_args": [1]})
