"""What trained models answer beside predictions: explanations that add up, intervals that equal
statsmodels' (least squares) or cover what they promise (everything else), and a guard that flags rows
far outside the training data and never the test split's. Models come from `marina prepare` and `marina
train`, as users get them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mpmath
import numpy as np
import pytest
import statsmodels.api as sm

from bounds import EPS, SAFETY, condition, explanation_tolerance, leverage_tolerance, sum_tolerance
from marina.data.sources import SyntheticSpec
from marina.model import artifact
from marina.model.answers import CONFORMAL, STUDENT_T, AnswerError, Answers
from marina.model.artifact import ModelArtifact
from tabular import write_diamonds
from trained import prepare, splits, train, write_ill_conditioned

#: The issue's demand on agreement with statsmodels (its own rounding is ~1e-13 on these designs).
STATSMODELS_RELATIVE = 1e-8
#: The issue's demand on the coverage of conformal intervals on 20,000 fresh rows, in points. With 8,000
#: calibration rows a calibration's coverage varies by √(L(1 - L)/m) ≈ 0.34 points at 90 % and 20,000
#: rows measure it to √(L(1 - L)/20000) ≈ 0.21: 1.5 points is over three standard deviations.
COVERAGE_POINTS = 1.5


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> str:
    return prepare("builtin:diabetes", tmp_path_factory.mktemp("diabetes"))


@pytest.fixture(scope="module")
def diamonds(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("diamonds")
    write_diamonds(folder / "diamonds.csv")
    return prepare(
        str(folder / "diamonds.csv"), folder / "d", "--target", "price", "--features", "carat,cut,color"
    )


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, diabetes: str, diamonds: str
) -> dict[str, ModelArtifact]:
    output = tmp_path_factory.mktemp("models")
    trained = {
        "ols": train(diabetes, output),
        "ols-standardized": train(diabetes, output, "--standardize"),
        "ols-no-intercept": train(diabetes, output, "--no-intercept"),
        "ridge": train(diabetes, output, "--penalty", "l2", "--alpha", "0.1"),
        "categories": train(diamonds, output),
    }
    # The same OLS model as an artifact written before the answers section existed
    trained["v1"] = dataclasses.replace(trained["ols"], format=artifact.FORMAT_V1, answers={})
    return trained


def data_of(name: str, diabetes: str, diamonds: str) -> str:
    return diamonds if name == "categories" else diabetes


# -- explanations -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ols", "ols-standardized", "ols-no-intercept", "ridge", "categories", "v1"])
def test_contributions_and_base_add_up_to_the_prediction(
    models: dict[str, ModelArtifact], diabetes: str, diamonds: str, name: str
) -> None:
    model = models[name]
    answers = Answers(model)
    rows = splits(data_of(name, diabetes, diamonds)).x_test
    assert answers.base is not None and answers.means is not None
    total = answers.base + answers.contributions(rows).sum(axis=1)
    coef = np.array(model.coefficients)
    bound = explanation_tolerance(coef, model.intercept, rows, answers.means)
    assert np.all(np.abs(total - model.predict(rows)) <= bound)


@pytest.mark.parametrize("name", ["ols", "ols-standardized", "ols-no-intercept", "ridge", "categories", "v1"])
def test_contributions_equal_coef_times_x_minus_the_training_mean(
    models: dict[str, ModelArtifact], diabetes: str, diamonds: str, name: str
) -> None:
    """Computed independently: numpy's mean of the training split (one-hot columns expanded), βⱼ·(xⱼ - μⱼ)
    summed over each input's columns. The two means differ by their summation rounding (n terms)."""
    model = models[name]
    data = splits(data_of(name, diabetes, diamonds))
    means = data.x_train.mean(axis=0)
    coef = np.array(model.coefficients)
    per_feature = coef * (data.x_test - means)
    answers = Answers(model)
    assert answers.means is not None
    n = len(data.x_train)
    moved = np.abs(coef) * sum_tolerance(n) * np.abs(data.x_train).mean(axis=0)  # |β|·|Δμ|
    rounding = 4 * SAFETY * EPS * np.abs(coef) * (np.abs(data.x_test) + np.abs(means))
    offsets = answers.inputs.offsets
    for k in range(len(answers.input_names)):
        block = slice(offsets[k], offsets[k + 1])
        expected = per_feature[:, block].sum(axis=1)
        bound = (moved[block].sum() + rounding[:, block].sum(axis=1)) * (
            1 + SAFETY * EPS * (block.stop - block.start)
        )
        assert np.all(np.abs(answers.contributions(data.x_test)[:, k] - expected) <= bound), (
            answers.input_names[k]
        )


def test_a_category_contributes_its_coefficient_against_the_mix_of_training_categories(
    models: dict[str, ModelArtifact],
) -> None:
    model = models["categories"]
    answers = Answers(model)
    assert answers.means is not None
    names = model.feature_names
    cut = [j for j, name in enumerate(names) if name.startswith("cut=")]
    row = np.array(answers.means)  # a row at the training means, but of cut "Ideal"
    row[cut] = [1.0 if names[j] == "cut=Ideal" else 0.0 for j in cut]
    coef = np.array(model.coefficients)
    expected = coef[names.index("cut=Ideal")] - float(coef[cut] @ answers.means[cut])
    shares = dict(zip(answers.input_names, answers.contributions(row[None, :])[0], strict=True))
    assert shares["cut"] == pytest.approx(expected, rel=SAFETY * len(cut) * EPS)
    assert abs(shares["carat"]) == 0.0 and abs(shares["color"]) <= SAFETY * EPS * float(np.abs(coef).sum())


# -- intervals ------------------------------------------------------------------------------------------


def statsmodels_interval(
    x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, level: float, intercept: bool
) -> tuple[np.ndarray, np.ndarray]:
    design = sm.add_constant(x_train) if intercept else x_train
    rows = sm.add_constant(x, has_constant="add") if intercept else x
    frame = sm.OLS(y_train, design).fit().get_prediction(rows).summary_frame(alpha=1 - level)
    return frame["obs_ci_lower"].to_numpy(), frame["obs_ci_upper"].to_numpy()


def interval(model: ModelArtifact, rows: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    predictions, width = model.predict(rows), Answers(model).half_widths(rows, level)
    return predictions - width, predictions + width


def relative_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))


@pytest.mark.parametrize("name", ["ols", "ols-standardized", "ols-no-intercept"])
@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_least_squares_intervals_equal_statsmodels_on_diabetes(
    models: dict[str, ModelArtifact], diabetes: str, name: str, level: float
) -> None:
    model = models[name]
    assert model.answers["intervals"]["method"] == STUDENT_T
    data = splits(diabetes)
    theirs = statsmodels_interval(data.x_train, data.y_train, data.x_test, level, name != "ols-no-intercept")
    for ours, reference in zip(interval(model, data.x_test, level), theirs, strict=True):
        assert relative_gap(ours, reference) <= STATSMODELS_RELATIVE


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")  # statsmodels says so, rightly
def test_least_squares_intervals_equal_statsmodels_with_one_hot_columns(
    models: dict[str, ModelArtifact], diamonds: str
) -> None:
    """One-hot blocks beside an intercept are collinear: n - rank degrees of freedom and the
    pseudo-inverse's leverages, as statsmodels computes them (pinv)."""
    model = models["categories"]
    data = splits(diamonds)
    theirs = statsmodels_interval(data.x_train, data.y_train, data.x_test, 0.95, True)
    for ours, reference in zip(interval(model, data.x_test, 0.95), theirs, strict=True):
        assert relative_gap(ours, reference) <= STATSMODELS_RELATIVE
    rank = np.linalg.matrix_rank(np.column_stack([np.ones(len(data.x_train)), data.x_train]))
    assert model.answers["intervals"]["dof"] == len(data.x_train) - rank


def test_least_squares_intervals_equal_statsmodels_on_a_collinear_design(tmp_path: Path) -> None:
    """κ ≈ 2e7 after centring and scaling: the design's factor comes from a QR of the rows. statsmodels
    forms (XᵀX)⁺ from pinv(X), whose error grows like κ²·eps: on these columns its leverages are off by
    up to 1e-4 relative (the exact ones are checked at 50 digits below). An interval depends only on the
    span of the columns, so statsmodels is given the same span in well-conditioned columns, x2 - x1 scaled
    by 2²², both exact in floating point (Sterbenz; a power of two)."""
    write_ill_conditioned(tmp_path / "collinear.csv")
    data_folder = prepare(str(tmp_path / "collinear.csv"), tmp_path / "d", "--target", "y")
    model = train(data_folder, tmp_path / "m")
    assert model.answers["design"]["method"] == "qr"
    data = splits(data_folder)
    kappa = condition(data.x_train)
    assert kappa >= 1e6

    def respanned(x: np.ndarray) -> np.ndarray:
        return np.column_stack([x[:, 0], (x[:, 1] - x[:, 0]) * 2.0**22, x[:, 2:]])

    theirs = statsmodels_interval(respanned(data.x_train), data.y_train, respanned(data.x_test), 0.95, True)
    for ours, reference in zip(interval(model, data.x_test, 0.95), theirs, strict=True):
        assert relative_gap(ours, reference) <= STATSMODELS_RELATIVE
    # and the leverages themselves, against 50 digits
    mpmath.mp.dps = 50
    design = mpmath.matrix(np.column_stack([np.ones(len(data.x_train)), data.x_train]).tolist())
    inverse = mpmath.inverse(design.T * design)
    rows = np.column_stack([np.ones(10), data.x_test[:10]])
    exact = np.array(
        [float((mpmath.matrix(r.tolist()).T * inverse * mpmath.matrix(r.tolist()))[0]) for r in rows]
    )
    bound = leverage_tolerance(kappa, *data.x_train.shape, "qr")
    assert np.max(np.abs(Answers(model).leverages(data.x_test[:10]) / exact - 1)) <= bound


@pytest.mark.parametrize(
    "options",
    [["--penalty", "l2", "--alpha", "50"], ["--penalty", "l1", "--alpha", "0.2"]],
    ids=["ridge", "lasso"],
)
def test_conformal_intervals_cover_fresh_rows_as_promised(tmp_path: Path, options: list[str]) -> None:
    spec = SyntheticSpec(rows=40_000, features=8, noise=2.0, seed=21)
    source = f"synthetic:rows={spec.rows},features={spec.features},noise={spec.noise},seed={spec.seed}"
    model = train(prepare(source, tmp_path / "d"), tmp_path / "m", *options)
    assert model.answers["intervals"]["method"] == CONFORMAL
    assert model.answers["calibration"]["rows"] == 8_000  # the whole test split (20 %)
    coefficients, intercept = spec.model()
    rng = np.random.default_rng(99)  # fresh rows from the generating distribution
    x = rng.standard_normal((20_000, spec.features))
    y = x @ coefficients + intercept + spec.noise * rng.standard_normal(20_000)
    for level in (0.9, 0.95):
        lower, upper = interval(model, x, level)
        coverage = float(np.mean((lower <= y) & (y <= upper)))
        assert abs(coverage - level) * 100 <= COVERAGE_POINTS, (level, coverage)


def test_a_level_beyond_what_the_calibration_can_promise_is_refused(models: dict[str, ModelArtifact]) -> None:
    answers = Answers(models["ridge"])
    rows = answers.record.calibration.rows if answers.record else 0
    with pytest.raises(AnswerError, match=f"the largest level it can promise is {rows / (rows + 1):.6g}"):
        answers.half_widths(np.zeros((1, 10)), 0.999)
    with pytest.raises(AnswerError, match="must be a number in"):
        answers.half_widths(np.zeros((1, 10)), 1.5)


def test_an_artifact_from_before_answers_loads_with_its_own_bytes_and_says_what_needs_a_retrain(
    models: dict[str, ModelArtifact], tmp_path: Path
) -> None:
    old = models["v1"]
    uri, digest = artifact.save(old, str(tmp_path))
    assert b'"answers"' not in Path(uri).read_bytes()
    loaded = artifact.load(uri, digest)
    assert loaded.sha256 == digest and loaded.format == artifact.FORMAT_V1
    answers = Answers(loaded)
    assert answers.explains  # its feature statistics hold every training mean
    with pytest.raises(AnswerError, match="retrain it to get them"):
        answers.half_widths(np.zeros((1, 10)), 0.95)
    assert answers.guard_description()["checks"]["leverage"]["available"] is False


# -- the guard --------------------------------------------------------------------------------------------


def test_a_row_with_one_feature_ten_standard_deviations_out_is_flagged_naming_it(
    models: dict[str, ModelArtifact], diabetes: str
) -> None:
    model = models["ols"]
    answers = Answers(model)
    x_train = splits(diabetes).x_train
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    for j, name in enumerate(model.feature_names):
        for direction in (1.0, -1.0):
            row = mean.copy()
            row[j] += direction * 10 * sd[j]
            verdicts = answers.verdicts(row[None, :])
            assert verdicts.outside[0] and f"range:{name}" in verdicts.labels()[0].split(";"), (
                name,
                direction,
            )


@pytest.mark.parametrize("name", ["ols", "ridge", "ols-no-intercept", "v1"])
def test_no_row_of_the_diabetes_test_split_is_flagged(
    models: dict[str, ModelArtifact], diabetes: str, name: str
) -> None:
    verdicts = Answers(models[name]).verdicts(splits(diabetes).x_test)
    assert not verdicts.outside.any() and set(verdicts.labels()) == {"inside"}


def test_an_unseen_category_is_flagged_naming_its_input(
    models: dict[str, ModelArtifact], diamonds: str
) -> None:
    answers = Answers(models["categories"])
    rows = splits(diamonds).x_test[:3].copy()
    cut = [j for j, name in enumerate(models["categories"].feature_names) if name.startswith("cut=")]
    rows[1, cut] = 0.0  # a cut training never saw encodes as no column at all
    labels = answers.verdicts(rows).labels()
    assert labels[0] == labels[2] == "inside"
    assert "category:cut" in labels[1].split(";") and "leverage" in labels[1].split(";")  # and off the span


def test_the_guard_states_its_false_alarm_rates(models: dict[str, ModelArtifact]) -> None:
    description = Answers(models["ols"]).guard_description()
    n = models["ols"].answers["rows"]
    shrink = np.exp(-description["marginSds"])
    assert description["checks"]["leverage"]["falseAlarmRate"] == pytest.approx(shrink / (n + 1))
    assert description["falseAlarmRate"] == pytest.approx(shrink * (1 + 2 * 10) / (n + 1))
    assert description["falseAlarmRateAnyDistribution"] == pytest.approx((1 + 2 * 10) / (n + 1))


@pytest.mark.parametrize("name", ["ols", "ridge", "ols-no-intercept", "v1", "categories"])
def test_one_row_at_a_time_gets_the_verdict_a_batch_gets(
    models: dict[str, ModelArtifact], diabetes: str, diamonds: str, name: str
) -> None:
    """Single rows take a shortcut (Python floats) when they are inside: rows inside and outside for every
    reason, some in range but off the training rows' correlations (only leverage sees them), agree."""
    answers = Answers(models[name])
    x_train = splits(data_of(name, diabetes, diamonds)).x_train
    rng = np.random.default_rng(8)
    low, high = x_train.min(axis=0), x_train.max(axis=0)
    rows = np.vstack([x_train[:50], rng.uniform(low, high, (300, len(low))), x_train[:20] * 5.0])
    batch = answers.verdicts(rows).labels()
    levels = [0.9] if answers.record is not None else []
    one_by_one = []
    for row in rows:
        verdicts = answers.answer(row[None, :], False, levels, True).verdicts
        assert verdicts is not None
        one_by_one.append(verdicts.labels()[0])
    assert one_by_one == batch
    assert len(set(batch)) > 2  # inside, and outside for more than one reason
