"""The package's imports run downward (docs/architecture.md, "Package layout"): a module
imports only from its own layer or the layers below it. Read from the source with
``ast`` (every import statement, also those inside functions), so a late import that
climbs a layer fails here too."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "spgnet"

# lowest first; a module may import its own layer and every layer before it
LAYERS: list[tuple[str, ...]] = [
    # the config schema: spgnet.config and the model section it embeds (torch-free)
    ("spgnet", "spgnet.config", "spgnet.models.config", "spgnet.utils"),
    ("spgnet.parsing", "spgnet.pose", "spgnet.ops"),
    ("spgnet.flow", "spgnet.data"),
    ("spgnet.models",),
    ("spgnet.pipeline",),
    ("spgnet.evaluation", "spgnet.photo"),
    ("spgnet.training",),
    ("spgnet.apps",),
    ("spgnet.commands", "spgnet.cli", "spgnet.__main__"),
]
# torch-free modules (the CLI's --help and config loading import nothing heavy)
NO_TORCH = ("spgnet.config", "spgnet.models.config", "spgnet.cli", "spgnet.photo.animation")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> int:
    best, level = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level is not None, f"{name} is in no layer: add it to LAYERS and to docs/architecture.md"
    return level


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{a.name}" if node.module == "spgnet" else node.module)
                      for a in node.names]
    return found


def test_every_import_runs_downward():
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 60
    wrong = []
    for path in modules:
        me = module_name(path)
        for line, target in imports(path):
            if target != "spgnet" and not target.startswith("spgnet."):
                continue
            if target.startswith("spgnet.") and target.split(".")[1] in {"SPGNetError", "__version__"}:
                continue
            if layer_of(target) > layer_of(me):
                wrong.append(f"{path.relative_to(SRC.parent)}:{line} {me} imports {target}")
    assert not wrong, "imports that climb a layer:\n" + "\n".join(wrong)


def test_no_private_name_crosses_a_module():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spgnet"):
                wrong += [f"{path.relative_to(SRC.parent)}:{node.lineno} {node.module}.{a.name}"
                          for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if any(part.startswith("_") and part != "__main__" for part in node.module.split(".")):
                    wrong.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.module}")
    assert not wrong, "private names imported across modules:\n" + "\n".join(wrong)


def test_torch_free_modules_import_no_torch():
    code = ("import importlib, sys\n"
            f"for name in {NO_TORCH!r}:\n"
            "    importlib.import_module(name)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
            "assert not heavy, heavy[:5]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    assert done.returncode == 0, done.stderr[-2000:]


def test_inference_never_imports_training():
    """Generating, transferring and scoring load only what inference needs."""
    inference = ("spgnet.pipeline", "spgnet.photo", "spgnet.evaluation", "spgnet.apps.generate")
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        me = module_name(path)
        if any(me == m or me.startswith(m + ".") for m in inference):
            wrong += [f"{me}:{line} imports {target}" for line, target in imports(path)
                      if target == "spgnet.training" or target.startswith("spgnet.training.")]
    assert not wrong, "\n".join(wrong)
