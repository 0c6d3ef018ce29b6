"""ConvNormAct: GroupNorm's group count divides any channel count."""

import pytest
import torch

from mattekit.nn.blocks import ConvNormAct, group_count


@pytest.mark.parametrize(
    ("channels", "groups"), [(12, 6), (20, 5), (7, 7), (64, 8), (11, 1), (1, 1), (8, 8)]
)
def test_group_count_is_the_largest_divisor_up_to_eight(channels, groups):
    assert group_count(channels) == groups


@pytest.mark.parametrize("channels", [12, 20, 7, 64])
def test_conv_norm_act_builds_and_runs_for_any_channel_count(channels):
    # min(8, C) groups used to fail for 12 and 20 (GroupNorm needs C % groups == 0)
    block = ConvNormAct(3, channels)
    assert block[1].num_groups == group_count(channels)
    out = block(torch.randn(2, 3, 9, 9))
    assert out.shape == (2, channels, 9, 9)
    # each group of each sample is normalised before GELU: mean 0, variance 1 (eps aside)
    normed = block[1](block[0](torch.randn(2, 3, 9, 9)))
    grouped = normed.reshape(2, group_count(channels), -1)
    assert torch.allclose(grouped.mean(-1), torch.zeros(2, group_count(channels)), atol=1e-5)
    assert torch.allclose(
        grouped.var(-1, unbiased=False), torch.ones(2, group_count(channels)), atol=1e-3
    )


def test_max_groups_is_respected():
    assert ConvNormAct(3, 12, groups=4)[1].num_groups == 4
    assert ConvNormAct(3, 12, groups=5)[1].num_groups == 4
