"""The resnet18 estimator under torchvision's names: its keys and shapes against a table written
here (and torchvision's own where it is installed), files from before the rename loading with
identical predictions, and `gaze fit --init` starting the backbone from an ImageNet-format file,
normalising the input as those weights expect, and refusing a file that does not fit in one line."""

import hashlib
import json
import re
import sys

import numpy as np
import pytest
import torch
from faults import one_error, packed, synthetic_prep
from torch import nn

from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.estimator import IMAGENET, build, load_estimator, read_init, save_estimator
from gcgan_cli.core.gaze.sources import open_source
from gcgan_cli.errors import CheckpointError, UsageError

CPU = torch.device("cpu")
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # torchvision's ImageNet normalisation


def torchvision_resnet18(classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """torchvision's resnet18(num_classes=classes) state_dict: key -> shape, in its order."""
    table = {"conv1.weight": (64, 3, 7, 7)}

    def batch_norm(prefix, channels):
        table.update({f"{prefix}.{name}": () if name == "num_batches_tracked" else (channels,) for name in BN})

    batch_norm("bn1", 64)
    cin = 64
    for layer, cout in enumerate((64, 128, 256, 512), 1):
        for block in range(2):
            prefix = f"layer{layer}.{block}"
            table[f"{prefix}.conv1.weight"] = (cout, cin if block == 0 else cout, 3, 3)
            batch_norm(f"{prefix}.bn1", cout)
            table[f"{prefix}.conv2.weight"] = (cout, cout, 3, 3)
            batch_norm(f"{prefix}.bn2", cout)
            if block == 0 and layer > 1:
                table[f"{prefix}.downsample.0.weight"] = (cout, cin, 1, 1)
                batch_norm(f"{prefix}.downsample.1", cout)
        cin = cout
    table.update({"fc.weight": (classes, 512), "fc.bias": (classes,)})
    return table


def imagenet_state(seed: int = 0, classes: int = 1000) -> dict[str, torch.Tensor]:
    """Random weights in torchvision's layout, scaled so activations stay finite through the net."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet18(classes).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var") or (key.endswith(".weight") and len(shape) == 1):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) == 4:
            state[key] = torch.randn(shape, generator=generator) * (2 / np.prod(shape[1:])) ** 0.5
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


def randomise_batch_norm(model: nn.Module) -> nn.Module:
    """Running statistics and affine terms away from their defaults, so a BN loaded under the
    wrong name changes the output."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor in (module.weight.data, module.running_var):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            for tensor in (module.bias.data, module.running_mean):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    return model.eval()


# The layout resnet18 estimators had before torchvision's names, as it was.
def old_conv_bn(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OldBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            old_conv_bn(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        )
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class OldResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        layers = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [OldBlock(cin, cout, stride), OldBlock(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(512, 2)

    def forward(self, x):
        return self.fc(self.features(x))


def old_name(key: str) -> str:
    """torchvision's name of a resnet18 key -> the old one, written out independently of the code."""
    parts = {
        "conv1": "body.0.0",
        "bn1": "body.0.1",
        "conv2": "body.1",
        "bn2": "body.2",
        "downsample.0": "skip.0",
        "downsample.1": "skip.1",
    }
    match = re.fullmatch(r"layer(\d)\.(\d)\.(conv1|bn1|conv2|bn2|downsample\.[01])\.(\w+)", key)
    if match:
        return f"features.{4 + 2 * (int(match[1]) - 1) + int(match[2])}.{parts[match[3]]}.{match[4]}"
    return re.sub(r"^conv1\.", "features.0.", re.sub(r"^bn1\.", "features.1.", key))


def resnet_config(**extra):
    return {"arch": "resnet18", "size": 32, "mean_gaze": [0.0, 0.0], **extra}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimator_init")
    return packed(synthetic_prep(root / "prep", n=40), root / "db")


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "resnet18-imagenet.pth"
    torch.save(imagenet_state(), path)
    return path


def test_resnet18_has_torchvision_s_keys_and_shapes():
    state = build("resnet18", 32).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == torchvision_resnet18(classes=2)
    assert list(state) == list(torchvision_resnet18())  # the order too
    assert list(build("resnet18", 32, input_norm=IMAGENET).state_dict()) == list(state)  # its buffers are not stored


def test_resnet18_matches_torchvision_where_it_is_installed():
    models = pytest.importorskip("torchvision.models")
    reference = models.resnet18()
    assert {k: tuple(v.shape) for k, v in reference.state_dict().items()} == torchvision_resnet18()
    ours = randomise_batch_norm(build("resnet18", 32, input_norm=IMAGENET))
    theirs = models.resnet18(num_classes=2).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (MEAN, STD))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(((x + 1) / 2 - mean) / std))


def test_files_with_the_old_names_load_with_identical_predictions(tmp_path):
    old = randomise_batch_norm(OldResNet18())
    save_estimator(tmp_path / "old.pt", old, resnet_config(), {})
    loaded, config = load_estimator(tmp_path / "old.pt", CPU)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), old(x)) and config["input_norm"] is None
        assert list(loaded.state_dict()) == list(torchvision_resnet18())

        new = randomise_batch_norm(build("resnet18", 32))
        save_estimator(tmp_path / "new.pt", new, resnet_config(), {})
        assert torch.equal(load_estimator(tmp_path / "new.pt", CPU)[0](x), new(x))
        back = OldResNet18().eval()  # and the other way: torchvision's names, renamed back, fit the old layout
        back.load_state_dict({old_name(k): v for k, v in new.state_dict().items()})
        assert torch.equal(back(x), new(x))


def test_read_init_takes_the_backbone_and_skips_the_classifier(imagenet_file, tmp_path):
    init = read_init(imagenet_file, "resnet18")
    state = imagenet_state()
    assert init.skipped == ("fc.weight", "fc.bias") and len(init.state) == 120  # 122 tensors less the classifier
    assert init.sha256 == hashlib.sha256(imagenet_file.read_bytes()).hexdigest()
    assert all(torch.equal(init.state[k], state[k]) for k in init.state)
    headless = {k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    torch.save(headless, tmp_path / "headless.pth")  # older files have no num_batches_tracked, some no classifier
    assert len(read_init(tmp_path / "headless.pth", "resnet18").state) == 100
    assert read_init(tmp_path / "headless.pth", "resnet18").record()["skipped"] == []


@pytest.mark.slow
def test_fit_init_starts_from_the_file_and_normalises_as_imagenet(db, imagenet_file, tmp_path, run_cli):
    out = tmp_path / "est.pt"
    code, _, err = run_cli(
        "gaze",
        "fit",
        "--data",
        db,
        "--out",
        out,
        "--arch",
        "resnet18",
        "--init",
        imagenet_file,
        "--size",
        "32",
        "--epochs",
        "1",
        "--lr",
        "0",
        "--device",
        "cpu",
    )
    assert code == 0, err
    record = load_checkpoint(out)
    state, file = record["model"], imagenet_state()
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.weight", "layer4.0.downsample.0.weight"):
        assert torch.equal(state[key], file[key]), key  # learning rate 0: the weights are the file's
    assert state["fc.weight"].shape == (2, 512)
    assert record["config"]["input_norm"] == IMAGENET
    sha256 = hashlib.sha256(imagenet_file.read_bytes()).hexdigest()
    assert record["config"]["init"] == {
        "path": str(imagenet_file),
        "sha256": sha256,
        "loaded": 120,
        "skipped": ["fc.weight", "fc.bias"],
    }

    network, config = load_estimator(out, CPU)
    plain = build("resnet18", 32).eval()
    plain.load_state_dict(state)
    source = open_source(db, 32)
    images = torch.stack([source[i]["image"] for i in range(len(source))])
    rgb = (images.double().numpy() + 1) / 2
    normalised = torch.from_numpy((rgb - MEAN[:, None, None]) / STD[:, None, None]).float()
    with torch.no_grad():
        expected = plain(normalised).numpy()
        torch.testing.assert_close(network(images), torch.from_numpy(expected), rtol=1e-4, atol=1e-5)
    code, text, _ = run_cli(
        "gaze", "eval", "--model", out, "--data", db, "--out", tmp_path / "eval.png", "--json", "--device", "cpu"
    )
    assert code == 0  # eval reads the normalisation from the file, as the oracle applied it by hand
    mean_error = angular_error(expected, source.gazes).mean()
    assert json.loads(text)["error_deg"]["mean"] == pytest.approx(mean_error, rel=1e-4)


class Gadget:
    """A class torch's weights-only loader will not build."""


def test_a_wrong_init_file_is_one_line(db, imagenet_file, tmp_path, run_cli):
    state = imagenet_state()
    del state["layer4.1.bn2.weight"]
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    state["module.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "grey.pth")
    (tmp_path / "cut.pth").write_bytes(imagenet_file.read_bytes()[:5000])
    torch.save({"state_dict": imagenet_state(), "gadget": Gadget()}, tmp_path / "pickled.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    out = tmp_path / "est.pt"
    cases = (
        (("--init", imagenet_file), ("--init", "--arch resnet18", "drop --init")),
        (("--arch", "resnet18", "--init", tmp_path / "none.pth"), ("none.pth", "cannot read")),
        (
            ("--arch", "resnet18", "--init", tmp_path / "grey.pth"),
            (
                "grey.pth",
                "1 missing: layer4.1.bn2.weight",
                "1 unexpected: module.extra.weight",
                "conv1.weight 64x1x7x7 (the network's 64x3x7x7)",
            ),
        ),
        (("--arch", "resnet18", "--init", tmp_path / "cut.pth"), ("cut.pth", "not a plain state_dict")),
        (("--arch", "resnet18", "--init", tmp_path / "pickled.pth"), ("pickled.pth", "without running code")),
        (("--arch", "resnet18", "--init", tmp_path / "list.pth"), ("list.pth", "holds a list")),
    )
    for args, words in cases:
        code, _, err = run_cli(
            "gaze", "fit", "--data", db, "--out", out, "--size", "32", "--epochs", "1", *args, "--device", "cpu"
        )
        assert code == 2, err
        one_error(err, *words)
        assert not out.exists()


def test_safetensors_without_the_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    (tmp_path / "r.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(UsageError, match="needs the safetensors package"):
        read_init(tmp_path / "r.safetensors", "resnet18")


def test_safetensors_init_reads_the_same_backbone(imagenet_file, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "resnet18.safetensors"
    safetensors_torch.save_file(imagenet_state(), str(path))
    init, reference = read_init(path, "resnet18"), read_init(imagenet_file, "resnet18")
    assert init.state.keys() == reference.state.keys()
    assert all(torch.equal(init.state[k], reference.state[k]) for k in init.state)
    assert init.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        read_init(tmp_path / "cut.safetensors", "resnet18")
