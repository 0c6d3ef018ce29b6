"""Attention precision: the SD processors honour diffusers' ``upcast_attention`` /
``upcast_softmax``, as the SDMatte release's classic ``AttnProcessor`` does (utils/replace.py:88,
114), and leave float32 untouched."""

from functools import partial

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from mattekit.models.sdmatte.attention import SDMatteAttnProcessor
from mattekit.models.sdmatte.configs import sd_unet_config
from mattekit.nn.masked_attention import masked_attention
from mattekit.nn.sd_attention import attend


def _layer(seed: int = 0, **flags: bool) -> Attention:
    """A 64-wide, 4-head self-attention layer whose q . k scores reach the tens (scaled q / k
    projections), where bf16 scores lose the digits the softmax needs."""
    torch.manual_seed(seed)
    layer = Attention(query_dim=64, heads=4, dim_head=16, **flags)
    with torch.no_grad():
        layer.to_q.weight.mul_(6)
        layer.to_k.weight.mul_(6)
    return layer


def _overflowing_qkv() -> tuple[torch.Tensor, ...]:
    """fp16 B x h x L x d = 1 x 2 x 8 x 16 tensors whose q . k reaches 1.3e5 > 65504 (fp16 max)."""
    torch.manual_seed(0)
    q, k = (torch.randn(1, 2, 8, 16) * 100 for _ in range(2))
    return q.half(), k.half(), torch.randn(1, 2, 8, 16).half()


@pytest.mark.parametrize(
    "flags", [{"upcast_attention": True}, {"upcast_softmax": True}], ids=["attention", "softmax"]
)
def test_attend_computes_overflowing_fp16_scores_in_float32(flags):
    q, k, v = _overflowing_qkv()
    explicit = partial(masked_attention, explicit=True)
    reference = explicit(q.float(), k.float(), v.float())

    plain = attend(Attention(query_dim=32, heads=2, dim_head=16), explicit, q, k, v)
    upcast = attend(Attention(query_dim=32, heads=2, dim_head=16, **flags), explicit, q, k, v)

    assert not torch.isfinite(plain).all()  # fp16 scores overflow to inf, the softmax to NaN
    assert upcast.dtype == torch.float32
    assert torch.allclose(upcast, reference, atol=1e-6)


@pytest.mark.parametrize("explicit", [True, False], ids=["classic", "sdpa"])
def test_processor_under_bf16_autocast_is_closer_to_fp32_with_upcast(explicit):
    """Mean |error| against the fp32 classic attention, measured (seeds 0-3): classic 0.0042-0.0046
    without upcast, 0.0032-0.0033 with (the rest is the bf16 projections); CPU SDPA already
    accumulates bf16 in float32, so there both are 0.0032-0.0033 and upcast must not be worse."""
    x = torch.randn(2, 256, 64, generator=torch.Generator().manual_seed(1))
    errors = {}
    for upcast in (False, True):
        layer = _layer(upcast_attention=upcast)
        with torch.no_grad():
            layer.set_processor(SDMatteAttnProcessor(explicit=True))
            reference = layer(x)
            layer.set_processor(SDMatteAttnProcessor(explicit=explicit))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = layer(x)
        errors[upcast] = (out.float() - reference).abs().mean().item()
    assert errors[True] < 0.0036
    if explicit:
        assert errors[False] > 0.004
    else:
        assert errors[True] <= errors[False] + 1e-5


@pytest.mark.parametrize("explicit", [True, False], ids=["classic", "sdpa"])
def test_float32_outputs_do_not_change_with_the_flags(explicit):
    x = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(2))
    outputs = []
    for flags in ({}, {"upcast_attention": True, "upcast_softmax": True}):
        layer = _layer(**flags)
        layer.set_processor(SDMatteAttnProcessor(explicit=explicit))
        with torch.no_grad():
            outputs.append(layer(x))
    assert torch.equal(outputs[0], outputs[1])


def test_upcast_follows_the_unet_config():
    # The SDMatte release's unet/config.json (SD 2.0 768-v) has no upcast_attention: False.
    assert sd_unet_config("sd2")["upcast_attention"] is False
    for upcast in (False, True):
        unet = UNet2DConditionModel(**{**sd_unet_config("tiny"), "upcast_attention": upcast})
        layers = [m for m in unet.modules() if isinstance(m, Attention)]
        assert len(layers) == 22  # attn1 + attn2 of 2 x 2 down, 1 mid and 2 x 3 up blocks
        assert {layer.upcast_attention for layer in layers} == {upcast}
        assert {layer.upcast_softmax for layer in layers} == {False}

    # A layer of an upcasting UNet attends overflowing fp16 tokens without NaN.
    unet = UNet2DConditionModel(**{**sd_unet_config("tiny"), "upcast_attention": True})
    layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    q, k, v = _overflowing_qkv()
    out = attend(layer, partial(masked_attention, explicit=True), q, k, v)
    assert torch.isfinite(out).all()
