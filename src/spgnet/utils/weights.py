"""Locating and reading pretrained weights files without ever downloading them.

Networks with fixed pretrained weights (VGG19 for the perceptual loss, InceptionV3 for
FID, AlexNet for LPIPS) need files the user provides. :func:`find_weights` looks, in
order, at

1. an explicit path (a file, or a folder holding the file under its standard name),
2. a per-network environment variable (e.g. ``SPGNET_VGG19_WEIGHTS``, a file or folder),
3. ``$SPGNET_WEIGHTS_DIR`` (one folder for all weights files, standard names),
4. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<filename>`` — where
   torchvision's own downloads land (``$TORCH_HOME/hub/checkpoints``, by default
   ``~/.cache/torch/hub/checkpoints``),

accepting in each place the standard file name (``vgg19-dcbb9e9d.pth``) or a
safetensors copy with the same stem (``vgg19-dcbb9e9d.safetensors``). A path that is
given explicitly (argument or variable) but does not exist is an error, never a
reason to fall back elsewhere. When nothing is found, :class:`MissingWeightsError`
says which file, every place looked at and how to provide it. Nothing here downloads
and nothing substitutes random weights.

:func:`load_state_dict_file` reads ``.safetensors`` or a torch ``.pth``/``.pt`` state
dict with ``torch.load(weights_only=True)``; a file that needs arbitrary pickled
objects is refused, because unpickling can run code.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from spgnet import SPGNetError

WEIGHTS_DIR_ENV = "SPGNET_WEIGHTS_DIR"


@dataclass(frozen=True)
class KnownWeights:
    """A weights file this project can use: what it is and where it can be fetched by hand."""

    description: str
    env_var: str
    url: str


KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "vgg19-dcbb9e9d.pth": KnownWeights(
        "torchvision VGG19 ImageNet weights (perceptual loss)", "SPGNET_VGG19_WEIGHTS",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    "alexnet-owt-7be5be79.pth": KnownWeights(
        "torchvision AlexNet ImageNet weights (LPIPS)", "SPGNET_ALEXNET_WEIGHTS",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "inception_v3_google-0cc3c7bd.pth": KnownWeights(
        "torchvision InceptionV3 ImageNet weights", "SPGNET_INCEPTION_WEIGHTS",
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"),
    "pt_inception-2015-12-05-6726825d.pth": KnownWeights(
        "pytorch-fid InceptionV3 (TF 2015-12-05 graph) weights (FID)", "SPGNET_FID_INCEPTION_WEIGHTS",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"),
}


class MissingWeightsError(SPGNetError):
    """A pretrained weights file is not available locally (nothing is ever downloaded)."""


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torchvision keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _safetensors_name(filename: str) -> str:
    return f"{filename.rsplit('.', 1)[0]}.safetensors"


def _candidates(location: Path, filename: str) -> list[Path]:
    """A file is itself the candidate; a folder holds the standard name or its safetensors copy."""
    if location.is_dir():
        return [location / filename, location / _safetensors_name(filename)]
    return [location]


def find_weights(filename: str, explicit_path: str | os.PathLike | None = None,
                 env_var: str | None = None) -> Path:
    """Path of the weights file ``filename`` (a standard torchvision name such as
    ``vgg19-dcbb9e9d.pth``); see the module docstring for the search order.

    ``env_var`` defaults to the variable of :data:`KNOWN_WEIGHTS` for that file.
    Raises :class:`MissingWeightsError` naming the file and every place looked at.
    """
    known = KNOWN_WEIGHTS.get(filename)
    if env_var is None and known is not None:
        env_var = known.env_var
    what = f"{known.description} file {filename}" if known else f"weights file {filename}"

    # (where it came from, path, must hold the file): an explicit path or the network's own
    # variable names this file; $SPGNET_WEIGHTS_DIR is a shared folder that may lack it.
    places: list[tuple[str, Path, bool]] = []
    if explicit_path is not None and str(explicit_path) != "":
        places.append(("given path", Path(explicit_path).expanduser(), True))
    for var, must_hold in ((env_var, True), (WEIGHTS_DIR_ENV, False)):
        if var and os.environ.get(var):
            places.append((f"${var}", Path(os.environ[var]).expanduser(), must_hold))
    for source, location, must_hold in places:
        if not location.exists():
            raise MissingWeightsError(f"{what}: {source} {location} does not exist")
        for candidate in _candidates(location, filename):
            if candidate.is_file():
                return candidate
        if must_hold:
            raise MissingWeightsError(
                f"{what}: {source} {location} is a folder without {filename} "
                f"(or {_safetensors_name(filename)})")

    hub = hub_checkpoint_dir()
    for candidate in (hub / filename, hub / _safetensors_name(filename)):
        if candidate.is_file():
            return candidate

    looked = [f"${var}={os.environ[var]}" if os.environ.get(var) else f"${var} (unset)"
              for var in (env_var, WEIGHTS_DIR_ENV) if var]
    looked.append(str(hub / filename))
    how = f"pass its path, set ${env_var} or ${WEIGHTS_DIR_ENV}" if env_var else f"pass its path or set ${WEIGHTS_DIR_ENV}"
    fetch = f"; fetch it on a machine with network from {known.url}" if known else ""
    raise MissingWeightsError(
        f"{what} not found (looked at {', '.join(looked)}); nothing is downloaded: "
        f"{how}, or copy it into {hub}{fetch}")


# torch names the refused object "Unsupported global: GLOBAL builtins.open was not ..." (2.4-2.5)
# or "Trying to load unsupported GLOBAL posix.system whose module posix is blocked." (2.6+)
_REFUSED_GLOBAL = re.compile(r"unsupported global:?\s*(?:global\s+)?([A-Za-z_][\w.]*)", re.IGNORECASE)
# torch's advice to turn the check off: never passed on to the user
_UNSAFE_ADVICE = re.compile(r"weights_only|arbitrary code|trusted source|In PyTorch 2\.6", re.IGNORECASE)


def refused_global(exc: BaseException) -> str | None:
    """The dotted name of the global a ``weights_only`` load refused (``posix.system``), or None."""
    m = _REFUSED_GLOBAL.search(str(exc))
    return m.group(1).rstrip(".") if m else None


def _short_reason(exc: BaseException) -> str:
    """The informative part of torch's long weights_only error, without its advice to
    disable the check (sentences that mention ``weights_only`` are dropped)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if _REFUSED_GLOBAL.search(line) or "weightsunpickler error" in line.lower():
            return line.split("Check the documentation")[0].strip()
    for line in lines:
        kept = [part for part in re.split(r"(?<=[.!?])\s+", line) if part and not _UNSAFE_ADVICE.search(part)]
        if kept:
            return " ".join(kept).split("Check the documentation")[0].strip()
    return type(exc).__name__


def torch_load_plain(path: str | os.PathLike, what: str = "file") -> object:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors that name the file.

    Refuses (:class:`SPGNetError`) a file whose pickle holds anything other than
    tensors and plain containers/numbers/strings: unpickling those could run code.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SPGNetError(f"{path}: {what} not found") from None
    except pickle.UnpicklingError as exc:
        name = refused_global(exc)
        found = (f"it holds the pickled Python object {name}" if name else
                 f"it holds pickled Python objects ({_short_reason(exc)})")
        raise SPGNetError(
            f"{path}: refusing to load this {what}: {found}, not only tensors and plain containers, "
            "and unpickling it could run code; spgnet never unpickles such files") from None
    except Exception as exc:  # a truncated or foreign file: name it and say why
        raise SPGNetError(f"{path}: cannot read {what} ({type(exc).__name__}: {_short_reason(exc)})") from None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a torch state dict (``.pth``/``.pt``), on the CPU.

    A torch file may wrap the state dict as ``{"state_dict": {...}}``. Anything that is
    not a flat ``str -> Tensor`` mapping is refused with an error naming the file.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except FileNotFoundError:
            raise SPGNetError(f"{path}: weights file not found") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise SPGNetError(f"{path}: cannot read safetensors weights ({exc})") from None
    else:
        state = torch_load_plain(path, "weights file")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise SPGNetError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return dict(state)


def load_exact(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Read ``path`` (safetensors or a ``weights_only`` torch state dict) into ``module``
    with ``strict=True``; a mismatch raises SPGNetError naming the file."""
    state = load_state_dict_file(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        raise SPGNetError(f"{path}: weights do not fit {type(module).__name__} ({' '.join(lines[:3])})") from None


def load_release_state_dict(path: str | os.PathLike, what: str = "state dict") -> dict[str, torch.Tensor]:
    """The tensors of a released PyTorch ``.pth`` state dict (:func:`load_state_dict_file`,
    ``weights_only``), normalised: a DataParallel ``module.`` prefix removed, float16 /
    bfloat16 made float32, and a BatchNorm without ``num_batches_tracked`` (files saved by
    torch 0.4) given it as 0, as torch does when it loads such a file. ``what`` names the
    file's role in errors (an empty file, a name stored with and without the prefix)."""
    state = load_state_dict_file(path)
    if not state:
        raise SPGNetError(f"{path}: not a {what} (it holds no tensors)")
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        plain = name.removeprefix("module.")
        if plain in out:
            raise SPGNetError(f"{path}: tensor {plain} is stored twice (with and without the 'module.' prefix)")
        out[plain] = value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
    for name in list(out):
        if name.endswith(".running_mean"):
            out.setdefault(name[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return out


__all__ = [
    "KNOWN_WEIGHTS", "KnownWeights", "MissingWeightsError", "WEIGHTS_DIR_ENV",
    "find_weights", "hub_checkpoint_dir", "load_exact", "load_release_state_dict", "load_state_dict_file",
    "torch_load_plain",
]
