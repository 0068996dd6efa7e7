"""What the repository itself holds: no path of the machine it was made on, a licence file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# spelled in pieces so that this file does not match itself
MACHINE_PATHS = re.compile("|".join(["/wo" + "rk/", "/t" + "mp/", "shared/" + "weights", r"\.\./" + "shared"]))


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.splitlines() if line]


def test_no_tracked_text_file_names_a_path_of_this_machine():
    bad = []
    for path in _tracked():
        if path.suffix in (".png", ".pt", ".jpg") or not path.is_file() or path.parts[-2] == "tests":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if MACHINE_PATHS.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}")
    assert not bad, "\n".join(bad)


def test_recorded_json_names_files_not_where_they_lay():
    import json

    def strings(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                yield from strings(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from strings(v)
        elif isinstance(obj, str):
            yield obj

    for path in _tracked():
        if path.suffix == ".json":
            absolute = [s for s in strings(json.loads(path.read_text())) if s.startswith("/")]
            assert not absolute, f"{path.name}: {absolute[:3]}"


def test_shipped_checkpoints_hold_no_machine_path():
    for path in sorted((ROOT / "masked_gatys" / "data").glob("*.pt")):
        settings = torch.load(path, map_location="cpu", weights_only=True).get("train_config", {})
        paths = {k: v for k, v in settings.items() if isinstance(v, str) and "/" in v}
        assert not paths, f"{path.name}: {paths}"


def test_strip_checkpoint_keeps_file_names_only(tmp_path):
    from masked_gatys import nets
    from masked_gatys.train import CHECKPOINT_FORMAT, save_checkpoint, strip_checkpoint

    net = nets.build("johnson", width=2, blocks=1)
    save_checkpoint(tmp_path / "a.pt", {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": net.state_dict(),
                                        "objective": {}, "weights": {}, "train_config": {
                                            "weights": str(tmp_path / "w" / "vgg.pth"), "output": "x/a.pt",
                                            "iterations": 3, "style": "rendered"}})
    settings = torch.load(strip_checkpoint(tmp_path / "a.pt", tmp_path / "b.pt"), weights_only=True)["train_config"]
    assert settings == {"weights": "vgg.pth", "output": "a.pt", "iterations": 3, "style": "rendered"}


def test_recorded_name():
    from masked_gatys.files import recorded_name

    assert recorded_name("/somewhere/vgg19.pth") == "vgg19.pth" and recorded_name("imagenet") == "imagenet"


def test_training_doc_holds_no_stale_or_internal_text():
    text = (ROOT / "docs" / "training.md").read_text()
    for phrase in ("stylize's owner", "scratch/", "paints a bright blob"):
        assert phrase not in text, phrase
