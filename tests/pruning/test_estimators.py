"""The conditional GMI estimators: MST / Friedman-Rafsky (MINT) and hash ACMI (SNACS)."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from thrifty.pruning.estimators import (
    acmi_from_codes,
    acmi_hash,
    block_codes,
    dichotomous_edges,
    g_divergence,
    gmi_mst,
)


def normal(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.fixture(scope="module")
def data():
    n = 900
    x, z, noise = normal(n, 1, 0), normal(n, 2, 1), normal(n, 1, 2)
    return {"x": x, "z": z, "independent": normal(n, 1, 3), "dependent": x + 0.3 * noise}


@pytest.mark.parametrize("estimator,low,high", [(gmi_mst, 0.2, 0.35), (acmi_hash, 0.06, 0.15)])
def test_independent_near_zero_dependent_larger(data, estimator, low, high):
    independent = estimator(data["x"], data["independent"], data["z"])
    dependent = estimator(data["x"], data["dependent"], data["z"])
    assert 0.0 <= independent < low
    assert dependent > high and dependent > independent + 0.1


@pytest.mark.parametrize("estimator,low,high", [(gmi_mst, 0.2, 0.3), (acmi_hash, 0.08, 0.15)])
def test_conditional_independence_given_z(estimator, low, high):
    z = normal(900, 1, 0)
    x, y = z + 0.3 * normal(900, 1, 1), z + 0.3 * normal(900, 1, 2)
    assert estimator(x, y, z) < low  # X and Y only share Z
    assert estimator(x, y) > high  # but are dependent without it


def test_hash_mse_decreases_with_n():
    def mse(n):
        return np.mean([acmi_hash(normal(n, 1, s), normal(n, 1, s + 100), normal(n, 2, s + 200),
                                  seed=s) ** 2 for s in range(8)])

    assert mse(3000) < 0.6 * mse(300)


def test_hash_with_phi_one_tracks_mst():
    x, z = normal(600, 1, 0), normal(600, 2, 1)
    ys = [x + s * normal(600, 1, 2) for s in (0.1, 0.3, 0.6, 1.0, 2.0, 4.0)]
    mst = [gmi_mst(x, y, z) for y in ys]
    hashed = [acmi_hash(x, y, z, repeats=3) for y in ys]
    assert spearmanr(mst, hashed).statistic > 0.8
    assert mst[0] > mst[-1] and hashed[0] > hashed[-1]


def test_plug_in_value_is_the_exact_gmi_of_a_discrete_law():
    # X = Y uniform over K cells: GMI = (K - 1) / (K + 1); eq. 4.8 alone misses empty cells
    k = 4
    codes = np.repeat(np.arange(k), 48)
    assert acmi_from_codes(codes, codes) == pytest.approx((k - 1) / (k + 1))
    assert acmi_from_codes(codes, codes, empty_cells=False) == pytest.approx(
        g_divergence(np.array(k)) / k)
    assert g_divergence(np.array(1.0)) == 0 and g_divergence(np.array(0.0)) == 0.5
    independent = np.tile(np.arange(k), 48)  # every (i, j) equally often
    assert acmi_from_codes(codes, independent) == pytest.approx(0.0)


def test_block_codes_respect_the_cell_budget():
    rng = np.random.default_rng(0)
    v = normal(500, 30, 0)  # a 30-dimensional Z
    for cells in (2, 5, 12):
        codes = block_codes(v, cells, rng)
        assert 2 <= codes.max() + 1 <= cells and codes.min() == 0
    assert block_codes(np.zeros((10, 0)), 5, rng).max() == 0


def test_deterministic_with_a_seed_and_checks_shapes():
    x, y, z = normal(300, 1, 0), normal(300, 2, 1), normal(300, 3, 2)
    assert gmi_mst(x, y, z, seed=4) == gmi_mst(x, y, z, seed=4)
    assert acmi_hash(x, y, z, seed=4) == acmi_hash(x, y, z, seed=4)
    assert len({gmi_mst(x, y, z, seed=s) for s in range(5)}) > 1
    with pytest.raises(ValueError, match="same number of rows"):
        gmi_mst(x, y[:100], z)
    with pytest.raises(ValueError, match="at least 6"):
        gmi_mst(x[:3], y[:3])


def test_mst_counts_cross_edges_and_survives_duplicates():
    line = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert dichotomous_edges(line, 2) == 1  # 0-1 | 2-3: one edge joins the halves
    assert dichotomous_edges(np.vstack([line, line]), 4) == 4  # duplicates still connect
