from collections import Counter

import pytest
import torch

from mattekit.data.mixing import ScheduledBatchSampler, WeightedSourceSampler


def test_weighted_sampler_follows_weights_and_is_reproducible():
    sizes = [10, 1000]
    torch.manual_seed(0)
    draws = list(WeightedSourceSampler(sizes, [3, 1], num_samples=4000))
    from_first = sum(index < 10 for index in draws) / len(draws)
    assert 0.72 < from_first < 0.78  # 3:1 despite the 1:100 sizes
    assert all(0 <= index < 1010 for index in draws)
    torch.manual_seed(0)
    assert list(WeightedSourceSampler(sizes, [3, 1], num_samples=4000)) == draws


def test_scheduled_batches_come_from_one_source_each():
    sampler = ScheduledBatchSampler([5, 7], schedule=[0, 0, 1], batch_size=4, num_batches=6)
    batches = list(sampler)
    assert len(batches) == 6
    origin = ["a" if max(b) < 5 else "b" for b in batches]
    assert all(min(b) >= 5 for b, o in zip(batches, origin, strict=True) if o == "b")
    assert origin == ["a", "a", "b", "a", "a", "b"]
    assert Counter(len(b) for b in batches) == {4: 6}


def test_bad_mixing_arguments():
    with pytest.raises(ValueError, match="weights"):
        WeightedSourceSampler([1, 2], [1.0])
    with pytest.raises(ValueError, match="schedule"):
        ScheduledBatchSampler([1, 2], [0, 2], batch_size=1)
