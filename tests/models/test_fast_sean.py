"""The fast ACE (docs/design.md §12: style identity, class-window look-ups, fused and blended γ/β)
against the straightforward implementation of spgnet.models.reference (the
official algorithm: loops over batch × classes, masked scatter, separate convs), with the
same weights, seeded noise and realistic parsing maps from the synthetic-people renderer.

fp32 outputs must agree to a max relative error of 1e-5; gradients are compared in
float64, where any restructuring that is not exact would show far above rounding.
"""

import numpy as np
import pytest
import torch

from spgnet.data.synth import ground_truth_flow
from spgnet.utils.io import image_to_tensor
from spgnet.models.config import GeneratorConfig
from spgnet.models.generator import SPGNetGenerator
from spgnet.models import reference
from spgnet.models.sean import ACE, SemanticCondition
from spgnet.parsing import one_hot

from helpers import labels_of, people

K = 20


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


def randomize_ace(ace: torch.nn.Module, seed: int) -> None:
    """Non-trivial values for the parameters that start at 0 (noise scale, blend logits)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ace.noise_scale.copy_(torch.rand(ace.noise_scale.shape, generator=g) * 0.5)
        if hasattr(ace, "blend_gamma"):
            ace.blend_gamma.fill_(0.8)
            ace.blend_beta.fill_(-1.1)


def run_both(ours, ref, *args, seed: int = 7):
    torch.manual_seed(seed)  # the noise: both draw randn(B, 1, H, W) in the same order
    a = ours(*args)
    torch.manual_seed(seed)
    b = ref(*args)
    return a, b


# --------------------------------------------------------------------------- ACE alone


def make_ace_pair(kernel: int, use_style: bool, factorized: bool, dtype=torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    ours = ACE(12, style_dim=16, kernel_size=kernel, spade_hidden=8, use_style=use_style, factorized=factorized)
    randomize_ace(ours, seed)
    ref = reference.ReferenceACE(12, K, 16, kernel, 8, use_style)
    ref.load_state_dict(ours.state_dict())
    return ours.to(dtype), ref.to(dtype)


def ace_inputs(dtype, seed: int = 3, size=(64, 44)):
    renders = people(2, size, seed)
    parsing = one_hot(labels_of(renders)).to(dtype)  # (2, 20, 64, 44), resized to x's size inside
    parsing[0, :, :, :12] = 0  # pixels of no class along the edge (the generator's pad_mode "zeros")
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(2, 12, 32, 22, generator=g) * 2 + 0.5).to(dtype)
    codes = torch.tanh(torch.randn(2, K, 16, generator=g)).to(dtype)
    codes[parsing.amax((2, 3)) == 0] = 0  # absent classes have zero codes (region pooling)
    return x, parsing, codes


def run_ace_pair(ours, ref, x, parsing, codes, route=None):
    """Ours through a SemanticCondition on ``route``, the reference on the plain tensors;
    seeded noise."""
    torch.manual_seed(7)
    a = ours(x, SemanticCondition(parsing, codes, route=route))
    torch.manual_seed(7)
    return a, ref(x, parsing, codes)


# routes: "lookup" (class-window look-ups, dense SPADE γ|β conv), "shell" (look-ups, SPADE
# γ|β conv near borders only), "conv" (grouped style conv; factorized=False: plain convs);
# "grad": a parsing that needs a gradient (the joint scheme's) falls back to "conv"
@pytest.mark.parametrize("kernel,use_style,factorized,route", [
    (5, True, True, "lookup"), (5, True, True, "shell"), (3, True, True, "shell"), (5, False, True, "shell"),
    (3, False, True, "lookup"), (5, True, True, "conv"), (5, True, True, "grad"), (5, True, False, "lookup"),
])
def test_ace_matches_reference_fp32(kernel, use_style, factorized, route):
    ours, ref = make_ace_pair(kernel, use_style, factorized)
    x, parsing, codes = ace_inputs(torch.float32)
    if route == "grad":
        parsing.requires_grad_()
    assert (SemanticCondition(parsing).labels() is not None) == (route != "grad")
    a, b = run_ace_pair(ours, ref, x, parsing, codes, route=None if route == "grad" else route)
    assert a.shape == x.shape
    assert max_rel_err(a, b) <= 1e-5


def ace_gradients(net, x, parsing, codes, wrt_parsing=False, route=None):
    torch.manual_seed(7)
    out = net(x, parsing, codes) if route is None else net(x, SemanticCondition(parsing, codes, route=route))
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    inputs = [x, codes, *net.parameters(), *([parsing] if wrt_parsing else [])]
    return torch.autograd.grad((out * weight).sum(), inputs)


@pytest.mark.parametrize("route", ["lookup", "shell", "conv"])
def test_ace_gradients_match_reference_fp64(route):
    ours, ref = make_ace_pair(5, True, True, torch.float64)
    x, parsing, codes = ace_inputs(torch.float64)
    x.requires_grad_()
    codes.requires_grad_()
    for g_ours, g_ref in zip(ace_gradients(ours, x, parsing, codes, route=route),
                             ace_gradients(ref, x, parsing, codes)):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-9 * float(g_ref.abs().max()))


def test_parsing_gradient_of_the_conv_route():
    """With a differentiated parsing (the joint scheme's straight-through one-hot) the
    style map is ``Σ_k S_k μ_k``, linear in S, so the gradient reaches the parsing through
    the style branch too (the official masked scatter gives it none). Grouped conv with
    per-sample kernels vs conv over the D-channel map: the same gradient."""
    x, parsing, codes = ace_inputs(torch.float64)
    for t in (x, parsing, codes):
        t.requires_grad_()
    factorized, _ = make_ace_pair(5, True, True, torch.float64)
    plain, _ = make_ace_pair(5, True, False, torch.float64)
    g_fact = ace_gradients(factorized, x, parsing, codes, wrt_parsing=True)[-1]
    g_plain = ace_gradients(plain, x, parsing, codes, wrt_parsing=True)[-1]
    torch.testing.assert_close(g_fact, g_plain, rtol=1e-9, atol=1e-9 * float(g_plain.abs().max()))
    assert g_fact.abs().amax() > 0


# --------------------------------------------------------------------------- whole generator


def tiny_config(**kw) -> GeneratorConfig:
    base = dict(nf=4, max_nf=8, num_scales=4, num_warp_scales=2, style_dim=16, style_nf=4, spade_hidden=8,
                ace_kernel=5, pose_channels=18)
    base.update(kw)
    return GeneratorConfig(**base)


def generator_inputs(size, dtype, seed=11, batch=2):
    renders = people(2 * batch, size, seed)
    src, tgt = renders[0::2], renders[1::2]
    flows = [ground_truth_flow(s, t) for s, t in zip(src, tgt)]
    from spgnet.pose import pose_maps

    kp = torch.from_numpy(np.stack([t["keypoints"] for t in tgt]))
    return (torch.stack([image_to_tensor(s["image"]) for s in src]).to(dtype),
            one_hot(labels_of(src)).to(dtype), one_hot(labels_of(tgt)).to(dtype),
            pose_maps(kp, size, kind="disk", radius=4.0).to(dtype),
            torch.from_numpy(np.stack([f for f, _ in flows])).to(dtype),
            torch.from_numpy(np.stack([v for _, v in flows]))[:, None].to(dtype))


def make_generator_pair(cfg: GeneratorConfig, dtype=torch.float32):
    torch.manual_seed(0)
    ours = SPGNetGenerator(cfg)
    for i, module in enumerate(m for m in ours.modules() if isinstance(m, ACE)):
        randomize_ace(module, i)
    ref = reference.ReferenceGenerator(cfg)
    ref.load_state_dict(ours.state_dict(), strict=True)  # same names: the same weights load into both
    return ours.to(dtype).train(), ref.to(dtype).train()


@pytest.mark.parametrize("variant,size,upsample_norm,route", [
    ("full", (96, 64), "before", "shell"),  # DeepFashion structure, padded to 112x64 (multiple of 16)
    ("full", (96, 64), "before", "lookup"),
    ("full", (96, 64), "before", "conv"),
    ("full", (64, 48), "after", "shell"),  # Market structure
    ("spade", (64, 48), "before", "shell"),
])
def test_generator_matches_reference_fp32(variant, size, upsample_norm, route):
    ours, ref = make_generator_pair(tiny_config(variant=variant, upsample_norm=upsample_norm))
    ours.ace_route = route
    args = generator_inputs(size, torch.float32)
    a, b = run_both(ours, ref, *args)
    assert a.shape == (2, 3, *size)
    assert max_rel_err(a, b) <= 1e-5
    with torch.no_grad():  # eval mode (running statistics) and no autograd
        a, b = run_both(ours.eval(), ref.eval(), *args)
    assert max_rel_err(a, b) <= 1e-5


@pytest.mark.parametrize("route", ["shell", "lookup"])
def test_generator_gradients_match_reference_fp64(route):
    ours, ref = make_generator_pair(tiny_config(), torch.float64)
    ours.ace_route = route
    args = generator_inputs((64, 48), torch.float64)
    grads = []
    for net in (ours, ref):
        net.zero_grad()
        torch.manual_seed(7)
        out = net(*args)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append({name: p.grad for name, p in net.named_parameters()})
    scale = max(float(g.abs().max()) for g in grads[1].values())
    for name, g_ref in grads[1].items():
        torch.testing.assert_close(grads[0][name], g_ref, rtol=1e-8, atol=1e-10 * scale, msg=name)


def test_shell_route_keeps_no_per_border_pixel_tensors_for_backward():
    """The border-shell γ|β conv re-gathers its windows in the backward instead of keeping
    the (n, k²·hidden) im2col columns, and scatters with index_put (index_copy's autograd
    keeps its (n, 2C) source): its floating-point activations are the look-up route's
    (which keeps the hidden map for the dense conv); before, 3.2× here. Only the
    integer window indices, shared by every layer of a resolution, come on top."""
    from spgnet.apps.bench import autograd_saved_mb

    ours, _ = make_generator_pair(tiny_config(spade_hidden=16))
    args = generator_inputs((96, 64), torch.float32)
    saved = {}
    for route in ("lookup", "shell"):
        ours.ace_route = route
        saved[route] = autograd_saved_mb(lambda: ours(*args).sum(), exclude=list(ours.parameters()),
                                         floating_only=True)
    assert saved["shell"] <= 1.01 * saved["lookup"], saved


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("route", ["lookup", "shell", "conv"])
def test_ace_backward_under_autocast(route, amp):
    """Mixed precision on every route: the backward runs (the shell conv's custom backward
    used to mix a bf16 gradient with fp32 weights), the gradients are fp32 like the master
    weights, finite, and close to the fp32 gradients."""
    ours, _ = make_ace_pair(5, True, True)
    x, parsing, codes = ace_inputs(torch.float32)
    x.requires_grad_()
    codes.requires_grad_()
    exact = ace_gradients(ours, x, parsing, codes, route=route)
    with torch.autocast("cpu", dtype=amp):
        mixed = ace_gradients(ours, x, parsing, codes, route=route)
    for g_mixed, g_exact in zip(mixed, exact):
        assert g_mixed.dtype == torch.float32 and torch.isfinite(g_mixed).all()
        scale = float(g_exact.abs().max()) + 1e-12
        assert float((g_mixed - g_exact).abs().max()) / scale < 0.1  # 8-bit (bf16) mantissas
