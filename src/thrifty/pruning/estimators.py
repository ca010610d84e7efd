"""Conditional dependence estimators of MINT and SNACS (seed 003, §0.3 and §0.4).

Both estimate the conditional geometric mutual information ``I(X; Y | Z)`` (in [0, 1], 0 for
conditional independence) from ``N`` samples; ``X``, ``Y``, ``Z`` are ``[N, d]`` arrays.

**MST / Friedman–Rafsky** (:func:`gmi_mst`, MINT, Algorithms 2–3): shuffle the samples, keep
``n = N // 3`` of them as ``U``, build ``n`` approximately conditionally independent samples
``(x2, y3, z2)`` by the nearest-neighbour bootstrap (``z3`` is the Euclidean 1-NN of ``z2``;
``scipy.spatial.cKDTree``), build the Euclidean minimum spanning tree of the ``2n`` points
``[x, y, z]`` (``scipy.sparse.csgraph.minimum_spanning_tree``) and count the edges ``R`` that
join the two sets: ``I = 1 - min(R, n) / n``. Cost ``O(n^2 d)``.

**Hash ACMI** (:func:`acmi_hash`, SNACS, eqs. 4.1–4.8): hash each of ``X``, ``Y``, ``Z`` to a
cell, ``H1(v) = floor((v + b) / eps)`` per dimension then an exact random 64-bit hash of the
integer vector (``H2``; collisions are negligible), count the cells and sum
``(r_ik r_jk / r_k) g(r_ijk r_k / (r_ik r_jk))`` over the occupied ``(i, j, k)`` cells with
``g(t) = (t - 1)^2 / (2 (t + 1))``. Cost linear in ``N`` and in the dimension.

Decisions (spec §6, ambiguity 5):
- ``eps`` is per dimension, ``std_dim * U(0.7, 1.8) * t`` (EDGE's random coefficients), and
  ``b ~ U[0, eps]`` per dimension; the scale ``t`` of each block (X, Y, Z separately) is
  found by bisection so the block falls into at most ``cells`` occupied cells (default
  ``max(2, round(N ** 0.25))``). A fixed grid in a 100-dimensional ``Z`` would put every
  sample in its own cell, and a conditional estimate given unique ``Z`` cells is always 0;
  EDGE likewise tunes ``t`` by a collision-balance search.
- Empty joint cells count with ``g(0) = 1/2`` (``empty_cells=True``, default): the printed
  eq. 4.8 sums occupied cells only, which misses most of the mass of a strong dependence
  (with ``K`` cells per block, ``Y = X`` fills ``K`` of the ``K^2`` cells) and makes the
  estimate fall again as dependence grows; the full sum is the plug-in estimate of the GMI
  integral and tracks the MST estimator. ``empty_cells=False`` is the printed form.
- ``repeats`` independent hashes are averaged (default 1).
- ``Z = None`` (or zero columns) gives the unconditional estimate.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist, squareform

ArrayLike = np.ndarray

_SCALE_RANGE = (1e-4, 1e4)
_BISECTION_STEPS = 24


def _as_2d(a: ArrayLike | None, n: int) -> np.ndarray:
    if a is None:
        return np.zeros((n, 0))
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1)


def _check(x: ArrayLike, y: ArrayLike, z: ArrayLike | None, minimum: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    if n < minimum:
        raise ValueError(f"at least {minimum} samples are needed, got {n}")
    x2, y2, z2 = _as_2d(x, n), _as_2d(y, n), _as_2d(z, n)
    if not len(y2) == len(z2) == n:
        raise ValueError(f"X, Y and Z need the same number of rows, got {n}, {len(y2)}, "
                         f"{len(z2)}")
    return x2, y2, z2


# ----------------------------------------------------------------------- MST estimator
def nn_bootstrap(x2: np.ndarray, y3: np.ndarray, z2: np.ndarray, z3: np.ndarray
                 ) -> np.ndarray:
    """Samples ``(x2, y3[nn], z2)`` with ``z3[nn]`` the 1-NN of ``z2`` (Sen et al. 2017).

    With no ``Z`` columns the pairing is the given (already shuffled) row order.
    """
    nn_idx = (cKDTree(z3).query(z2, k=1)[1] if z2.shape[1]
              else np.arange(len(x2)))
    return np.hstack([x2, y3[nn_idx], z2])


def dichotomous_edges(points: np.ndarray, n_first: int) -> int:
    """Edges of the Euclidean MST of ``points`` that join the first ``n_first`` rows to the
    rest (the Friedman–Rafsky count ``R``)."""
    dist = squareform(pdist(points))
    # csgraph reads 0 as "no edge": keep duplicate points connected
    dist[dist == 0] = np.finfo(np.float64).tiny
    np.fill_diagonal(dist, 0.0)
    tree = minimum_spanning_tree(dist).tocoo()
    return int(np.sum((tree.row < n_first) != (tree.col < n_first)))


def gmi_mst(x: ArrayLike, y: ArrayLike, z: ArrayLike | None = None, *, seed: int = 0) -> float:
    """Conditional GMI ``I(X; Y | Z)`` by the MST / Friedman–Rafsky estimator (§0.3).

    Args:
        x: ``[N, d_x]`` (or ``[N]``) samples of X.
        y: ``[N, d_y]`` samples of Y.
        z: ``[N, d_z]`` samples of the conditioning Z; ``None`` (default) = unconditional.
        seed: seed of the shuffle that splits the samples (default 0).

    Returns:
        ``1 - min(R, n) / n`` in ``[0, 1]`` with ``n = N // 3``.
    """
    x, y, z = _check(x, y, z, minimum=6)
    n = len(x) // 3
    order = np.random.default_rng(seed).permutation(len(x))
    first, second, third = order[:n], order[n:2 * n], order[2 * n:3 * n]
    joint = np.hstack([x[first], y[first], z[first]])
    boot = nn_bootstrap(x[second], y[third], z[second], z[third])
    r = dichotomous_edges(np.vstack([joint, boot]), n)
    return 1.0 - min(r, n) / n


# ---------------------------------------------------------------------- hash estimator
def _grid_keys(v: np.ndarray, eps: np.ndarray, shift: np.ndarray, mix: np.ndarray
               ) -> np.ndarray:
    """H2(H1(v)): a random 64-bit hash of the integer cell of every row (int64 wrap-around)."""
    cells = np.floor(v / eps + shift).astype(np.int64)
    return cells @ mix


def block_codes(v: ArrayLike, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Cell id (``0..K-1``) of every row of a block, with ``K <= cells`` occupied cells.

    Args:
        v: ``[N, d]`` block (X, Y or Z).
        cells: the most occupied cells wanted (>= 1).
        rng: source of the random ``eps`` coefficients, shift and hash.
    """
    v = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
    if v.shape[1] == 0 or cells <= 1:
        return np.zeros(len(v), dtype=np.int64)
    std = v.std(0)
    std[std == 0] = 1.0
    coef = std * rng.uniform(0.7, 1.8, size=v.shape[1])
    shift = rng.uniform(0.0, 1.0, size=v.shape[1])
    mix = rng.integers(1, 2**62, size=v.shape[1], dtype=np.int64) | 1

    def codes(log_t: float) -> np.ndarray:
        return np.unique(_grid_keys(v, coef * np.exp(log_t), shift, mix),
                         return_inverse=True)[1]

    lo, hi = np.log(_SCALE_RANGE[0]), np.log(_SCALE_RANGE[1])
    for _ in range(_BISECTION_STEPS):  # smallest scale with at most `cells` cells
        mid = (lo + hi) / 2
        if codes(mid).max() + 1 <= cells:
            hi = mid
        else:
            lo = mid
    return codes(hi).astype(np.int64)


def default_cells(n: int) -> int:
    """Default occupied cells per block: ``max(2, round(N ** 0.25))``."""
    return max(2, round(n ** 0.25))


def _cell_key(*codes: np.ndarray) -> np.ndarray:
    """One int64 key per sample for the tuple of its cell ids (each in ``0..N-1``)."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for c in codes:
        key = key * (int(c.max()) + 1) + c
    return key


def _joint(*codes: np.ndarray) -> np.ndarray:
    """Per-sample count of the sample's joint cell of ``codes`` (each in ``0..N-1``)."""
    _, inverse, counts = np.unique(_cell_key(*codes), return_inverse=True, return_counts=True)
    return counts[inverse]


def g_divergence(t: np.ndarray) -> np.ndarray:
    """SNACS's convex ``g(t) = (t - 1)^2 / (2 (t + 1))`` (``g(1) = 0``, ``g(0) = 1/2``)."""
    return (t - 1.0) ** 2 / (2.0 * (t + 1.0))


def acmi_from_codes(cx: np.ndarray, cy: np.ndarray, cz: np.ndarray | None = None, *,
                    empty_cells: bool = True) -> float:
    """The plug-in ACMI (eq. 4.8 with ``phi = 1``) from the cell ids of X, Y and Z.

    Args:
        cx, cy: integer cell id of every sample for X and Y.
        cz: cell ids for Z (default ``None``: all in one cell, the unconditional estimate).
        empty_cells: also count the cells ``(i, j, k)`` with ``N_ijk = 0`` but
            ``N_ik, N_jk > 0``, where ``g(0) = 1/2`` (default ``True``); their total is
            ``(1 - sum of the occupied weights) / 2`` in closed form. ``False`` sums the
            occupied cells only, as eq. 4.8 is printed.
    """
    cz = np.zeros_like(cx) if cz is None else cz
    n = len(cx)
    _, first = np.unique(_cell_key(cx, cy, cz), return_index=True)
    r_ijk = _joint(cx, cy, cz)[first] / n
    r_ik = _joint(cx, cz)[first] / n
    r_jk = _joint(cy, cz)[first] / n
    r_k = _joint(cz)[first] / n
    weight = r_ik * r_jk / r_k
    occupied = float(np.sum(weight * g_divergence(r_ijk / weight)))
    return occupied + 0.5 * max(0.0, 1.0 - float(weight.sum())) if empty_cells else occupied


def acmi_hash(x: ArrayLike, y: ArrayLike, z: ArrayLike | None = None, *,
              cells: int | None = None, repeats: int = 1, empty_cells: bool = True,
              seed: int = 0) -> float:
    """Conditional GMI ``I(X; Y | Z)`` by the hash ACMI estimator with ``phi = 1`` (§0.4).

    Args:
        x: ``[N, d_x]`` (or ``[N]``) samples of X.
        y: ``[N, d_y]`` samples of Y.
        z: ``[N, d_z]`` samples of Z; ``None`` (default) = unconditional.
        cells: most occupied cells per block (default ``max(2, round(N ** 0.25))``).
        repeats: independent random hashes averaged (default 1).
        empty_cells: count empty joint cells (``g(0) = 1/2``; default ``True``), see
            :func:`acmi_from_codes`.
        seed: seed of the hashes (default 0).
    """
    x, y, z = _check(x, y, z, minimum=2)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    k = default_cells(len(x)) if cells is None else cells
    rng = np.random.default_rng(seed)
    values = [acmi_from_codes(block_codes(x, k, rng), block_codes(y, k, rng),
                              block_codes(z, k, rng), empty_cells=empty_cells)
              for _ in range(repeats)]
    return float(np.mean(values))
