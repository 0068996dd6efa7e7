"""The ``masked-gatys`` command line: one click group, one module per command.

Each command lives in its own module (``cli/stylize.py``, ``cli/eyes.py``,
``cli/train.py``, ``cli/bench.py``, ``cli/purify.py``, ``cli/gaze.py``) and is imported only when it is run, so
``masked-gatys --help`` does not import torch.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(main, ["--version"]).output.startswith("masked-gatys")
True
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from masked_gatys import __version__

# command name -> (module, attribute, one-line help shown by --help)
_COMMANDS = {
    "stylize": ("masked_gatys.cli.stylize", "stylize_command",
                "Stylize images by optimisation or with a trained network."),
    "render-eyes": ("masked_gatys.cli.eyes", "render_eyes_command",
                    "Render procedural eye images with masks and ground truth."),
    "demo": ("masked_gatys.cli.eyes", "demo_command",
             "Purify a rendered real-looking eye; write a comparison sheet."),
    "purify": ("masked_gatys.cli.purify", "purify_command",
               "Purify a folder or manifest of images: resumable, sharded, under torchrun."),
    "segment": ("masked_gatys.cli.segment", "segment_command",
                "Label skin, sclera, iris and pupil of eye images; write NAME_labels.png and NAME_mask.png."),
    "train": ("masked_gatys.cli.train", "train_command",
              "Train a feed-forward network on the style objective."),
    "gaze": ("masked_gatys.cli.gaze", "gaze_command",
             "The gaze experiment: estimators trained on synthetic eyes, tested on real eyes raw and purified."),
    "bench": ("masked_gatys.cli.bench", "bench_command",
              "Benchmark speed and objective value, optimizer against networks."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = _COMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _ = entry
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:  # a command not built yet
            raise click.ClickException(f"command {name!r} is not available: {exc}") from None

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Click's main, with every error one line: usage errors exit 2, others 1.

        Click's own form of a usage error is three lines (usage, hint, error);
        here it is the error and where to look, on one line. Ctrl-C or SIGTERM
        before a command has started, the heavy imports included, ends the
        process at once with 130 / 143 (``_common.startup_signals``); then
        SIGTERM is handled as SIGINT (``_common.handle_signals``).
        """
        from masked_gatys.cli._common import handle_signals, startup_signals, warnings_as_lines

        given = kwargs["args"] if "args" in kwargs else (args[0] if args else None)
        argv = list(sys.argv[1:] if given is None else given)
        preload = bool(argv) and not {"-h", "--help", "--version"} & set(argv)
        with startup_signals(preload):
            pass
        if not standalone_mode:
            with handle_signals(), warnings_as_lines():
                return super().main(*args, standalone_mode=False, **kwargs)
        try:
            with handle_signals(), warnings_as_lines():
                code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "masked-gatys"
            click.echo(f"Error: {exc.format_message()} (see {command} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:  # click's word for a KeyboardInterrupt outside any command's own handling
            from masked_gatys.cli._common import interrupted_exit_code

            click.echo("interrupted", err=True)
            sys.exit(interrupted_exit_code())
        sys.exit(code if isinstance(code, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="masked-gatys")
def main() -> None:
    """Neural style transfer with segmentation masks (Gatys; Yan et al.)."""
