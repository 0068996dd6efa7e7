"""Training, checkpoints, exact resume, inference and the ``train`` command.

Tiny networks, tiny images and random VGG weights only: no network access.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from masked_gatys import nets
from masked_gatys.errors import CheckpointError
from masked_gatys.train import (
    TrainConfig,
    apply_model,
    check_compatible,
    load_model,
    train,
    train_step,
)

SIZE = (24, 32)


pytestmark = pytest.mark.usefixtures("one_thread", "quiet_random_weights")


def tiny(**overrides) -> TrainConfig:
    base = dict(net="purifier", width=2, blocks=1, render=4, val=1, size=SIZE, iterations=2,
                batch_size=2, lr=1e-3, weights="random", max_layer="relu2_1", val_every=1)
    base.update(overrides)
    return TrainConfig(**base)


def _objective(max_layer: str = "relu2_1", tv_weight: float | None = None, seed: int = 0):
    from masked_gatys.encoder import load_encoder
    from masked_gatys.eyes import render_eye
    from masked_gatys.masks import Regions
    from masked_gatys.objective import Objective, preset

    cfg = preset("masked", max_layer=max_layer, tv_weight=tv_weight)
    enc = load_encoder(weights="random", layers=cfg.layers, seed=seed)
    eye = render_eye(yaw=0, pitch=0, domain="synthetic", size=SIZE, seed=1)
    return Objective(enc, cfg, style=eye.image, style_regions=Regions.from_binary(eye.mask))


def _batch(n: int = 2):
    from masked_gatys.eyes import render_eye

    eyes = [render_eye(yaw=10.0 * i, pitch=0, domain="real", size=SIZE, seed=10 + i) for i in range(n)]
    return torch.cat([e.image for e in eyes]), torch.cat([e.mask for e in eyes])


@pytest.mark.parametrize("name,config", [("johnson", {"blocks": 1}), ("purifier", {"dropout": 0.0})])
def test_one_training_step_lowers_the_loss(name: str, config: dict) -> None:
    torch.manual_seed(0)
    net = nets.build(name, width=4, **config).train()
    objective = _objective()
    images, masks = _batch()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = train_step(net, objective, optimizer, images, masks).total.mean()
    objective.set_content(images, regions=__import__("masked_gatys.masks", fromlist=["Regions"])
                          .Regions.from_binary(masks))
    with torch.no_grad():
        after = objective(net(images, masks)).total.mean()
    assert after < before


def test_train_writes_a_checkpoint_that_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "net.pt"
    result = train(tiny(output=str(out), sample_every=2))
    assert result.step == 2 and out.is_file()
    assert [v["step"] for v in result.val_history] == [0, 1, 2]
    assert result.samples and all(Path(p).is_file() for p in result.samples)
    model = load_model(out)
    meta = model.checkpoint
    assert meta["net"] == result.net.config
    assert meta["objective"] == result.objective_config
    assert meta["weights"]["name"] == "random(seed=0)" and len(meta["weights"]["sha256"]) == 64
    assert meta["version"] and meta["step"] == 2 and meta["max_layer"] == "relu2_1"
    assert "state_dict" not in meta and "optimizer" not in meta
    images, masks = _batch()
    torch.testing.assert_close(model(images, masks), apply_model(result.net, images, masks))
    # no temporary files left behind by the atomic write
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["net.pt"]


def test_resume_n_then_m_equals_n_plus_m(tmp_path: Path) -> None:
    first = tmp_path / "a.pt"
    train(tiny(iterations=2, output=str(first)))
    resumed = train(tiny(iterations=4, output=str(tmp_path / "b.pt"), resume=str(first)))
    straight = train(tiny(iterations=4, output=str(tmp_path / "c.pt")))
    assert resumed.step == straight.step == 4
    a, b = resumed.net.state_dict(), straight.net.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    # the shorter run really was shorter: its weights differ from the longer run's
    short = load_model(first).net.state_dict()
    assert any(not torch.equal(short[k], b[k]) for k in b if b[k].is_floating_point())


def test_callback_can_stop_and_the_checkpoint_is_readable(tmp_path: Path) -> None:
    import os
    import stat

    out = tmp_path / "net.pt"
    seen = []

    def stop_after_first(progress) -> bool:
        seen.append(progress.step)
        return progress.step >= 1

    result = train(tiny(iterations=5, val_every=0, output=str(out)), callback=stop_after_first)
    assert seen == [1] and result.interrupted and result.step == 1
    assert load_model(out).checkpoint["step"] == 1
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "a.pt"
    train(tiny(iterations=1, output=str(first)))
    with pytest.raises(CheckpointError, match="lr"):
        train(tiny(iterations=2, lr=5e-4, resume=str(first)))


def test_incompatible_objective_or_loss_network_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "net.pt"
    train(tiny(iterations=1, output=str(out), parts=False))  # the binary-mask objective of _objective()
    model = load_model(out)
    same = _objective()
    check_compatible(model, same.config, same.encoder.identity)  # no error
    other_weights = _objective(seed=1)
    with pytest.raises(CheckpointError, match="loss network random\\(seed=0\\).*not random\\(seed=1\\)"):
        check_compatible(model, other_weights.config, other_weights.encoder.identity)
    other_objective = _objective(tv_weight=1e-3)
    with pytest.raises(CheckpointError, match="another objective.*tv_weight"):
        check_compatible(model, other_objective.config, same.encoder.identity)


def test_missing_or_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint not found"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pt: not a readable checkpoint"):
        load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"hello": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="other.pt: not a masked-gatys network checkpoint"):
        load_model(other)


def test_train_from_a_folder(tmp_path: Path) -> None:
    from masked_gatys.image import save_image

    images, masks = _batch(3)
    for i in range(3):
        save_image(images[i:i + 1], tmp_path / f"e{i}.png")
        save_image(masks[i:i + 1].expand(1, 3, *SIZE), tmp_path / f"e{i}_mask.png")
    result = train(tiny(net="johnson", content_dir=str(tmp_path), iterations=1))
    assert result.step == 1 and len(result.val_history) == 2


def test_cli_train_and_resume(tmp_path: Path) -> None:
    from masked_gatys.cli import main

    out = tmp_path / "ckpt.pt"
    args = ["train", "--render", "3", "--val", "1", "--size", "24x32", "--iterations", "2",
            "--batch-size", "2", "--net", "johnson", "--width", "2", "--blocks", "1",
            "--weights", "random", "--max-layer", "relu2_1", "--device", "cpu",
            "--sample-every", "1", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.is_file()
    assert sorted(p.name for p in (tmp_path / "ckpt_samples").iterdir()) == ["step000001.png", "step000002.png"]
    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", "3"])
    assert result.exit_code == 0, result.output
    assert load_model(out).checkpoint["step"] == 3


def _deepest(objective: dict) -> str:
    from masked_gatys.encoder import layer_names

    return max((t["layer"] for t in objective["terms"] if t["layer"]), key=layer_names().index)


def test_cli_train_defaults_to_max_layer_auto_with_a_partial_weights_file(tmp_path: Path) -> None:
    """No --max-layer: the presets are cut to what the file holds (stylize's rule), and a resume
    keeps it."""
    from masked_gatys.cli import main
    from masked_gatys.encoder import _random_state

    partial = tmp_path / "vgg19_conv1_1-conv2_2.pth"  # conv1_1 .. conv2_2 (features 0, 2, 5, 7)
    torch.save({k: v for k, v in _random_state("vgg19", 0).items() if k.split(".")[0] in ("0", "2", "5", "7")},
               partial)
    out = tmp_path / "ckpt.pt"
    args = ["train", "--render", "3", "--val", "1", "--size", "24x32", "--iterations", "1", "--batch-size", "2",
            "--net", "johnson", "--width", "2", "--blocks", "1", "--weights", str(partial), "--device", "cpu",
            "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    meta = load_model(out).checkpoint
    assert meta["train_config"]["max_layer"] == "auto" and _deepest(meta["objective"]) == "relu2_2"
    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert load_model(out).checkpoint["step"] == 2


def test_resume_of_a_checkpoint_with_other_layers(tmp_path: Path) -> None:
    """``train --resume`` keeps the checkpoint's layers; a run asking for others is refused in one
    line that names both."""
    from masked_gatys.cli import main

    out = tmp_path / "ckpt.pt"
    train(tiny(iterations=1, output=str(out)))  # max_layer relu2_1, random (full) weights
    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", "2"])
    assert result.exit_code == 0, result.output
    meta = load_model(out).checkpoint
    assert meta["step"] == 2 and _deepest(meta["objective"]) == "relu2_1"
    # a checkpoint whose settings predate the recorded max_layer: its top-level record is used
    data = torch.load(out, weights_only=False)
    del data["train_config"]["max_layer"]
    torch.save(data, out)
    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", "3"])
    assert result.exit_code == 0, result.output
    # other layers than the checkpoint's: refused, naming both
    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", "4", "--max-layer", "relu1_2"])
    assert result.exit_code == 1
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and "up to relu2_1" in lines[0] and "relu1_2" in lines[0], result.output
    with pytest.raises(CheckpointError, match="up to relu2_1 .* goes to relu2_2"):
        train(tiny(iterations=4, max_layer="relu2_2", resume=str(out)))


@pytest.mark.parametrize("args,message", [
    (["--render", "2", "--content", "."], "not both"),
    (["--size", "64by96", "-o", "x.pt"], "HEIGHTxWIDTH"),
    (["--render", "2"], "-o/--output"),
    (["--style", "no-such.png", "-o", "x.pt"], "no such file"),
])
def test_cli_errors(args: list[str], message: str) -> None:
    from masked_gatys.cli import main

    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_cli_corrupt_resume_is_one_line(tmp_path: Path) -> None:
    from masked_gatys.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    result = CliRunner().invoke(main, ["train", "--resume", str(bad)])
    assert result.exit_code == 1
    assert "bad.pt: not a readable checkpoint" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["johnson", "purifier"])
def test_shipped_eye_checkpoints(name: str) -> None:
    from masked_gatys.eyes.parts import EYE_PARTS
    from masked_gatys.objective import preset
    from masked_gatys.train import shipped_checkpoint

    path = shipped_checkpoint(name)
    assert path.stat().st_size < 3_000_000
    model = load_model(path)
    meta = model.checkpoint
    assert meta["net"]["name"] == name
    assert meta["weights"]["sha256"] == "c403b74a78c8b9bf65a417b861153ab567e9f2848571b66f937779ad841955e5"
    # the pupil-keeping recipe (masked_gatys/data/README.md): skin, sclera, iris and pupil apart,
    # a style pool of one look, four sizes
    assert meta["objective"] == preset("masked-eye", regions=EYE_PARTS, max_layer="relu3_4").to_dict()
    assert meta["trained_sizes"] == [[36, 60], [48, 72], [72, 120], [144, 240]]
    assert meta["train_config"]["style_pool"] > 1 and meta["train_config"]["parts"] is True
    assert meta["val_history"][-1]["total"] < meta["val_history"][0]["total"]
    images, masks = _batch(1)
    out = model(images, masks)
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1


def test_docstring_examples_run() -> None:
    import doctest

    import masked_gatys.train as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_strip_checkpoint_thins_a_long_history(tmp_path: Path) -> None:
    from masked_gatys.train import CHECKPOINT_FORMAT, save_checkpoint, strip_checkpoint

    net = nets.build("johnson", width=2, blocks=1)
    history = [{"step": i + 1, "loss": float(i)} for i in range(1234)]
    save_checkpoint(tmp_path / "a.pt", {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": net.state_dict(),
                                        "objective": {}, "weights": {}, "optimizer": {}, "history": history,
                                        "val_history": [{"step": 1}, {"step": 1234}]})
    data = torch.load(strip_checkpoint(tmp_path / "a.pt", tmp_path / "b.pt"), weights_only=False)
    steps = [r["step"] for r in data["history"]]
    assert len(steps) <= 501 and steps[0] == 1 and steps[-1] == 1234 and steps == sorted(steps)
    assert data["val_history"] == [{"step": 1}, {"step": 1234}] and "optimizer" not in data


def _pool_objective(style, style_mask, style_parts, max_layer: str = "relu2_1"):
    """One style eye's masked-eye objective with skin and sclera apart, built directly."""
    from masked_gatys.encoder import load_encoder
    from masked_gatys.eyes.parts import EYE_PARTS, parts_from_labels
    from masked_gatys.objective import Objective, preset

    cfg = preset("masked-eye", regions=EYE_PARTS, max_layer=max_layer)
    enc = load_encoder(weights="random", layers=cfg.layers, seed=0)
    return Objective(enc, cfg, style=style, style_regions=parts_from_labels(style_parts.long()))


def test_parts_make_the_masked_objective_match_skin_and_sclera_apart() -> None:
    with_parts = train(tiny(iterations=0))
    regions = {t["region"] for t in with_parts.objective_config["terms"]}
    assert with_parts.objective_config["preset"] == "masked-eye"
    assert {"skin", "sclera", "iris", "pupil"} <= regions and "background" not in regions
    without = train(tiny(iterations=0, parts=False))
    assert without.objective_config["preset"] == "masked"
    assert {t["region"] for t in without.objective_config["terms"]} == {None, "attention", "background"}


def test_style_pool_judges_each_eye_against_its_nearest_pool_eye(tmp_path: Path) -> None:
    """The validation objective of a pool-trained net equals, eye by eye, the objective built
    from that eye's nearest pool eye alone (an independent construction of the same loss), and
    ``training_objective`` rebuilds it from the checkpoint."""
    from masked_gatys.eyes.parts import parts_from_labels
    from masked_gatys.eyes.training_data import rendered_data as _rendered_data
    from masked_gatys.train import _style_pool, training_objective

    cfg = tiny(iterations=1, render=4, val=3, style_pool=5, output=str(tmp_path / "pool.pt"))
    result = train(cfg)
    pool = _style_pool(cfg, SIZE)
    data = _rendered_data(cfg.render, cfg.val, SIZE, cfg.seed)
    nearest = pool.nearest(data.val_images)
    assert len(set(nearest.tolist())) > 1, "the test needs eyes with different nearest pool eyes"
    with torch.no_grad():
        out = result.net(data.val_images, data.val_masks)
        values = []
        for i, j in enumerate(nearest.tolist()):
            objective = _pool_objective(pool.images[j:j + 1], pool.masks[j:j + 1], pool.parts[j:j + 1])
            objective.set_content(data.val_images[i:i + 1], regions=parts_from_labels(data.val_parts[i:i + 1].long()))
            values.append(float(objective(out[i:i + 1]).total))
    assert result.val_history[-1]["total"] == pytest.approx(sum(values) / len(values), rel=1e-4)
    rebuilt = training_objective(load_model(tmp_path / "pool.pt"), data.val_images, data.val_masks,
                                 parts=data.val_parts)
    with torch.no_grad():
        assert rebuilt(out).total.tolist() == pytest.approx(values, rel=1e-4)
    # one style eye for all (the first pool eye) would give another figure
    first = _pool_objective(pool.images[:1], pool.masks[:1], pool.parts[:1])
    first.set_content(data.val_images, regions=parts_from_labels(data.val_parts.long()))
    with torch.no_grad():
        assert float(first(out).total.mean()) != pytest.approx(result.val_history[-1]["total"], rel=1e-3)


def test_a_checkpoint_from_before_parts_resumes_only_without_them(tmp_path: Path) -> None:
    out = tmp_path / "old.pt"
    train(tiny(iterations=1, output=str(out), parts=False))
    data = torch.load(out, weights_only=False)
    for key in ("parts", "style_pool"):  # as written before these settings existed
        del data["train_config"][key]
    torch.save(data, out)
    with pytest.raises(CheckpointError, match="parts=False \\(now True\\)"):
        train(tiny(iterations=2, resume=str(out), output=str(out)))
    runner = CliRunner()
    from masked_gatys.cli import main

    result = runner.invoke(main, ["train", "--resume", str(out), "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert load_model(out).checkpoint["train_config"]["parts"] is False


def test_a_stripped_checkpoint_names_its_warm_start_by_name_only(tmp_path: Path) -> None:
    from masked_gatys.train import strip_checkpoint

    first = tmp_path / "deep" / "er" / "first.pt"
    first.parent.mkdir(parents=True)
    train(tiny(iterations=1, output=str(first)))
    second = tmp_path / "second.pt"
    train(tiny(iterations=1, output=str(second), init=str(first)))
    shipped = torch.load(strip_checkpoint(second, tmp_path / "shipped.pt"), weights_only=False)
    assert shipped["train_config"]["init"] == "first.pt"
    assert str(tmp_path) not in repr(shipped["train_config"])


def test_the_training_pool_varies_the_geometry_and_keeps_one_look() -> None:
    """A network cannot see which pool eye judges it: the pool eyes differ in shape and gaze but
    share the style eye's skin and iris colours (pool eyes of their own colours stalled training)."""
    from masked_gatys.eyes import render_eye
    from masked_gatys.train import _style_pool

    cfg = tiny(style_pool=4)
    pool = _style_pool(cfg, SIZE)
    look = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=SIZE, seed=cfg.seed).truth["appearance"]
    skin = torch.tensor(look["skin_color"])
    for i in range(len(pool)):
        labels = pool.parts[i]
        mean_skin = pool.images[i][:, labels == 0].mean(dim=1)
        assert torch.allclose(mean_skin, skin, atol=0.12), (i, mean_skin, skin)
    assert len({tuple(m.flatten().tolist()) for m in (pool.masks >= 0.5).float()}) == len(pool)


@pytest.mark.parametrize("how", ["resume", "init"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_checkpoint_with_nan_or_inf_weights_is_named_not_blamed_on_the_learning_rate(tmp_path: Path, how, value):
    # issue 21, D13: "the training loss became nan; lower the learning rate (--lr)"
    from masked_gatys.train import _read_checkpoint, save_checkpoint

    first = tmp_path / "a.pt"
    train(tiny(iterations=1, output=str(first)))
    data = _read_checkpoint(first)
    key = next(k for k, v in data["state_dict"].items() if v.is_floating_point())
    data["state_dict"][key].view(-1)[0] = value
    save_checkpoint(first, data)
    with pytest.raises(CheckpointError, match=f"its (state_dict.)?{key} holds NaN or infinite values"):
        train(tiny(iterations=2, output=str(tmp_path / "b.pt"), **{how: str(first)}))


def _spy_on_masks(monkeypatch) -> tuple[list, list]:
    """Record the masks the network gets and the attention the objective gets, in training
    steps only (validation runs in eval mode, without grad)."""
    from masked_gatys.objective import Objective

    net_masks, objective_masks = [], []
    real_build, real_set_content = nets.build, Objective.set_content

    def build(*args, **kwargs):
        net = real_build(*args, **kwargs)
        net.register_forward_pre_hook(
            lambda module, inputs: net_masks.append(inputs[1].detach().clone()) if module.training else None)
        return net

    def set_content(self, images, regions=None, **kwargs):
        if torch.is_grad_enabled() and regions is not None:
            objective_masks.append(regions.masks[:, regions.names.index("attention")].unsqueeze(1).clone())
        return real_set_content(self, images, regions=regions, **kwargs)

    monkeypatch.setattr(nets, "build", build)
    monkeypatch.setattr(Objective, "set_content", set_content)
    return net_masks, objective_masks


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_mask_jitter_perturbs_the_networks_masks_and_the_objective_keeps_the_true_ones(monkeypatch, jitter) -> None:
    from masked_gatys.eyes.training_data import mix_seed
    from masked_gatys.mask_jitter import jitter_masks
    from masked_gatys.train import _batch_indices, _load_buckets

    net_masks, objective_masks = _spy_on_masks(monkeypatch)
    config = tiny(iterations=3, parts=False, val_every=0, mask_jitter=jitter)
    train(config)
    assert len(net_masks) == len(objective_masks) == 3
    data = _load_buckets(config)[0]
    for step in range(3):
        true = data.train_masks[_batch_indices(data.train_images.shape[0], 2, config.seed, step)]
        assert torch.equal(objective_masks[step], true), step  # the loss: always the true masks
        if jitter == 0:
            assert torch.equal(net_masks[step], true), step
        else:  # the network: every mask perturbed, as the step's generator draws it
            assert all(not torch.equal(net_masks[step][i], true[i]) for i in range(2)), step
            expected = jitter_masks(true, 1.0, torch.Generator().manual_seed(mix_seed(config.seed, 10, step)))
            assert torch.equal(net_masks[step], expected), step


def test_train_step_gives_the_network_its_masks_and_the_objective_the_true_ones() -> None:
    torch.manual_seed(0)
    net = nets.build("johnson", width=2, blocks=1).train()
    seen = []
    net.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[1].clone()))
    objective = _objective()
    seen_regions = []
    real_set_content = objective.set_content

    def record(images, regions=None):
        seen_regions.append(regions)
        return real_set_content(images, regions=regions)

    objective.set_content = record
    images, masks = _batch(2)
    holed = masks.clone()
    holed[..., 10:14, 14:18] = 0
    assert not torch.equal(holed, masks)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    train_step(net, objective, optimizer, images, masks, net_masks=holed)
    assert torch.equal(seen[0], holed)
    attention = seen_regions[0].masks[:, seen_regions[0].names.index("attention")].unsqueeze(1)
    assert torch.equal(attention, masks)


def test_a_resume_with_mask_jitter_replays_the_same_steps(tmp_path: Path) -> None:
    first = tmp_path / "a.pt"
    train(tiny(iterations=2, mask_jitter=1.0, output=str(first)))
    assert load_model(first).checkpoint["train_config"]["mask_jitter"] == 1.0
    resumed = train(tiny(iterations=4, mask_jitter=1.0, output=str(tmp_path / "b.pt"), resume=str(first)))
    straight = train(tiny(iterations=4, mask_jitter=1.0, output=str(tmp_path / "c.pt")))
    exact = train(tiny(iterations=4, output=str(tmp_path / "d.pt")))
    a, b, c = resumed.net.state_dict(), straight.net.state_dict(), exact.net.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    # the jitter changed the training: the exact-mask run ends elsewhere
    assert any(not torch.equal(b[k], c[k]) for k in b if b[k].is_floating_point())
    with pytest.raises(CheckpointError, match="mask_jitter=1.0 \\(now 0.5\\)"):
        train(tiny(iterations=5, mask_jitter=0.5, resume=str(first)))


def test_a_checkpoint_from_before_mask_jitter_resumes_as_exact_masks(tmp_path: Path) -> None:
    out = tmp_path / "old.pt"
    train(tiny(iterations=1, output=str(out)))
    data = torch.load(out, weights_only=False)
    del data["train_config"]["mask_jitter"]  # as written before the setting existed
    torch.save(data, out)
    with pytest.raises(CheckpointError, match="mask_jitter=0.0 \\(now 0.5\\)"):
        train(tiny(iterations=2, mask_jitter=0.5, resume=str(out), output=str(out)))
    from masked_gatys.cli import main

    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert load_model(out).checkpoint["train_config"]["mask_jitter"] == 0.0


def test_cli_mask_jitter_is_recorded_and_checked(tmp_path: Path) -> None:
    from masked_gatys.cli import main

    out = tmp_path / "net.pt"
    args = ["train", "--render", "3", "--val", "1", "--size", "24x32", "--net", "johnson", "--width", "2",
            "--blocks", "1", "--batch-size", "2", "--iterations", "1", "--weights", "random",
            "--max-layer", "relu2_1", "--device", "cpu", "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--mask-jitter", "0.5"])
    assert result.exit_code == 0, result.output
    assert load_model(out).checkpoint["train_config"]["mask_jitter"] == 0.5
    bad = CliRunner().invoke(main, [*args, "--mask-jitter", "1.5"])
    assert bad.exit_code == 2 and "--mask-jitter" in bad.output
    with pytest.raises(ValueError, match="mask_jitter"):
        tiny(mask_jitter=-0.1)
