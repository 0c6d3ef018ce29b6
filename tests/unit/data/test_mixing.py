from collections import Counter

import pytest

from mattekit.data.draws import Draw, DrawConcat
from mattekit.data.mixing import ScheduledBatchSampler, WeightedSourceSampler


def test_weighted_sampler_follows_weights_and_is_a_function_of_seed_and_epoch():
    sizes = [10, 1000]
    draws = list(WeightedSourceSampler(sizes, [3, 1], num_samples=4000, seed=5))
    indices = [draw.index for draw in draws]
    from_first = sum(index < 10 for index in indices) / len(indices)
    assert 0.72 < from_first < 0.78  # 3:1 despite the 1:100 sizes
    assert all(0 <= index < 1010 for index in indices)
    assert [draw.key for draw in draws[:2]] == [(5, 0, 0), (5, 0, 1)]
    again = WeightedSourceSampler(sizes, [3, 1], num_samples=4000, seed=5)
    assert list(again) == draws  # no global RNG involved
    again.set_epoch(1)
    assert [d.index for d in again] != indices
    other_seed = WeightedSourceSampler(sizes, [3, 1], num_samples=4000, seed=6)
    assert [d.index for d in other_seed] != indices


def test_resume_continues_the_epoch_where_it_stopped():
    sampler = WeightedSourceSampler([7, 9], [1, 1], num_samples=20, seed=1)
    sampler.set_epoch(3)
    whole = list(sampler)
    sampler.resume(3, 12)
    assert list(sampler) == whole[12:]
    assert list(sampler) == whole  # only the first iteration after resume is cut
    batches = ScheduledBatchSampler([5, 7], schedule=[0, 1], batch_size=2, num_batches=5, seed=1)
    all_batches = list(batches)
    batches.resume(0, 3)
    assert list(batches) == all_batches[3:]


def test_scheduled_batches_come_from_one_source_each():
    sampler = ScheduledBatchSampler([5, 7], schedule=[0, 0, 1], batch_size=4, num_batches=6)
    batches = [[draw.index for draw in batch] for batch in sampler]
    assert len(batches) == 6
    origin = ["a" if max(b) < 5 else "b" for b in batches]
    assert all(min(b) >= 5 for b, o in zip(batches, origin, strict=True) if o == "b")
    assert origin == ["a", "a", "b", "a", "a", "b"]
    assert Counter(len(b) for b in batches) == {4: 6}


def test_the_papers_schedule_draws_its_extra_iteration_from_a_group():
    """TeachDiffusionMatting: RefMatte, RefCOCO, RefMatte, RefCOCO, then one of three."""
    sizes = [10, 10, 10, 10, 10]  # sources 0-4 occupy 0-9, 10-19, ...
    schedule = [0, 1, 0, 1, (2, 3, 4)]
    sampler = ScheduledBatchSampler(sizes, schedule, batch_size=2, num_batches=60, seed=3)
    origin = [batch[0].index // 10 for batch in sampler]
    assert all(len({draw.index // 10 for draw in batch}) == 1 for batch in sampler)
    assert origin[:4] == [0, 1, 0, 1] and origin[5:9] == [0, 1, 0, 1]
    extra = origin[4::5]
    assert set(extra) == {2, 3, 4}  # every group member is drawn over 12 extra iterations
    assert origin == [batch[0].index // 10 for batch in sampler]  # the same draws every time
    with pytest.raises(ValueError, match="schedule"):
        ScheduledBatchSampler(sizes, [0, (1, 7)], batch_size=1)


def test_draws_reach_their_source_with_their_key():
    class Echo:
        def __init__(self, size):
            self.size = size

        def __len__(self):
            return self.size

        def __getitem__(self, item):
            return item

    concat = DrawConcat([Echo(3), Echo(4)])
    assert concat[Draw(4, (0, 1, 2))] == Draw(1, (0, 1, 2))
    assert concat[2] == 2
    assert Draw(4, (0, 1, 2)).rng().random() == Draw(9, (0, 1, 2)).rng().random()


def test_bad_mixing_arguments():
    with pytest.raises(ValueError, match="weights"):
        WeightedSourceSampler([1, 2], [1.0])
    with pytest.raises(ValueError, match="schedule"):
        ScheduledBatchSampler([1, 2], [0, 2], batch_size=1)
