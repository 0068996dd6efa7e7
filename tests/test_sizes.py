"""Networks at several sizes: multi-size training, warm starts, the trained range at inference,
shipped networks by name; the eye subject of stylize."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from masked_gatys import nets
from masked_gatys.errors import CheckpointError
from masked_gatys.train import LoadedModel, TrainConfig, apply_model, load_model, train

pytestmark = pytest.mark.usefixtures("one_thread", "quiet_random_weights")


def tiny(**overrides) -> TrainConfig:
    base = dict(net="purifier", width=2, blocks=1, render=4, val=1, sizes=((16, 24), (24, 32)), styles=2,
                iterations=3, batch_size=2, lr=1e-3, weights="random", max_layer="relu2_1", val_every=1)
    base.update(overrides)
    return TrainConfig(**base)


def test_multi_size_training_records_its_range_and_resumes_exactly(tmp_path: Path) -> None:
    first = tmp_path / "a.pt"
    train(tiny(iterations=2, output=str(first)))
    resumed = train(tiny(iterations=4, output=str(tmp_path / "b.pt"), resume=str(first)))
    straight = train(tiny(iterations=4, output=str(tmp_path / "c.pt")))
    for key, value in straight.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[key], value), key
    model = load_model(tmp_path / "c.pt")
    assert model.trained_sizes == [(16, 24), (24, 32)]
    assert set(straight.val_history[-1]["by_size"]) == {"16x24", "24x32"}
    assert TrainConfig.from_dict(model.checkpoint["train_config"]) == tiny(iterations=4, output=str(tmp_path / "c.pt"))


def test_warm_start_copies_the_weights(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    trained = train(tiny(iterations=1, output=str(src)))
    started = train(tiny(iterations=0, init=str(src), output=str(tmp_path / "d.pt"), val=0))
    for key, value in trained.net.state_dict().items():
        assert torch.equal(started.net.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match="is not the one being trained"):
        train(tiny(iterations=0, init=str(src), width=3, output=str(tmp_path / "e.pt"), val=0))


def test_outside_the_trained_range_the_image_is_resized_with_a_notice() -> None:
    torch.manual_seed(0)
    net = nets.build("johnson", width=2, blocks=1).eval()
    model = LoadedModel(net, {"trained_sizes": [[16, 24], [32, 48]]})
    inside = torch.rand(1, 3, 20, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model(inside)  # no notice inside the range
    torch.testing.assert_close(out, apply_model(net, inside))
    big = torch.rand(1, 3, 64, 96)
    with pytest.warns(UserWarning, match=r"trained on 16x24 to 32x48 images; this 64x96 image is resized to 32x48"):
        out = model(big)
    assert out.shape == big.shape
    assert model.working_size((64, 96)) == (32, 48) and model.working_size((8, 12)) == (16, 24)
    assert LoadedModel(net, {"size": [48, 72]}).working_size((48, 72)) is None


def test_shipped_networks_load_by_name_and_the_cli_takes_the_name(tmp_path: Path) -> None:
    from masked_gatys.cli import main
    from masked_gatys.eyes import render_eye
    from masked_gatys.image import save_image

    for name in ("johnson", "purifier"):
        assert load_model(name).trained_sizes
    eye = render_eye(size=(36, 60), seed=2, domain="real")
    save_image(eye.image, tmp_path / "e.png")
    save_image(eye.mask, tmp_path / "e_mask.png")
    result = CliRunner().invoke(main, ["stylize", str(tmp_path / "e.png"), "--mask", str(tmp_path / "e_mask.png"),
                                       "--model", "purifier", "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o.png").is_file()


def test_masked_runs_masked_eye_on_eyes_only():
    from masked_gatys.eyes import render_eye
    from masked_gatys.stylize import StylizeConfig, prepare

    eye = render_eye(size=(36, 60), seed=2, domain="real")
    style = render_eye(size=(36, 60), seed=0)
    base = StylizeConfig(weights="random", max_layer="relu2_1", device="cpu", preset="masked")
    p = prepare(eye.image, style.image, mask=eye.mask, style_mask=style.mask, config=base)
    assert p.objective_config.preset == "masked-eye" and p.regions.names == ("background", "attention", "iris",
                                                                            "pupil")
    assert p.style_regions.names == p.regions.names
    terms = p.objective(p.x0).terms
    assert "style/relu1_1@pupil" in terms and "style/relu2_1@iris" in terms
    flat = torch.full((1, 3, 36, 60), 0.5)
    p = prepare(flat, style.image, mask=eye.mask, style_mask=style.mask, config=base)
    assert p.objective_config.preset == "masked"
    for subject, name in (("general", "masked"), ("eye", "masked-eye")):
        cfg = StylizeConfig(weights="random", max_layer="relu2_1", device="cpu", preset="masked", subject=subject)
        p = prepare(eye.image, style.image, mask=eye.mask, style_mask=style.mask, config=cfg)
        assert p.objective_config.preset == name
    with pytest.raises(ValueError, match="unknown subject"):
        StylizeConfig(subject="face")


def test_cli_train_takes_sizes_styles_and_init(tmp_path: Path) -> None:
    from masked_gatys.cli import main

    out = tmp_path / "n.pt"
    args = ["train", "--render", "4", "--sizes", "16x24,24x32", "--styles", "2", "--weights", "random",
            "--max-layer", "relu2_1", "--iterations", "1", "--width", "2", "--blocks", "1", "--val", "1",
            "--net", "johnson", "--preset", "masked-eye", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert model.trained_sizes == [(16, 24), (24, 32)]
    assert model.checkpoint["objective"]["preset"] == "masked-eye"
    again = CliRunner().invoke(main, args[:-2] + ["--init", str(out), "-o", str(tmp_path / "m.pt")])
    assert again.exit_code == 0, again.output
    bad = CliRunner().invoke(main, args[:4] + ["--sizes", "16x", "-o", str(tmp_path / "z.pt")])
    assert bad.exit_code != 0 and "HEIGHTxWIDTH" in bad.output


def test_a_folder_outside_the_trained_sizes_gets_the_resize_notice_once_before_the_summary(tmp_path: Path) -> None:
    """stylize --model prints warnings through the group's warnings_as_lines alone: once each, as they
    come (it collected them and printed them again itself)."""
    from masked_gatys.cli import main
    from masked_gatys.eyes import render_eye
    from masked_gatys.image import save_image

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        eye = render_eye(size=(24, 40), seed=i, domain="real")
        save_image(eye.image, folder / f"{i}.png")
        save_image(eye.mask, folder / f"{i}_mask.png")
    result = CliRunner().invoke(main, ["stylize", str(folder), "--model", "johnson", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    notices = [line for line in result.output.splitlines() if "is resized to" in line]
    assert len(notices) == 1 and notices[0].startswith("warning: johnson was trained on")
    assert result.output.index(notices[0]) < result.output.index("wrote 3 images")
