"""Training in a data set's layout, with the segmenter's masks as the network's input (issue 22,
"networks that follow the image"), and the shipped network chosen by the input's layout."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from masked_gatys import checkpoints, nets
from masked_gatys.config import TrainConfig
from masked_gatys.eyes.training_data import MIN_PART_PIXELS, open_enough, rendered_eyes, style_pool
from masked_gatys.train import load_model, train
from tests.test_train import _spy_on_masks

pytestmark = pytest.mark.filterwarnings("ignore:using random VGG weights")


def tiny(**overrides) -> TrainConfig:
    base = dict(net="purifier", width=2, blocks=1, render=4, val=1, size=(36, 60), iterations=2,
                batch_size=2, lr=1e-3, weights="random", max_layer="relu2_1", val_every=0)
    base.update(overrides)
    return TrainConfig(**base)


def _grey(images: torch.Tensor) -> bool:
    return bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())


def test_layout_eyes_are_the_layouts_grey_open_eyes_and_the_style_pool_its_clean_look() -> None:
    images, masks, labels = rendered_eyes(6, (36, 60), 0, 1, layout="mpiigaze")
    assert _grey(images)  # MPIIGaze's layout is grey: the renderer gives three equal channels
    assert bool(open_enough(labels).all())  # no shut eye: the objective needs iris and pupil
    assert bool((masks.flatten(1).sum(1) > 0).all())
    unity, _, _ = rendered_eyes(6, (36, 60), 0, 1)  # without a layout: the original colour renders
    assert not _grey(unity)
    pool = style_pool(4, (36, 60), 0, layout="mpiigaze")
    assert len(pool.images) == 4 and _grey(pool.images) and bool(open_enough(pool.parts).all())
    # the pool's look is the layout's clean one: no noise, so flat skin varies less than a real look's
    assert float(pool.images.std()) != float(images.std())


def test_open_enough_counts_iris_and_pupil_pixels() -> None:
    shut = torch.zeros(1, 8, 8, dtype=torch.uint8)
    small = shut.clone()
    small.view(-1)[:MIN_PART_PIXELS] = 2
    small.view(-1)[MIN_PART_PIXELS:2 * MIN_PART_PIXELS - 1] = 3  # one pupil pixel short
    enough = small.clone()
    enough.view(-1)[2 * MIN_PART_PIXELS - 1] = 3
    assert open_enough(torch.cat([shut, small, enough])).tolist() == [False, False, True]


def test_the_network_gets_the_segmenters_masks_and_the_objective_the_true_ones(monkeypatch) -> None:
    from masked_gatys.eyes.training_data import segmenter_masks
    from masked_gatys.train import _batch_indices, _load_buckets

    net_masks, objective_masks = _spy_on_masks(monkeypatch)
    config = tiny(iterations=2, layout="mpiigaze", net_masks="segmenter", parts=False)
    train(config)
    data = _load_buckets(config)[0]
    assert data.train_net_masks is not None
    segmented = segmenter_masks(data.train_images)
    assert not torch.equal(segmented, data.train_masks)  # the segmenter is not the renderer's truth
    for step in range(2):
        idx = _batch_indices(data.train_images.shape[0], 2, config.seed, step)
        assert torch.equal(objective_masks[step], data.train_masks[idx]), step
        assert torch.equal(net_masks[step], segmented[idx]), step


def test_validation_gives_the_network_the_masks_it_is_trained_with(monkeypatch) -> None:
    from masked_gatys.train import _load_buckets

    seen = []
    real_build = nets.build

    def build(*args, **kwargs):
        net = real_build(*args, **kwargs)
        net.register_forward_pre_hook(lambda m, inputs: None if m.training else seen.append(inputs[1].clone()))
        return net

    monkeypatch.setattr(nets, "build", build)
    config = tiny(iterations=1, val_every=1, layout="mpiigaze", net_masks="segmenter", parts=False)
    train(config)
    data = _load_buckets(config)[0]
    assert seen and all(torch.equal(s, data.val_net_masks) for s in seen)


def test_layout_settings_are_recorded_and_a_resume_must_keep_them(tmp_path: Path) -> None:
    from masked_gatys.errors import CheckpointError

    out = tmp_path / "net.pt"
    train(tiny(iterations=1, layout="mpiigaze", look="webcam", net_masks="segmenter", output=str(out)))
    saved = load_model(out).checkpoint["train_config"]
    assert (saved["layout"], saved["look"], saved["net_masks"]) == ("mpiigaze", "webcam", "segmenter")
    with pytest.raises(CheckpointError, match="layout"):
        train(tiny(iterations=2, layout="nir", look="nir", net_masks="segmenter", resume=str(out)))


def test_bad_layout_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="net_masks"):
        tiny(net_masks="drawn")
    with pytest.raises(ValueError, match="layout"):
        tiny(layout="mpiigaze", content_dir="eyes")


def test_cli_train_in_a_layout(tmp_path: Path) -> None:
    from masked_gatys.cli import main

    out = tmp_path / "net.pt"
    args = ["train", "--render", "3", "--val", "1", "--size", "36x60", "--net", "purifier", "--width", "2",
            "--blocks", "1", "--batch-size", "2", "--iterations", "1", "--weights", "random",
            "--max-layer", "relu2_1", "--device", "cpu", "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--layout", "mpiigaze", "--look", "photo", "--net-masks", "segmenter",
                                       "--style-pool", "3"])
    assert result.exit_code == 0, result.output
    saved = load_model(out).checkpoint["train_config"]
    assert (saved["layout"], saved["look"], saved["net_masks"], saved["style_pool"]) == (
        "mpiigaze", "photo", "segmenter", 3)
    bad = CliRunner().invoke(main, [*args, "--look", "photo"])
    assert bad.exit_code == 2 and "--look needs --layout" in bad.output
    wrong = CliRunner().invoke(main, [*args, "--layout", "mpiigaze", "--net-masks", "drawn"])
    assert wrong.exit_code == 2 and "--net-masks" in wrong.output


# ---------------------------------------------------------------- the shipped network by layout

@pytest.fixture
def mpiigaze_purifier(tmp_path: Path, monkeypatch) -> Path:
    """A package data folder whose purifier has an ``mpiigaze`` checkpoint of its own (a copy
    of the shipped one with its last convolution zeroed, so its outputs differ)."""
    data = tmp_path / "data"
    shutil.copytree(checkpoints._data_dir(), data)
    ckpt = torch.load(data / "purifier_eyes.pt", weights_only=False)
    state = ckpt["state_dict"]
    last = [k for k in state if k.endswith("weight") and state[k].dim() == 4][-1]
    state[last] = torch.zeros_like(state[last])
    torch.save(ckpt, data / "purifier_mpiigaze.pt")
    monkeypatch.setattr(checkpoints, "_data_dir", lambda: data)
    monkeypatch.setitem(checkpoints.SHIPPED_BY_LAYOUT, ("purifier", "mpiigaze"), "purifier_mpiigaze.pt")
    return data


def test_the_shipped_network_is_the_one_of_the_inputs_layout(mpiigaze_purifier: Path) -> None:
    from masked_gatys.purify import PurifyConfig
    from masked_gatys.purify_methods import Network, shipped_for

    assert shipped_for("purifier", (1, 36, 60))[0].name == "purifier_mpiigaze.pt"
    assert shipped_for("purifier", (3, 72, 120))[0].name == "purifier_eyes.pt"
    assert shipped_for("purifier", (3, 72, 120), "mpiigaze")[0].name == "purifier_mpiigaze.pt"
    assert shipped_for("johnson", (3, 72, 120))[0].name == "johnson_eyes.pt"  # the original framing
    assert load_model("purifier", layout="mpiigaze").path.endswith("purifier_mpiigaze.pt")

    net = Network(PurifyConfig(method="purifier"), torch.device("cpu"))
    assert net.identity["by_layout"]["mpiigaze"]["checkpoint"] == "purifier_mpiigaze.pt"
    grey = torch.rand(2, 1, 36, 60).expand(2, 3, 36, 60).contiguous()
    colour = torch.rand(2, 3, 36, 60)
    mask = torch.zeros(2, 1, 36, 60)
    mask[..., 10:26, 20:40] = 1
    with pytest.warns(UserWarning, match="purifier_mpiigaze.pt, the network trained in the mpiigaze layout"):
        assert net.model_for(grey).path.endswith("purifier_mpiigaze.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per run and network; the original says nothing
        assert net.model_for(grey).path.endswith("purifier_mpiigaze.pt")
        assert net.model_for(colour).path.endswith("purifier_eyes.pt")
    own = load_model(mpiigaze_purifier / "purifier_mpiigaze.pt")
    assert torch.equal(net.run(grey, mask)[0], own(grey, mask))
    named = Network(PurifyConfig(method="purifier", layout="unity"), torch.device("cpu"))
    assert named.model_for(grey).path.endswith("purifier_eyes.pt") and "by_layout" not in named.identity


def test_cli_stylize_with_a_shipped_network_takes_the_one_of_the_eyes_layout(mpiigaze_purifier: Path,
                                                                              tmp_path: Path) -> None:
    from masked_gatys.cli import main
    from masked_gatys.eyes import render_eye
    from masked_gatys.image import load_image, save_image

    eye = render_eye(layout="mpiigaze", look="webcam", seed=3)
    src = tmp_path / "eye.png"
    save_image(eye.image[:, :1], src)

    def run(model: str) -> torch.Tensor:
        out = tmp_path / f"out_{Path(model).stem}.png"
        result = CliRunner().invoke(main, ["stylize", str(src), "--model", model, "--mask", "auto", "-o", str(out)])
        assert result.exit_code == 0, result.output
        return load_image(out)

    by_name = run("purifier")
    assert torch.equal(by_name, run(str(mpiigaze_purifier / "purifier_mpiigaze.pt")))
    assert not torch.equal(by_name, run(str(mpiigaze_purifier / "purifier_eyes.pt")))


def test_the_gaze_experiment_purifies_with_the_network_of_its_layout(mpiigaze_purifier: Path) -> None:
    from masked_gatys.eyes.experiment import _method_identity
    from masked_gatys.files import sha256_file

    assert _method_identity("purifier", "mpiigaze")[1] == sha256_file(mpiigaze_purifier / "purifier_mpiigaze.pt")
    assert _method_identity("purifier", "unity")[1] == sha256_file(mpiigaze_purifier / "purifier_eyes.pt")


@pytest.mark.parametrize("key", sorted(checkpoints.SHIPPED_BY_LAYOUT))
def test_shipped_layout_checkpoints_are_trained_in_their_layout_on_the_segmenters_masks(key) -> None:
    from masked_gatys.eyes.labels import EYE_PARTS
    from masked_gatys.eyes.layouts import get_layout
    from masked_gatys.objective import preset

    name, layout = key
    path = checkpoints.shipped_checkpoint(name, layout)
    assert path.name == checkpoints.SHIPPED_BY_LAYOUT[key] and path.stat().st_size < 3_000_000
    model = load_model(path)
    meta = model.checkpoint
    assert meta["net"]["name"] == name
    assert meta["weights"]["sha256"] == "c403b74a78c8b9bf65a417b861153ab567e9f2848571b66f937779ad841955e5"
    assert meta["objective"] == preset("masked-eye", regions=EYE_PARTS, max_layer="relu3_4").to_dict()
    settings = meta["train_config"]
    assert settings["layout"] == layout and settings["net_masks"] == "segmenter" and settings["mask_jitter"] > 0
    h, w = get_layout(layout).size
    assert all(s[0] * w == s[1] * h for s in meta["trained_sizes"])  # the layout's aspect
    assert meta["val_history"][-1]["total"] < meta["val_history"][0]["total"]
    size = tuple(meta["trained_sizes"][0])
    grey = torch.rand(1, 1, *size).expand(1, 3, *size)
    mask = torch.zeros(1, 1, *size)
    mask[..., size[0] // 4:3 * size[0] // 4, size[1] // 3:2 * size[1] // 3] = 1
    out = model(grey, mask)
    assert out.shape == grey.shape and 0 <= out.min() and out.max() <= 1


def test_training_curves_script_writes_each_runs_curves_without_machine_paths(tmp_path: Path) -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "training_curves", Path(__file__).resolve().parents[1] / "scripts" / "training_curves.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "run" / "net.pt"
    result = train(tiny(iterations=2, val_every=1, layout="mpiigaze", net_masks="segmenter", output=str(out)))
    assert script.main([f"mine={out}", "-o", str(tmp_path / "curves.json")]) == 0
    curves = json.loads((tmp_path / "curves.json").read_text())["mine"]
    assert [v["step"] for v in curves["val"]] == [v["step"] for v in result.val_history] == [0, 1, 2]
    assert curves["settings"]["layout"] == "mpiigaze" and curves["step"] == 2
    assert str(tmp_path) not in json.dumps(curves)
