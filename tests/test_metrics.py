"""Analytic checks of experiments.engine.metrics."""

import math

import pytest
import torch

from experiments.engine import metrics as M

# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------


def test_rmse_mae_hand_values():
    mean = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([1.0, 0.0, 3.0, 7.0])  # errors 0, 2, 0, -3
    assert M.rmse(mean, y) == pytest.approx(math.sqrt((4 + 9) / 4))
    assert M.mae(mean, y) == pytest.approx((2 + 3) / 4)
    assert isinstance(M.rmse(mean, y), float) and isinstance(M.mae(mean, y), float)
    assert M.rmse(y, y) == 0.0 and M.mae(y, y) == 0.0


def test_gaussian_ll_single_sample_equals_normal_log_prob():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(1, 20, generator=g)
    scale = torch.rand(1, 20, generator=g) + 0.1
    y = torch.randn(20, generator=g)
    expected = torch.distributions.Normal(loc[0], scale[0]).log_prob(y)
    per_point = M.gaussian_log_likelihood_per_point(loc, scale, y)
    assert per_point.shape == (20,)
    torch.testing.assert_close(per_point, expected)
    assert M.gaussian_log_likelihood(loc, scale, y) == pytest.approx(float(expected.mean()))
    # an (N,) loc is S = 1
    assert M.gaussian_log_likelihood(loc[0], scale[0], y) == pytest.approx(float(expected.mean()))


def test_gaussian_ll_identical_samples_equal_single_sample():
    g = torch.Generator().manual_seed(1)
    loc1 = torch.randn(1, 15, generator=g)
    y = torch.randn(15, generator=g)
    expected = float(torch.distributions.Normal(loc1[0], 0.5).log_prob(y).mean())
    loc = loc1.expand(7, 15)
    assert M.gaussian_log_likelihood(loc, 0.5, y) == pytest.approx(expected, abs=1e-5)
    assert M.gaussian_log_likelihood(loc, torch.full((7, 1), 0.5), y) == pytest.approx(
        expected, abs=1e-5
    )


def test_gaussian_ll_y_scale_shift():
    g = torch.Generator().manual_seed(2)
    loc = torch.randn(5, 10, generator=g)
    scale = torch.rand(5, 10, generator=g) + 0.2
    y = torch.randn(10, generator=g)
    base = M.gaussian_log_likelihood(loc, scale, y)
    for y_scale in (0.3, 2.0, 17.5):
        shifted = M.gaussian_log_likelihood(loc, scale, y, y_scale=y_scale)
        assert shifted - base == pytest.approx(-math.log(y_scale), abs=1e-5)
    # equals the density of the un-standardised variables
    mu, sd = 3.0, 4.0
    direct = M.gaussian_log_likelihood(loc * sd + mu, scale * sd, y * sd + mu)
    assert M.gaussian_log_likelihood(loc, scale, y, y_scale=sd) == pytest.approx(direct, abs=1e-5)


def test_log_mean_exp_jensen():
    g = torch.Generator().manual_seed(3)
    log_probs = torch.randn(8, 12, generator=g) * 3.0  # differing samples
    lme = M.log_likelihood_from_samples(log_probs)
    mean_of_log = float(log_probs.mean())
    assert lme > mean_of_log + 1e-3
    expected = float((torch.logsumexp(log_probs, 0) - math.log(8)).mean())
    assert lme == pytest.approx(expected)
    # identical samples: no gap
    same = torch.randn(1, 12, generator=g).expand(8, 12)
    assert M.log_likelihood_from_samples(same) == pytest.approx(float(same.mean()), abs=1e-5)
    # the Gaussian LL is log-mean-exp, not mean of log
    loc = torch.tensor([[-1.0], [2.0]])
    y = torch.tensor([0.0])
    lp = torch.distributions.Normal(loc, 1.0).log_prob(y)
    assert M.gaussian_log_likelihood(loc, 1.0, y) == pytest.approx(
        float(torch.logsumexp(lp, 0).mean() - math.log(2))
    )
    assert M.gaussian_log_likelihood(loc, 1.0, y) != pytest.approx(float(lp.mean()))


def test_log_mean_exp_stable_for_large_magnitudes():
    a = torch.tensor([[-1000.0], [-1000.0]])
    assert float(M.log_mean_exp(a)) == pytest.approx(-1000.0)


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------


def test_accuracy_and_nll():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    y = torch.tensor([0, 2, 2, 2])
    assert M.accuracy(p, y) == pytest.approx(0.5)
    nll = M.nll(p, y)
    assert math.isfinite(nll)  # log(0) is clamped
    finite_part = -(math.log(0.7) + math.log(0.1) + math.log(0.4))
    assert nll > finite_part / 4 + 10
    y_ok = torch.tensor([0, 1, 2, 0])
    assert M.nll(p, y_ok) == pytest.approx(
        -(math.log(0.7) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4
    )
    # (S, N, C) samples are averaged first
    samples = torch.stack([p, p])
    assert M.accuracy(samples, y) == pytest.approx(0.5)
    torch.testing.assert_close(M.predictive_mean(samples), p)


def test_ece_zero_for_perfect_calibration():
    # 10 points with confidence 0.8, 8 of them correct
    p = torch.tensor([[0.8, 0.2]]).expand(10, 2)
    y = torch.tensor([0] * 8 + [1] * 2)
    assert M.expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-6)
    # and a mix of two calibrated bins
    p2 = torch.cat([p, torch.tensor([[0.4, 0.6]]).expand(5, 2)])
    y2 = torch.cat([y, torch.tensor([1, 1, 1, 0, 0])])
    assert M.expected_calibration_error(p2, y2) == pytest.approx(0.0, abs=1e-6)


def test_ece_hand_computed():
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = torch.tensor([0, 1, 0, 0])
    # 2 bins (0, .5], (.5, 1]: all confidences (0.9, 0.9, 0.6, 0.6) fall in bin 2
    # acc = 2/4, conf = 0.75 -> ECE = |0.5 - 0.75| = 0.25
    assert M.expected_calibration_error(p, y, n_bins=2) == pytest.approx(0.25)
    # 10 bins: {0.9, 0.9} in (0.8, 0.9]: acc .5, conf .9; {0.6, 0.6} in (0.5, 0.6]: acc .5
    # ECE = 2/4 * 0.4 + 2/4 * 0.1 = 0.25
    assert M.expected_calibration_error(p, y, n_bins=10) == pytest.approx(0.25)
    # 15 bins: single bin (0.8667, 0.9333] for 0.9 and (0.5333, 0.6] for 0.6
    p3 = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    y3 = torch.tensor([0, 0, 0])
    assert M.expected_calibration_error(p3, y3) == pytest.approx((2 * 0.1 + 0.4) / 3)
    # confidence exactly 1 lands in the last bin
    p4 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert M.expected_calibration_error(p4, torch.tensor([0, 1])) == pytest.approx(0.5)


def test_entropy_of_uniform_is_log_c():
    C = 7
    probs = torch.full((3, 5, C), 1.0 / C)
    torch.testing.assert_close(M.predictive_entropy(probs), torch.full((5,), math.log(C)))
    torch.testing.assert_close(M.expected_entropy(probs), torch.full((5,), math.log(C)))
    torch.testing.assert_close(M.mutual_information(probs), torch.zeros(5))


def test_mutual_information():
    g = torch.Generator().manual_seed(4)
    one = torch.softmax(torch.randn(1, 6, 4, generator=g), -1)
    identical = one.expand(10, 6, 4)
    mi = M.mutual_information(identical)
    assert mi.shape == (6,)
    assert (mi >= 0).all() and float(mi.max()) < 1e-6
    # two confident samples that disagree: H[pbar] = log 2, E H = 0
    disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    torch.testing.assert_close(M.mutual_information(disagree), torch.tensor([math.log(2)]))
    torch.testing.assert_close(M.expected_entropy(disagree), torch.tensor([0.0]))
    # MI = H[pbar] - E H for random samples, and is positive
    probs = torch.softmax(3 * torch.randn(5, 6, 4, generator=g), -1)
    mi = M.mutual_information(probs)
    torch.testing.assert_close(mi, M.predictive_entropy(probs) - M.expected_entropy(probs))
    assert (mi > 0).all()


# ---------------------------------------------------------------------------------------------
# coverage
# ---------------------------------------------------------------------------------------------


def test_interval_coverage_of_calibrated_gaussian():
    g = torch.Generator().manual_seed(5)
    samples = torch.randn(4000, 2000, generator=g)
    y = torch.randn(2000, generator=g)
    assert M.interval_coverage(samples, y, level=0.95) == pytest.approx(0.95, abs=0.02)
    assert M.interval_coverage(samples, y, level=0.5) == pytest.approx(0.5, abs=0.03)
    zeros, ones = torch.zeros(2000), torch.ones(2000)
    assert M.gaussian_interval_coverage(zeros, ones, y, level=0.95) == pytest.approx(0.95, abs=0.02)
    assert M.gaussian_interval_coverage(zeros, 1.0, y, level=0.5) == pytest.approx(0.5, abs=0.03)


def test_interval_coverage_hand_values():
    samples = torch.arange(101.0).unsqueeze(1).expand(101, 3)  # quantiles 2.5 and 97.5
    y = torch.tensor([2.0, 50.0, 98.0])
    assert M.interval_coverage(samples, y) == pytest.approx(1 / 3)
    # z(0.95) = 1.959964
    mean = torch.zeros(2)
    assert M.gaussian_interval_coverage(mean, 1.0, torch.tensor([1.95, 1.97])) == 0.5


def test_coverage_calibration_error():
    # a calibrated Gaussian: every central interval covers about its level
    y = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    zeros, ones = torch.zeros_like(y), torch.ones_like(y)
    curve = M.coverage_curve(zeros, ones, y)
    assert curve.shape == (len(M.CALIBRATION_LEVELS),)
    assert torch.allclose(curve, torch.tensor(M.CALIBRATION_LEVELS, dtype=torch.float64),
                          atol=0.015)
    assert M.coverage_calibration_error(zeros, ones, y) < 0.01
    # hand values: sd -> 0 covers nothing (mean of the levels 0.05..0.95 = 0.5); sd -> inf
    # covers everything (mean of 1 - level = 0.5); two levels by hand
    assert M.coverage_calibration_error(zeros, 1e-9, y) == pytest.approx(0.5)
    assert M.coverage_calibration_error(zeros, 1e9, y) == pytest.approx(0.5)
    # z(0.5) = 0.674, z(0.9) = 1.645: |y| = 1 is inside the 0.9 interval only
    half = torch.tensor([1.0, 0.1])
    assert M.coverage_curve(torch.zeros(2), 1.0, half, [0.5, 0.9]).tolist() == [0.5, 1.0]
    assert M.coverage_calibration_error(torch.zeros(2), 1.0, half, [0.5, 0.9]) == \
        pytest.approx((0.0 + 0.1) / 2)
    with pytest.raises(ValueError, match="level"):
        M.coverage_calibration_error(zeros, ones, y, [0.5, 1.0])
    with pytest.raises(ValueError, match="levels is empty"):
        M.coverage_curve(zeros, ones, y, [])


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.rmse(torch.zeros(3), torch.zeros(4)), r"\(3,\).*\(4,\)"),
        (lambda: M.mae(torch.zeros(3), torch.zeros(4)), "same shape"),
        (lambda: M.rmse(torch.zeros(0), torch.zeros(0)), "empty"),
        (
            lambda: M.gaussian_log_likelihood(torch.zeros(2, 3), 1.0, torch.zeros(4)),
            r"\(2, 3\).*\(4,\)",
        ),
        (
            lambda: M.gaussian_log_likelihood(torch.zeros(2, 3), torch.ones(3, 3), torch.zeros(3)),
            "broadcastable",
        ),
        (lambda: M.gaussian_log_likelihood(torch.zeros(2, 3), 0.0, torch.zeros(3)), "positive"),
        (
            lambda: M.gaussian_log_likelihood(torch.zeros(2, 3), 1.0, torch.zeros(3), y_scale=0),
            "y_scale",
        ),
        (lambda: M.gaussian_log_likelihood(torch.zeros(0, 3), 1.0, torch.zeros(3)), "empty"),
        (lambda: M.log_likelihood_from_samples(torch.zeros(3)), r"\(S, N\)"),
        (lambda: M.log_likelihood_from_samples(torch.zeros(0, 3)), "empty"),
        (lambda: M.accuracy(torch.full((2, 3), 0.5), torch.tensor([0, 1])), "sum to 1"),
        (lambda: M.nll(torch.full((2, 2), 0.5), torch.tensor([0, 1, 1])), r"\(2,\).*\(3,\)"),
        (lambda: M.nll(torch.full((2, 2), 0.5), torch.tensor([0, 2])), r"\[0, 2\)"),
        (lambda: M.accuracy(torch.full((2,), 0.5), torch.tensor([0, 1])), r"\(N, C\)"),
        (lambda: M.accuracy(torch.zeros(0, 3), torch.zeros(0)), "empty"),
        (
            lambda: M.expected_calibration_error(torch.full((2, 2), 0.5), torch.tensor([0, 1]), 0),
            "n_bins",
        ),
        (lambda: M.expected_calibration_error(torch.full((1, 2), 0.6), [0]), "sum to 1"),
        (lambda: M.predictive_entropy(torch.full((2, 3), 0.5)), r"\(S, N, C\)"),
        (lambda: M.expected_entropy(torch.full((2, 2, 3), 0.5)), "sum to 1"),
        (lambda: M.mutual_information(torch.zeros(2, 0, 3)), "empty"),
        (lambda: M.interval_coverage(torch.zeros(5, 3), torch.zeros(3), level=1.0), "level"),
        (lambda: M.interval_coverage(torch.zeros(5, 3), torch.zeros(3), level=0.0), "level"),
        (lambda: M.interval_coverage(torch.zeros(5, 3), torch.zeros(2)), r"\(5, 3\).*\(2,\)"),
        (lambda: M.interval_coverage(torch.zeros(0, 3), torch.zeros(3)), "empty"),
        (
            lambda: M.gaussian_interval_coverage(torch.zeros(3), 1.0, torch.zeros(3), level=1.5),
            "level",
        ),
        (
            lambda: M.gaussian_interval_coverage(torch.zeros(3), torch.ones(2), torch.zeros(3)),
            "broadcastable",
        ),
        (lambda: M.gaussian_interval_coverage(torch.zeros(3), 1.0, torch.zeros(2)), "same shape"),
    ],
)
def test_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
