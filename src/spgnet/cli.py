"""Command-line front end: thin verbs over the library.

Each verb lives in ``spgnet/commands/<verb>.py`` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. This module only parses,
dispatches and turns :class:`spgnet.SPGNetError` into one line on stderr.

Exit status (docs/operations.md): 0 success; 1 internal error (a bug: one line, the
traceback with ``SPGNET_DEBUG=1``); 2 bad input or usage (one line naming it); 3
``evaluate``: some metric unavailable; 74 no space left on device while writing; 75
``train`` stopped by SIGTERM/SIGINT/SIGUSR1 after saving ``last`` (resume with
``--resume``); 130 interrupted (Ctrl-C) outside training. An error raised inside a data
loader worker is reported as the worker's original line, and spgnet's own warnings as
one line each.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from spgnet import SPGNetError, __version__

# verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("spgnet.commands.synth", "write a synthetic people dataset (docs/design.md §5 layout)"),
    "check": ("spgnet.commands.check", "validate a dataset and report every problem at once"),
    "sheet": ("spgnet.commands.sheet", "write a PNG contact sheet of pairs with parsing and skeletons"),
    "import-official": ("spgnet.commands.import_official", "convert the official SPGNet release layout to ours"),
    "convert-official": ("spgnet.commands.convert_official", "official release weights -> our checkpoint, and back"),
    "train": ("spgnet.commands.train", "train both stages (torchrun for several GPUs)"),
    "generate": ("spgnet.commands.generate", "generate every pair of a split from a checkpoint"),
    "evaluate": ("spgnet.commands.evaluate", "score generated images: SSIM, LPIPS, FID, PCKh, mIoU (docs/design.md §10)"),
    "info": ("spgnet.commands.info", "parameters per module and GFLOPs per forward for a config"),
    "demo": ("spgnet.commands.demo", "the end-to-end demo on synthetic people"),
    "bench": ("spgnet.commands.bench", "speed, FLOPs and memory: our generator vs the straightforward reference"),
    "prepare": ("spgnet.commands.prepare", "turn a folder of your own photos into a dataset (mediapipe, offline)"),
    "transfer": ("spgnet.commands.transfer", "put the person of a photo in the pose of another photo or a keypoint JSON"),
    "animate": ("spgnet.commands.animate", "animate the person of a photo through a pose sequence (GIF/MP4)"),
    "study": ("spgnet.commands.study", "run an ablation study (variants x seeds) on synthetic people: table and plots"),
    "serve": ("spgnet.commands.serve", "a web page (and API) to re-pose a photo in the browser (Gradio; the app extra)"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen verb's module is imported (a broken or slow verb
    never affects the others, and ``spgnet --help`` imports none)."""
    parser = argparse.ArgumentParser(prog="spgnet", description="SPGNet: two-stage human pose transfer (stage-1 parsing, SEAN stage-2 generator).")
    parser.add_argument("--version", action="version", version=f"spgnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def _verb(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _original(exc: BaseException) -> BaseException:
    """A data loader worker's error as the worker raised it (without the worker's
    traceback that PyTorch puts into the re-raised message)."""
    if "in DataLoader worker process" in str(exc):
        from spgnet.data.dataset import original_error

        return original_error(exc)
    return exc


def _one_line(text: str) -> str:
    """``text`` on one line (the lines of a multi-line message joined)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip()) if "\n" in str(text) else str(text)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _one_line_warnings(command: str, show=warnings.showwarning):
    """A ``warnings.showwarning`` that prints spgnet's own warnings (raised from its code,
    or of a category it defines) as one line ``spgnet <verb>: warning: ...``; others as usual."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        ours = (category.__module__.startswith("spgnet")
                or os.path.abspath(str(filename)).startswith(_PACKAGE_DIR + os.sep))
        if not ours:
            return show(message, category, filename, lineno, file, line)
        print(f"spgnet {command}: warning: {_one_line(message)}", file=file or sys.stderr)
    return showwarning


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_verb(argv))
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return int(args._module.run(args) or 0)
    except SPGNetError as exc:
        exc = _original(exc)
        prefix = getattr(exc, "cli_prefix", "error: ")
        print(f"spgnet {args.command}: {prefix}{_one_line(exc)}", file=sys.stderr)
        code = getattr(exc, "exit_code", 2)
        return code if isinstance(code, int) and 0 < code < 256 else 2
    except KeyboardInterrupt:
        print(f"spgnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: still one line unless asked for more
        if os.environ.get("SPGNET_DEBUG"):
            raise
        exc = _original(exc)
        print(f"spgnet {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              f"(set SPGNET_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
