"""DrawShare: one process's share of an epoch's draws under several processes."""

from mattekit.data.mixing import DrawShare, WeightedSourceSampler


def shares(processes: int, samples: int = 15) -> list[DrawShare]:
    return [
        DrawShare(WeightedSourceSampler([samples], [samples], seed=3), processes, rank)
        for rank in range(processes)
    ]


def test_the_shares_split_the_epoch_with_no_draw_twice():
    two = shares(2)
    for share in two:
        share.set_epoch(1)
    keys = [[draw.key for draw in share] for share in two]
    # 15 draws over 2 processes: 7 each, the 15th trained by no one (not repeated).
    assert [len(k) for k in keys] == [len(share) for share in two] == [7, 7]
    assert sorted(key[2] for share in keys for key in share) == list(range(14))
    assert {key[:2] for share in keys for key in share} == {(3, 1)}  # the epoch reached both


def test_each_share_is_the_single_process_epoch_at_its_positions():
    single = WeightedSourceSampler([15], [15], seed=3)
    expected = {draw.key: draw.index for draw in single}
    for share in shares(3):
        assert all(expected[draw.key] == draw.index for draw in share)
        assert [draw.key[2] for draw in share] == list(range(share.rank, 15, 3))


def test_a_resumed_share_starts_where_every_process_stopped():
    # 2 processes each trained 2 batches of 2: the epoch's positions 0 to 7 are done.
    draws = WeightedSourceSampler([15], [15], seed=3)
    draws.resume(0, 8)
    assert [draw.key[2] for draw in DrawShare(draws, 2, 1)] == [9, 11, 13]
