"""Weights of the official SPGNet release (github cszy98/SPGNet, ``DualUnetGenerator_SEAN``)
<-> our :class:`~spgnet.models.generator.SPGNetGenerator`.

The official generators are the presets ``official-deepfashion`` / ``official-market``
(:func:`spgnet.models.config.model_preset`). Names differ by a fixed table
(:data:`NAME_TABLE`, placeholders ``{l}`` scale, ``{i}`` block, ``{k}`` class); values
are copied unchanged except for three systematic differences:

* the 20 ``fc_mu{k}`` Linear layers of each ACE are one stacked parameter here
  (``style_fc_weight[k]`` / ``style_fc_bias[k]``);
* spectral norm uses ``torch.nn.utils.parametrizations`` (``weight_orig``, ``weight_u``,
  ``weight_v`` -> ``parametrizations.weight.original`` / ``.0._u`` / ``.0._v``; same
  power-iteration vectors, so eval outputs match);
* the official ACE holds a SPADE module whose own BatchNorm is never called: its buffers
  (``Spade.param_free_norm.*``, always at their initial values) are dropped on import and
  written back as zeros / ones / 0 on export.

A ``module.`` prefix (DataParallel checkpoints) is accepted on import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from spgnet import SPGNetError

_ACE = "ace"
_SPECTRAL = "spectral"

# (official prefix, our prefix, rule set for the rest of the name; None = rest unchanged).
# Order matters: the first prefix that matches wins.
NAME_TABLE: tuple[tuple[str, str, str | None], ...] = (
    ("Zencoder.model.", "style_encoder.layers.", None),
    ("encp_pre_conv.", "pose_encoder.stem.", None),
    ("encp_{l}_res_{i}.", "pose_encoder.scales.{l}.res.{i}.", None),
    ("encp_{l}_downsample.", "pose_encoder.scales.{l}.down.", None),
    ("enca_pre_conv.", "appearance_encoder.stem.", None),
    ("enca_{l}_res_{i}.", "appearance_encoder.scales.{l}.res.{i}.", None),
    ("enca_{l}_vis_{i}.", "appearance_encoder.scales.{l}.fuse.{i}.", None),
    ("enca_{l}_downsample.", "appearance_encoder.scales.{l}.down.", None),
    ("dec_fuse.", "bottleneck.", None),
    ("dec_{l}_upsample_norm.", "decoder.{l}.norm.", _ACE),
    ("dec_{l}_upsample.", "decoder.{l}.up.", None),
    ("dec_{l}_res_{i}.conv_a_norm.", "decoder.{l}.blocks.{i}.norm_a.", _ACE),
    ("dec_{l}_res_{i}.conv_norm.", "decoder.{l}.blocks.{i}.norm.", _ACE),
    ("dec_{l}_res_{i}.", "decoder.{l}.blocks.{i}.", _SPECTRAL),
    ("dec_output.", "output.", None),
)

# Buffers of the official ACE's unused SPADE BatchNorm: name -> value from the ACE's channels.
_UNUSED_ACE_BUFFERS = {
    "Spade.param_free_norm.running_mean": lambda c, like: torch.zeros(c, dtype=like.dtype),
    "Spade.param_free_norm.running_var": lambda c, like: torch.ones(c, dtype=like.dtype),
    "Spade.param_free_norm.num_batches_tracked": lambda c, like: torch.tensor(0, dtype=torch.long),
}

# Rest-of-name rules inside an ACE / an SPGBlock's spectral-norm convs (full match).
# An our-side name without {k} for an official {k} is a stacked tensor indexed by k;
# None: an official buffer we do not keep.
RULES: dict[str, tuple[tuple[str, str | None], ...]] = {
    _ACE: (
        ("noise_var", "noise_scale"),
        ("blending_gamma", "blend_gamma"),
        ("blending_beta", "blend_beta"),
        ("param_free_norm.{rest}", "norm.{rest}"),
        ("Spade.mlp_shared.{rest}", "semantic.shared.{rest}"),
        ("Spade.mlp_gamma.{rest}", "semantic.gamma.{rest}"),
        ("Spade.mlp_beta.{rest}", "semantic.beta.{rest}"),
        ("fc_mu{k}.weight", "style_fc_weight"),
        ("fc_mu{k}.bias", "style_fc_bias"),
        ("conv_gamma.{rest}", "style_gamma.{rest}"),
        ("conv_beta.{rest}", "style_beta.{rest}"),
        *((name, None) for name in _UNUSED_ACE_BUFFERS),
    ),
    _SPECTRAL: (
        ("{conv}.weight_orig", "{conv}.parametrizations.weight.original"),
        ("{conv}.weight_u", "{conv}.parametrizations.weight.0._u"),
        ("{conv}.weight_v", "{conv}.parametrizations.weight.0._v"),
    ),
}

_PLACEHOLDER = {"l": r"\d+", "i": r"\d+", "k": r"\d+", "rest": r".+", "conv": r"[A-Za-z_]+"}


def _regex(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ...
    return re.compile("".join(re.escape(p) if j % 2 == 0 else f"(?P<{p}>{_PLACEHOLDER[p]})"
                              for j, p in enumerate(parts)))


OFFICIAL, OURS = 0, 1  # the two sides of every (official, ours) template pair
_TABLE = [((_regex(o), _regex(u)), (o, u), rules) for o, u, rules in NAME_TABLE]
_RULES = {key: [((_regex(o), None if u is None else _regex(u)), (o, u)) for o, u in rules]
          for key, rules in RULES.items()}


def _fill(template: str, groups: Mapping[str, str]) -> str:
    """Substitute the placeholders present in ``groups``; leave the others (``{k}``) as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: groups.get(m.group(1), m.group(0)), template)


def _translate(name: str, side: int) -> tuple[str | None, dict[str, str]] | None:
    """``name`` on ``side`` -> (its name on the other side, None for an official buffer we
    drop; the placeholders of the rest-of-name rule), or None if the table has no entry."""
    other = 1 - side
    for regexes, templates, rules in _TABLE:
        m = regexes[side].match(name)
        if not m:
            continue
        prefix, rest = _fill(templates[other], m.groupdict()), name[m.end():]
        if rules is None:
            return prefix + rest, {}
        for rule_regexes, rule_templates in _RULES[rules]:
            if rule_regexes[side] is None:  # a dropped official buffer has no our-side name
                continue
            r = rule_regexes[side].fullmatch(rest)
            if r:
                target = rule_templates[other]
                return (None if target is None else prefix + _fill(target, r.groupdict())), r.groupdict()
        return None
    return None


def official_name_to_ours(name: str) -> tuple[str, int | None] | None:
    """Official parameter/buffer name -> (our name, class index into a stacked tensor or
    None); None for an official buffer we do not keep. Raises SPGNetError if unknown."""
    name = name.removeprefix("module.")
    translated = _translate(name, OFFICIAL)
    if translated is None:
        raise SPGNetError(f"official generator weights: unexpected entry {name!r} (not a parameter or buffer "
                          f"of the official DualUnetGenerator_SEAN)")
    ours, groups = translated
    if ours is None:
        return None
    return ours, int(groups["k"]) if "k" in groups else None


def official_state_dict_to_ours(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official generator state dict -> ours (load with ``SPGNetGenerator.load_state_dict``)."""
    ours: dict[str, torch.Tensor] = {}
    stacked: dict[str, dict[int, torch.Tensor]] = {}
    for name, value in state_dict.items():
        mapped = official_name_to_ours(name)
        if mapped is None:
            continue
        our_name, index = mapped
        if index is None:
            ours[our_name] = value
        else:
            stacked.setdefault(our_name, {})[index] = value
    for our_name, parts in stacked.items():
        template = our_name_to_official(our_name)[0]
        missing = sorted(set(range(max(parts) + 1)) - set(parts))
        if missing:
            names = ", ".join(template.replace("{k}", str(k)) for k in missing)
            raise SPGNetError(f"official generator weights: missing {names}")
        shape = tuple(parts[0].shape)
        for k in range(len(parts)):  # torch.stack needs one shape: name the class that differs
            if tuple(parts[k].shape) != shape:
                raise SPGNetError(f"official generator weights: {template.replace('{k}', str(k))} has shape "
                                  f"{tuple(parts[k].shape)}, {template.replace('{k}', '0')} has {shape}")
        ours[our_name] = torch.stack([parts[k] for k in range(len(parts))])
    return ours


def our_name_to_official(name: str) -> tuple[str, bool]:
    """Our name -> (official name, stacked); a stacked tensor's official name keeps ``{k}``
    for the class index. Raises SPGNetError for a name the official model does not have."""
    translated = _translate(name, OURS)
    if translated is None:
        raise SPGNetError(f"generator weights: {name!r} has no counterpart in the official SPGNet generator")
    official = translated[0]
    return official, "{k}" in official


def ours_state_dict_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our generator state dict -> the official names and layout (inverse of
    :func:`official_state_dict_to_ours`, plus the official model's unused SPADE buffers)."""
    official: dict[str, torch.Tensor] = {}
    for name, value in state_dict.items():
        off_name, stacked = our_name_to_official(name)
        if stacked:
            for k in range(value.shape[0]):
                official[off_name.replace("{k}", str(k))] = value[k]
        else:
            official[off_name] = value
        if name.endswith(".noise_scale"):  # one per ACE: add the unused SPADE BatchNorm buffers
            ace_prefix = off_name[: -len("noise_var")]
            for buffer, make in _UNUSED_ACE_BUFFERS.items():
                official[ace_prefix + buffer] = make(value.shape[0], value)
    return official


def _official_or_own_name(name: str) -> str:
    try:
        return our_name_to_official(name)[0]
    except SPGNetError:
        return name


def load_official_generator_state(generator: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load official weights into ``generator`` (built from an ``official-*`` preset);
    a missing, unexpected or mis-shaped entry raises SPGNetError naming it."""
    ours = official_state_dict_to_ours(state_dict)
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    if missing or unexpected:
        def listing(names: list[str]) -> str:
            shown = ", ".join(_official_or_own_name(n) for n in names[:5])
            return f"{len(names)} ({shown}{', ...' if len(names) > 5 else ''})"

        raise SPGNetError(f"official generator weights do not fit this generator: missing {listing(missing)}, "
                          f"unexpected {listing(unexpected)}; build it with the preset of the weights' "
                          "dataset (official-deepfashion / official-market)")
    for name, value in ours.items():
        got, want = tuple(value.shape), tuple(expected[name].shape)
        if got == want:
            continue
        official = _official_or_own_name(name)
        if "{k}" in official and got[1:] == want[1:]:  # a stacked per-class tensor: classes absent or extra
            if got[0] < want[0]:
                names = [official.replace("{k}", str(k)) for k in range(got[0], want[0])]
                raise SPGNetError(f"official generator weights: missing {', '.join(names)} (this generator has "
                                  f"{want[0]} classes, the weights {got[0]})")
            names = [official.replace("{k}", str(k)) for k in range(want[0], got[0])]
            raise SPGNetError(f"official generator weights: unexpected {', '.join(names)} (this generator has "
                              f"{want[0]} classes, the weights {got[0]})")
        if "{k}" in official:  # per class: name the first one's official tensor
            official, got, want = official.replace("{k}", "0"), got[1:], want[1:]
        raise SPGNetError(f"official generator weights: {official} has shape {got}, this generator expects {want}")
    generator.load_state_dict(ours, strict=True)


__all__ = ["NAME_TABLE", "RULES", "official_name_to_ours", "our_name_to_official",
           "official_state_dict_to_ours", "ours_state_dict_to_official", "load_official_generator_state"]
