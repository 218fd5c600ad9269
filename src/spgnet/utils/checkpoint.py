"""Checkpoints that resume training exactly and load without unpickling code (docs/design.md §13).

A checkpoint is a **directory**::

    last/
      model-<name>.safetensors   one per model (G, D, SPATN, …), state-dict keys as in PyTorch
      ema-<name>.safetensors     optional exponential-moving-average copies
      training_state.pt          optimizers, schedulers, grad scalers, RNG states, step,
                                 epoch, extra — tensors and plain containers only, so it
                                 loads with torch.load(weights_only=True)
      config.json                the resolved run config (rebuilds every model)
      checkpoint.json            format, step, epoch, file list; written last: its
                                 presence marks a complete checkpoint

Weights are safetensors: tensors sharing storage (tied modules) are stored once and
their other names recorded in the file's metadata; non-contiguous tensors are saved
contiguous; spectral-norm ``weight_orig``/``weight_u``/``weight_v`` (and the
parametrization ``original``/``_u``/``_v``) are plain state-dict entries and round-trip.
Models wrapped by DDP/DataParallel/``torch.compile`` are unwrapped, so keys never carry
``module.``/``_orig_mod.`` prefixes.

Atomic replacement: everything is written (and fsynced) into ``.<name>.tmp-<id>`` next
to the target; then an existing checkpoint is renamed to ``.<name>.old-<id>``, the new
one renamed into place, and the old one deleted. A crash at any point leaves either the
new or the previous complete checkpoint: if it happens between the two renames, loading
``<name>`` falls back to the complete ``.old`` copy (one warning per process) and the next
save puts it back first. ``<id>`` is ``<random>-<pid>-<host>`` of the saving process: the
clean-up of leftovers removes only folders of this process or of a process of this host
that no longer runs (and unowned ones of older versions), never those of another live
writer. Files get the usual permissions (0666 less the umask). A full device raises
:class:`~spgnet.utils.io.NoSpaceError` naming the file and saying the previous checkpoint
is intact. In distributed training only rank 0 saves.

Loading reads ``training_state.pt`` with ``weights_only=True`` and refuses a file that
carries any other pickled object; inference (``training_state=False``, as
:func:`spgnet.pipeline.load_pipeline` loads) never reads it, the weights and the config
are enough; every requested model must match its file exactly
(missing or unexpected keys are an error naming them, never a silent partial load), and
nothing is modified until every file has been read and checked. RNG states restored:
Python ``random``, NumPy's global ``RandomState``, torch CPU and every CUDA device (the
saving process's; other DDP ranks should reseed from rank and step).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import random
import io
import re
import secrets
import shutil
import socket
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import spgnet
from spgnet import SPGNetError
from spgnet.utils.io import NoSpaceError, atomic_write_text, is_no_space, read_json, write_new_file
from spgnet.utils.weights import torch_load_plain

FORMAT = "spgnet-checkpoint"
FORMAT_VERSION = 1
META_FILE = "checkpoint.json"
STATE_FILE = "training_state.pt"
CONFIG_FILE = "config.json"
_ALIASES_KEY = "spgnet_aliases"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


# --------------------------------------------------------------------------- RNG state


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy (global), torch CPU and all CUDA RNG states as tensors and plain
    containers (loadable with ``weights_only=True``)."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states of :func:`get_rng_state`. CUDA states are restored for the
    devices present; a different device count is warned about."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), int(npst["pos"]),
                         int(npst["has_gauss"]), float(npst["cached_gaussian"])))
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = list(state.get("cuda", []))
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_states and available:
        for device, s in enumerate(cuda_states[:available]):
            torch.cuda.set_rng_state(s.cpu(), device)
    if len(cuda_states) != available and (cuda_states or available):
        warnings.warn(f"RNG state saved with {len(cuda_states)} CUDA device(s), restoring on {available}: "
                      "random numbers on the GPUs will not continue exactly", stacklevel=2)


# --------------------------------------------------------------------------- helpers


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _check_names(kind: str, names) -> None:
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            raise SPGNetError(f"checkpoint {kind} name {name!r}: use letters, digits, '_', '-' or '.'")


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with NumPy scalars made Python numbers; raise if anything would need pickle."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"cannot store {where} in a checkpoint: key {k!r} is a {type(k).__name__}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise TypeError(f"cannot store {where} in a checkpoint: it is a {type(obj).__module__}.{type(obj).__qualname__}; "
                    "only tensors, numbers, strings, None and lists/tuples/dicts of them are allowed")


def _write_bytes(path: Path, data: bytes) -> None:
    """Every file of a checkpoint is written here: a new file, 0666 less the umask, fsynced
    (OSError ENOSPC when the device is full; tests replace this function to simulate it)."""
    write_new_file(path, data)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms that cannot open folders (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _safetensors_payload(state: Mapping[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Contiguous CPU copies of a state dict for safetensors, each storage saved once.

    Entries that are the very same tensor view (tied modules) become aliases of the
    first name; other overlapping views are saved as independent copies.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: state-dict entry {name!r} is a {type(t).__name__}, not a tensor")
        t = t.detach()
        if t.numel() > 0:
            ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                     tuple(t.stride()), t.dtype)
            if ident in seen:
                aliases[name] = seen[ident]
                continue
            seen[ident] = name
        tensors[name] = torch.empty(t.shape, dtype=t.dtype, device="cpu").copy_(t)
    return tensors, aliases


def _save_weights(path: Path, state: Mapping[str, torch.Tensor], where: str) -> None:
    from safetensors.torch import save

    tensors, aliases = _safetensors_payload(state, where)
    # serialised in memory and written by _write_bytes: the file gets the umask's permissions
    # (safetensors' own writer makes 0600 files) and a full device is an OSError with errno
    _write_bytes(path, save(tensors, metadata={"format": "pt", _ALIASES_KEY: json.dumps(aliases)}))


def _read_weights(path: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise SPGNetError(f"{path}: weights file missing from the checkpoint") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise SPGNetError(f"{path}: cannot read weights ({exc})") from None
    try:
        aliases = json.loads(meta.get(_ALIASES_KEY, "{}"))
    except json.JSONDecodeError:
        raise SPGNetError(f"{path}: corrupt '{_ALIASES_KEY}' metadata") from None
    for alias, source in aliases.items():
        if source not in state:
            raise SPGNetError(f"{path}: alias {alias!r} points to missing tensor {source!r}")
        state[alias] = state[source]
    return state


def _state_of(obj: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return unwrap_model(obj).state_dict() if isinstance(obj, nn.Module) else obj


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"checkpoint config must be a dict or a dataclass, got {type(config).__name__}")
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"checkpoint config is not JSON-serialisable ({exc})") from None
    return dict(config)


# --------------------------------------------------------------------------- locating


def _is_complete(path: Path) -> bool:
    return (path / META_FILE).is_file()


def _siblings(target: Path, kind: str) -> list[Path]:
    """Leftover ``.<name>.tmp-*`` / ``.<name>.old-*`` folders of ``target``, oldest first."""
    prefix = f".{target.name}.{kind}-"
    parent = target.parent
    if not parent.is_dir():
        return []
    found = []
    for p in parent.iterdir():
        try:
            if p.name.startswith(prefix) and p.is_dir():
                found.append((p.stat().st_mtime, p))
        except FileNotFoundError:  # removed meanwhile
            pass
    return [p for _, p in sorted(found, key=lambda item: item[0])]


_OWNED = re.compile(r"\.(?:tmp|old)-[0-9a-f]+-(\d+)-([A-Za-z0-9._]+)$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _sibling_name(target: Path, kind: str) -> Path:
    """``.<name>.<kind>-<random>-<pid>-<host>``: whose temporary folder it is."""
    return target.parent / f".{target.name}.{kind}-{secrets.token_hex(4)}-{os.getpid()}-{_host()}"


def _owner(path: Path) -> tuple[int, str] | None:
    """``(pid, host)`` of the process that made a tmp/old folder; None for one of an older
    version (``.<name>.tmp-<random>``), which records no owner."""
    m = _OWNED.search(path.name)
    return (int(m.group(1)), m.group(2)) if m else None


def _abandoned(path: Path) -> bool:
    """Whether a tmp/old folder may be cleaned up: made by this process, by a process of
    this host that is gone, or by an older version (no owner). A folder of a live process,
    or of another host (whose processes cannot be checked), is left alone."""
    owner = _owner(path)
    if owner is None:
        return True
    pid, host = owner
    if host != _host():
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _recover(target: Path) -> None:
    """Finish an interrupted replacement: put a complete previous copy back under the
    target name when the target is missing, then delete leftover temporary folders —
    only abandoned ones (:func:`_abandoned`), never those of another live writer."""
    if not target.exists():
        backups = [p for p in _siblings(target, "old") if _is_complete(p) and _abandoned(p)]
        if backups:
            os.replace(backups[-1], target)
            _fsync_dir(target.parent)
    for leftover in _siblings(target, "tmp"):
        if _abandoned(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
    if _is_complete(target):
        for leftover in _siblings(target, "old"):
            if _abandoned(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


_FALLBACK_WARNED: set[str] = set()


class CheckpointFallbackWarning(UserWarning):
    """A checkpoint was missing after an interrupted save and its previous copy is used."""


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The directory of a complete checkpoint at ``path`` (which may also name a file
    inside it); falls back to the previous complete copy left by a save that was
    interrupted between its two renames, with one warning per path and process."""
    p = Path(path)
    if p.is_file() and _is_complete(p.parent):
        p = p.parent
    if _is_complete(p):
        return p
    if not p.exists():
        backups = [b for b in _siblings(p, "old") if _is_complete(b)]
        if backups:
            if str(p) not in _FALLBACK_WARNED:
                _FALLBACK_WARNED.add(str(p))
                warnings.warn(f"{p}: missing after an interrupted save; using the previous checkpoint {backups[-1]}",
                              CheckpointFallbackWarning, stacklevel=3)
            return backups[-1]
        raise SPGNetError(f"{p}: checkpoint not found")
    raise SPGNetError(f"{p}: not a complete spgnet checkpoint (no {META_FILE})")


def read_checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The contents of ``checkpoint.json`` (format, step, epoch, files) plus ``"path"``."""
    where = resolve_checkpoint(path)
    meta = read_json(where / META_FILE, "checkpoint metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SPGNetError(f"{where / META_FILE}: not an spgnet checkpoint")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise SPGNetError(f"{where}: checkpoint format version {meta.get('version')} is newer than this "
                          f"spgnet understands ({FORMAT_VERSION}); upgrade spgnet")
    meta["path"] = str(where)
    return meta


def read_checkpoint_config(path: str | os.PathLike) -> dict[str, Any]:
    """The run config stored in a checkpoint, without reading any weights."""
    where = resolve_checkpoint(path)
    if not (where / CONFIG_FILE).is_file():
        raise SPGNetError(f"{where}: checkpoint has no {CONFIG_FILE}")
    return read_json(where / CONFIG_FILE, "checkpoint config")


def read_model_state(path: str | os.PathLike, name: str, ema: bool = False,
                     map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict of one model (or its EMA copy) stored in a checkpoint."""
    meta = read_checkpoint_info(path)
    table = meta.get("ema" if ema else "models", {})
    if name not in table:
        kind = "EMA model" if ema else "model"
        raise SPGNetError(f"{meta['path']}: no {kind} {name!r} in this checkpoint (has: {', '.join(table) or 'none'})")
    return _read_weights(Path(meta["path"]) / table[name], map_location)


# --------------------------------------------------------------------------- save


def save_checkpoint(path: str | os.PathLike, *, models: Mapping[str, nn.Module | Mapping[str, torch.Tensor]],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    schedulers: Mapping[str, Any] | None = None,
                    scalers: Mapping[str, Any] | None = None,
                    step: int = 0, epoch: int = 0, config_dict: Any = None,
                    extra: Mapping[str, Any] | None = None,
                    ema: Mapping[str, nn.Module | Mapping[str, torch.Tensor]] | None = None) -> Path:
    """Write a checkpoint directory at ``path`` atomically (see the module docstring).

    ``models`` / ``ema``: name -> module (or state dict); ``optimizers``, ``schedulers``,
    ``scalers``: name -> objects with ``state_dict()``; ``config_dict``: the run config
    (dict or dataclass, JSON-serialisable); ``extra``: tensors and plain values
    (e.g. best validation loss). Replaces an existing checkpoint at ``path``; refuses
    to replace anything that is not one. Returns the checkpoint directory.
    """
    target = Path(path)
    optimizers, schedulers, scalers = optimizers or {}, schedulers or {}, scalers or {}
    ema = ema or {}
    for kind, table in (("model", models), ("EMA", ema), ("optimizer", optimizers),
                        ("scheduler", schedulers), ("scaler", scalers)):
        _check_names(kind, table)
    if not models:
        raise ValueError("save_checkpoint: no models given")
    state = _plain({
        "format": FORMAT, "version": FORMAT_VERSION, "step": int(step), "epoch": int(epoch),
        "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
        "scalers": {n: s.state_dict() for n, s in scalers.items()},
        "rng": get_rng_state(),
        "extra": dict(extra or {}),
    }, "training state")
    config = _config_dict(config_dict)

    if target.exists() and not _is_complete(target) and not (target.is_dir() and not any(target.iterdir())):
        raise SPGNetError(f"{target}: exists and is not an spgnet checkpoint; refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp = _sibling_name(target, "tmp")
    old: Path | None = None
    writing = tmp  # the file being written, for the disk-full message
    try:
        tmp.mkdir()
        model_files = {n: f"model-{n}.safetensors" for n in models}
        ema_files = {n: f"ema-{n}.safetensors" for n in ema}
        for n, m in models.items():
            writing = tmp / model_files[n]
            _save_weights(writing, _state_of(m), f"model {n!r}")
        for n, m in ema.items():
            writing = tmp / ema_files[n]
            _save_weights(writing, _state_of(m), f"EMA model {n!r}")
        writing = tmp / STATE_FILE
        buffer = io.BytesIO()
        torch.save(state, buffer)
        _write_bytes(writing, buffer.getbuffer())
        del buffer
        writing = tmp / CONFIG_FILE
        atomic_write_text(writing, json.dumps(config, indent=2) + "\n")
        writing = tmp / META_FILE
        atomic_write_text(writing, json.dumps({  # last: marks the folder complete
            "format": FORMAT, "version": FORMAT_VERSION, "step": int(step), "epoch": int(epoch),
            "models": model_files, "ema": ema_files,
            "optimizers": list(optimizers), "schedulers": list(schedulers), "scalers": list(scalers),
            "state_file": STATE_FILE, "config_file": CONFIG_FILE,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "spgnet_version": spgnet.__version__, "torch_version": torch.__version__,
        }, indent=2) + "\n")
        _fsync_dir(tmp)
        writing = target
        if target.exists():
            old = _sibling_name(target, "old")
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _recover(target)
        if is_no_space(exc):
            raise NoSpaceError(_no_space_message(writing, target), writing) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _no_space_message(writing: Path, target: Path) -> str:
    """"no space left on device while writing <file>; the previous checkpoint <target> is intact"."""
    if _is_complete(target):
        try:
            step = read_json(target / META_FILE, "checkpoint metadata").get("step")
        except (SPGNetError, AttributeError):
            step = None
        kept = f"the previous checkpoint {target}{f' (step {step})' if step is not None else ''} is intact"
    else:
        kept = f"there is no previous checkpoint at {target}, nothing was saved there"
    return f"no space left on device while writing {writing}; {kept}; free some space and resume"


# --------------------------------------------------------------------------- load


def _key_report(expected: set[str], found: set[str]) -> str:
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - 8} more" if len(keys) > 8 else ""
            parts.append(f"{label} {len(keys)} key(s): {', '.join(keys[:8])}{more}")
    return "; ".join(parts)


def _require(kind: str, wanted: Mapping[str, Any], stored: Mapping[str, Any] | list, where: Path) -> None:
    absent = [n for n in wanted if n not in stored]
    if absent:
        raise SPGNetError(f"{where}: no {kind} {', '.join(map(repr, absent))} in this checkpoint "
                          f"(has: {', '.join(stored) or 'none'})")


def load_checkpoint(path: str | os.PathLike, models: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    schedulers: Mapping[str, Any] | None = None,
                    scalers: Mapping[str, Any] | None = None,
                    restore_rng: bool = True, map_location: str | torch.device = "cpu",
                    strict: bool = True,
                    ema: Mapping[str, nn.Module] | None = None,
                    training_state: bool | None = None) -> dict[str, Any]:
    """Load a checkpoint into the given objects; return ``{"step", "epoch", "config",
    "extra", "path", "models", "ema"}``.

    ``training_state``: whether ``training_state.pt`` is read. None (default): when
    optimizers, schedulers, scalers or ``restore_rng`` need it, else when it is present
    (for ``extra``); False: never (inference: the weights and the config alone; ``extra``
    is then empty), which excludes asking for optimizers, schedulers, scalers or RNG states.

    ``models`` may be a subset of the stored models (inference loads only the
    generator); every name asked for must be stored. With ``strict`` (default) a
    model's keys must match its file exactly, else :class:`SPGNetError` names the
    missing/unexpected keys; ``strict=False`` loads the matching keys and warns with the
    list. ``map_location`` is where weights are read to before being copied into the
    models; optimizer state follows its parameters' device. Nothing is modified unless
    every requested part has been read and checked.
    """
    optimizers, schedulers, scalers, ema = optimizers or {}, schedulers or {}, scalers or {}, ema or {}
    meta = read_checkpoint_info(path)
    where = Path(meta["path"])
    _require("model", models, meta["models"], where)
    _require("EMA model", ema, meta.get("ema", {}), where)

    state_path = where / meta.get("state_file", STATE_FILE)
    state: dict[str, Any] = {"step": meta.get("step", 0), "epoch": meta.get("epoch", 0), "extra": {},
                             "optimizers": {}, "schedulers": {}, "scalers": {}}
    needed = bool(optimizers or schedulers or scalers or restore_rng)
    if training_state is False and needed:
        raise ValueError("load_checkpoint: training_state=False cannot restore optimizers, schedulers, scalers "
                         "or RNG states")
    if needed or (training_state is None and state_path.is_file()) or training_state:
        state = torch_load_plain(state_path, "checkpoint training state")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise SPGNetError(f"{state_path}: not an spgnet training-state file")
    _require("optimizer", optimizers, state["optimizers"], where)
    _require("scheduler", schedulers, state["schedulers"], where)
    _require("grad scaler", scalers, state["scalers"], where)

    loaded: list[tuple[nn.Module, dict[str, torch.Tensor], Path]] = []
    for table, files in ((models, meta["models"]), (ema, meta.get("ema", {}))):
        for name, module in table.items():
            file = where / files[name]
            weights = _read_weights(file, map_location)
            module = unwrap_model(module)
            report = _key_report(set(module.state_dict()), set(weights))
            if report and strict:
                raise SPGNetError(f"{file}: does not fit {type(module).__name__} {name!r} ({report})")
            if report:
                warnings.warn(f"{file}: partial load into {name!r} ({report})", stacklevel=2)
            loaded.append((module, weights, file))
    for name, scaler in scalers.items():
        if not state["scalers"][name] and scaler.is_enabled():
            raise SPGNetError(f"{state_path}: grad scaler {name!r} was saved disabled; cannot restore an enabled one")

    for module, weights, file in loaded:
        try:
            module.load_state_dict(weights, strict=strict)
        except RuntimeError as exc:
            detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:4])
            raise SPGNetError(f"{file}: weights do not fit {type(module).__name__} ({detail})") from None
    for name, opt in optimizers.items():
        try:
            opt.load_state_dict(state["optimizers"][name])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise SPGNetError(f"{state_path}: optimizer {name!r} does not fit its parameters ({exc})") from None
    for name, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][name])
    for name, scaler in scalers.items():
        if state["scalers"][name]:
            scaler.load_state_dict(state["scalers"][name])
    if restore_rng:
        set_rng_state(state["rng"])
    return {
        "step": int(state["step"]), "epoch": int(state["epoch"]),
        "config": read_checkpoint_config(where), "extra": state.get("extra", {}),
        "path": str(where), "models": list(meta["models"]), "ema": list(meta.get("ema", {})),
    }


__all__ = [
    "CONFIG_FILE", "FORMAT", "FORMAT_VERSION", "META_FILE", "STATE_FILE", "CheckpointFallbackWarning",
    "get_rng_state", "load_checkpoint", "read_checkpoint_config", "read_checkpoint_info",
    "read_model_state", "resolve_checkpoint", "save_checkpoint", "set_rng_state", "unwrap_model",
]
