"""Pareto fronts and exact hypervolume (emews._pareto), against values worked out by hand
and against a Monte Carlo estimate."""

from __future__ import annotations

import numpy as np
import pytest

from emews._pareto import hypervolume, nondominated, pareto_front, reference_point


def test_nondominated_keeps_the_front_and_its_duplicates():
    y = [[1, 5], [2, 2], [5, 1], [3, 3], [2, 2], [6, 6]]
    assert nondominated(y).tolist() == [True, True, True, False, True, False]
    assert pareto_front(y).tolist() == [[1, 5], [2, 2], [2, 2], [5, 1]]


def test_hypervolume_2d_by_hand():
    # the union of [1,4]x[3,4] ... : strips of (ref_x - x) * (prev_y - y)
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(3 * 1 + 2 * 1 + 1 * 1)
    assert hypervolume([[0, 0]], [1, 2]) == pytest.approx(2.0)
    assert hypervolume([[5, 5]], [4, 4]) == 0.0  # outside the reference: nothing
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0


def test_hypervolume_3d_by_hand_and_by_sampling():
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == pytest.approx(6.0)
    # two boxes [0,2]x[0,1]x[0,1] and [0,1]x[0,2]x[0,1] overlap in [0,1]^3: 2 + 2 - 1
    assert hypervolume([[0, 1, 0], [1, 0, 0]], [2, 2, 1]) == pytest.approx(3.0)
    rng = np.random.default_rng(3)
    pts = rng.random((12, 3))
    ref = np.array([1.1, 1.1, 1.1])
    s = rng.random((200_000, 3)) * ref
    dominated = np.zeros(len(s), dtype=bool)
    for p in pts:
        dominated |= np.all(s >= p, axis=1)
    mc = dominated.mean() * np.prod(ref)
    assert hypervolume(pts, ref) == pytest.approx(mc, rel=0.02)


def test_reference_point_is_the_worst_plus_a_tenth_of_the_range():
    assert reference_point([[0, 10], [1, 0]]).tolist() == pytest.approx([1.1, 11.0])
    assert reference_point([[2, 3]]).tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="at least one"):
        reference_point(np.empty((0, 2)))
    with pytest.raises(ValueError, match="objectives"):
        hypervolume([[1, 2]], [1, 2, 3])
