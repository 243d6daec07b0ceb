"""Data generated in code, no files (the ``"synthetic"`` entry of :data:`DATASETS`).

* :func:`blundell_toy`: the synthetic curve of Blundell et al. (2015), Fig. 5.
"""

from __future__ import annotations

import math

import torch


def blundell_toy(n: int = 100, x_range: tuple[float, float] = (0.0, 0.5),
                 noise_std: float = 0.02, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy regression curve of Blundell et al. (2015), Fig. 5.

    ``x ~ U(x_range)``, ``eps ~ N(0, noise_std^2)``,
    ``y = x + 0.3 sin(2 pi (x + eps)) + 0.3 sin(4 pi (x + eps)) + eps``. The paper does not state
    the number of points; ``n = 100`` is our choice. Drawn in float64 from a private
    :class:`torch.Generator`, so the result depends only on the arguments (not on the global
    RNG state).

    :param int n: number of points.
    :param x_range: ``(low, high)`` of the uniform inputs; the paper trains on about [0, 0.5].
    :param float noise_std: standard deviation of ``eps`` (0.02 read as a standard deviation).
    :param int seed: generator seed.
    :returns: ``(x, y)``: float32 ``(n, 1)`` and ``(n,)``.
    :rtype: tuple[torch.Tensor, torch.Tensor]

    References: C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra, *Weight uncertainty in
    neural networks*, ICML 2015.
    """
    lo, hi = (float(v) for v in x_range)
    if n < 0 or not hi > lo or noise_std < 0:
        raise ValueError(f"need n >= 0, x_range low < high and noise_std >= 0; got n={n}, "
                         f"x_range={x_range}, noise_std={noise_std}")
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    eps = noise_std * torch.randn(n, generator=g, dtype=torch.float64)
    z = x + eps
    y = x + 0.3 * torch.sin(2 * math.pi * z) + 0.3 * torch.sin(4 * math.pi * z) + eps
    return x.float().unsqueeze(-1), y.float()
