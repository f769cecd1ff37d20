"""`marina train` end to end: prepare → train → artifact, checked against scikit-learn on the same split."""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from bounds import (
    EPS,
    SAFETY,
    coefficient_prediction_tolerance,
    condition,
    gap_prediction_tolerance,
    held_out_factor,
    least_squares_tolerance,
    leverage_tolerance,
    metrics_tolerance,
    normal_equations_tolerance,
    relative_residual,
    residual_tolerance,
    scaled_error,
    statistics_mse_tolerance,
    sum_tolerance,
)
from marina import __version__
from marina.cli import main
from marina.contract import TrainRequest
from marina.data import dataset, parts
from marina.data.distribution import bin_counts
from marina.jobs import sharding
from marina.jobs import train as training
from marina.jobs.progress import Progress
from marina.model import artifact, scoring
from marina.model.answers import Answers
from tabular import write_diamonds, write_second_format


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The diabetes set prepared once (default split) for every test of this module."""
    output = tmp_path_factory.mktemp("datasets")
    assert main(["prepare", "--source", "builtin:diabetes", "--output", str(output)]) == 0
    return version_folder(output)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Few rows and many features, most irrelevant: regularisation matters."""
    output = tmp_path_factory.mktemp("synthetic")
    source = "synthetic:rows=80,features=30,noise=8,seed=3"
    assert main(["prepare", "--source", source, "--output", str(output), "--seed", "1"]) == 0
    return version_folder(output)


def version_folder(output: Path) -> str:
    """The one version `prepare` wrote into `output` (beside the shared parts folder)."""
    (folder,) = (p for p in output.iterdir() if p.name != parts.PARTS_FOLDER)
    return str(folder)


def read_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a split back with pyarrow alone, as an outside user would: the parts dataset.json lists."""
    manifest = json.loads((Path(folder) / "dataset.json").read_text())
    listed = manifest["parts"][split]["parts"]
    tables = [pq.read_table(Path(folder) / manifest["parts"]["folder"] / p["name"]) for p in listed]
    values = np.column_stack([pa.concat_tables(tables).column(c).to_numpy() for c in manifest["columns"]])
    return values[:, :-1], values[:, -1]


def sklearn_metrics(estimator: Any, folder: str) -> dict[str, float]:
    x_train, y_train = read_split(folder, "train")
    x_test, y_test = read_split(folder, "test")
    prediction = estimator.fit(x_train, y_train).predict(x_test)
    mse = mean_squared_error(y_test, prediction)
    return {
        "mse": mse,
        "rmse": np.sqrt(mse),
        "mae": mean_absolute_error(y_test, prediction),
        "r2": r2_score(y_test, prediction),
    }


def train(capsys: pytest.CaptureFixture[str], data: str, output: Path, *args: str) -> dict[str, Any]:
    return ok(capsys, "train", "--data", data, "--output", str(output), *args)


def direct_tolerance(
    x: np.ndarray, y: np.ndarray, alpha: float = 0.0, fit_intercept: bool = True, standardize: bool = False
) -> float:
    """Scaled coefficient error (``bounds.scaled_error``) two direct ridge/least-squares solves may differ by.

    Ridge is least squares on [A; √alpha·D] (A centred, unit-norm columns; D = 1/‖x_j‖, or 1/√n
    when the penalty acts on standardised features), so its κ and relative residual are those of
    that augmented system. Either side may be Cholesky (κ²·eps) or backward stable (Wedin): both
    bounds, Cholesky's twice.
    """
    n, d = x.shape
    design = x - x.mean(axis=0) if fit_intercept else x
    target = y - y.mean() if fit_intercept else y
    norms = np.linalg.norm(design, axis=0)
    weights = np.full(d, 1 / np.sqrt(n)) if standardize else 1 / norms
    augmented = np.vstack([design / norms, np.sqrt(alpha) * np.diag(weights)])
    rhs = np.concatenate([target, np.zeros(d)])
    solution = np.linalg.lstsq(augmented, rhs, rcond=None)[0]
    singular = np.linalg.svd(augmented, compute_uv=False)
    kappa = float(singular[0] / singular[-1])
    residual = float(np.linalg.norm(rhs - augmented @ solution)) / (singular[0] * np.linalg.norm(solution))
    return 2 * normal_equations_tolerance(kappa, n, d) + least_squares_tolerance(kappa, n, d, residual)


def assert_metrics_close(
    actual: dict[str, float], expected: dict[str, float], tolerance: dict[str, float]
) -> None:
    assert set(actual) == set(expected) == set(tolerance)
    for name, bound in tolerance.items():
        assert abs(actual[name] - expected[name]) <= bound, (name, actual[name], expected[name], bound)


def direct_metrics_tolerance(
    folder: str, reference: Any, ours: Any, alpha: float = 0.0, fit_intercept: bool = True
) -> dict[str, float]:
    """Test metrics of two direct fits: their coefficients differ by ``direct_tolerance``, which moves
    the test predictions (``coefficient_prediction_tolerance``), plus each side's evaluation rounding."""
    x_train, y_train = read_split(folder, "train")
    x_test, y_test = read_split(folder, "test")
    coef, intercept = np.asarray(reference.coef_), float(reference.intercept_)
    relative = direct_tolerance(x_train, y_train, alpha, fit_intercept)
    shift = coefficient_prediction_tolerance(x_train, x_test, coef, intercept, relative, fit_intercept)
    shift += residual_tolerance(x_test, y_test, coef, intercept)
    shift += residual_tolerance(x_test, y_test, np.asarray(ours.coefficients), ours.intercept)
    return metrics_tolerance(y_test, reference.predict(x_test), shift)


def fold_mse_tolerance(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, validation: np.ndarray, model: Any, relative: float
) -> float:
    """|Δ validation MSE| of one fold between a statistics-scored fit and ``model`` refit on the rows.

    The coefficients differ by ``relative`` (scaled), which moves the held-out predictions; the
    statistics side evaluates Σr² from centred moments (``statistics_mse_tolerance``).
    """
    x_t, x_v, y_v = x[train], x[validation], y[validation]
    coef, intercept = np.asarray(model.coef_), float(model.intercept_)
    fit_intercept = bool(getattr(model, "fit_intercept", True))
    shift = coefficient_prediction_tolerance(x_t, x_v, coef, intercept, relative, fit_intercept)
    shift += 2 * residual_tolerance(x_v, y_v, coef, intercept)
    return metrics_tolerance(y_v, model.predict(x_v), shift)["mse"] + statistics_mse_tolerance(
        x_v, y_v, coef, intercept
    )


def assert_same_answers(
    one: artifact.ModelArtifact, two: artifact.ModelArtifact, x_train: np.ndarray, y_train: np.ndarray
) -> None:
    """Two fits of one model (in memory, streamed, sharded) record the same answers, each piece to the
    rounding of how it was gathered: means and moments merged in another order, the design's factor from
    those moments, residuals of coefficients that differ in their last digits."""
    first, second = one.answers, two.answers
    n, d = x_train.shape
    assert (first["rows"], first["intervals"]["method"]) == (second["rows"], second["intervals"]["method"])
    mean_bound = sum_tolerance(n) * np.abs(x_train).max(axis=0)  # a mean of n terms, in any order
    assert np.all(np.abs(np.array(first["means"]) - np.array(second["means"])) <= mean_bound)
    method = first["design"]["method"]
    assert second["design"]["method"] == method
    kappa = condition(x_train, first["design"]["intercept"])
    leverages = [Answers(model).leverages(x_train[:50]) for model in (one, two)]
    relative = leverage_tolerance(kappa, n, d, method)
    assert np.max(np.abs(leverages[0] / leverages[1] - 1)) <= relative
    for key in ("maximum", "spread"):
        a, b = first["guard"]["leverage"][key], second["guard"]["leverage"][key]
        assert abs(a - b) <= relative * max(a, b), key
    if first["intervals"]["method"] == "student-t":
        assert first["intervals"]["dof"] == second["intervals"]["dof"]
        dof = first["intervals"]["dof"]
        moved = (
            n * statistics_mse_tolerance(x_train, y_train, np.array(one.coefficients), one.intercept) / dof
        )
        assert abs(first["intervals"]["variance"] - second["intervals"]["variance"]) <= moved
    # the same held-out rows sampled; each residual moves by exactly the change of its prediction
    residuals = [np.array(a["calibration"]["residuals"]) for a in (first, second)]
    assert len(residuals[0]) == len(residuals[1])
    change = np.abs(np.array(one.coefficients) - np.array(two.coefficients))
    shift = float(np.abs(x_train).max(axis=0) @ change) + abs(one.intercept - two.intercept)
    rounding = SAFETY * (d + 2) * EPS * float(np.abs(residuals[0]).max() + np.abs(y_train).max())
    assert np.max(np.abs(residuals[0] - residuals[1])) <= shift + rounding


@pytest.mark.parametrize(
    ("args", "reference"),
    [
        ((), LinearRegression()),
        (("--penalty", "l2", "--alpha", "1.0"), Ridge(alpha=1.0)),
        (("--penalty", "l2", "--alpha", "0.01", "--standardize"), Ridge(alpha=0.01)),
        (("--no-intercept",), LinearRegression(fit_intercept=False)),
    ],
    ids=["ols", "ridge", "ridge-standardize", "no-intercept"],
)
def test_metrics_equal_scikit_learn_on_the_same_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes: str, args: tuple[str, ...], reference: Any
) -> None:
    summary = train(capsys, diabetes, tmp_path, *args)
    expected = sklearn_metrics(reference, diabetes)
    model = artifact.load(summary["uri"], summary["sha256"])
    alpha = float(reference.get_params().get("alpha", 0.0))
    if "--standardize" in args:  # ridge on standardised features is a different model: compare coefficients
        x_train, y_train = read_split(diabetes, "train")
        scale = x_train.std(axis=0)
        fitted = Ridge(alpha=0.01).fit((x_train - x_train.mean(axis=0)) / scale, y_train)
        tolerance = direct_tolerance(x_train, y_train, alpha, standardize=True)
        assert scaled_error(x_train, np.asarray(model.coefficients), fitted.coef_ / scale) <= tolerance
        assert model.scaling == {"mean": x_train.mean(axis=0).tolist(), "scale": scale.tolist()}
        return
    tolerance = direct_metrics_tolerance(diabetes, reference, model, alpha, reference.fit_intercept)
    assert_metrics_close(summary["metrics"], expected, tolerance)


@pytest.mark.parametrize(
    ("args", "reference"),
    [
        (
            ("--penalty", "l1", "--alpha", "0.1", "--tol", "1e-8"),
            Lasso(alpha=0.1, tol=1e-8, max_iter=100_000),
        ),
        (
            ("--penalty", "elasticnet", "--alpha", "0.01", "--l1-ratio", "0.3", "--tol", "1e-8"),
            ElasticNet(alpha=0.01, l1_ratio=0.3, tol=1e-8, max_iter=100_000),
        ),
    ],
    ids=["lasso", "elasticnet"],
)
def test_sparse_penalties_match_scikit_learn(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes: str, args: tuple[str, ...], reference: Any
) -> None:
    summary = train(capsys, diabetes, tmp_path, *args)
    expected = sklearn_metrics(reference, diabetes)
    # Both stop at duality gap ≤ tol·‖y_c‖², so each one's training predictions are within
    # √(2·tol)·‖y_c‖ of the optimum's (``gap_prediction_tolerance``); ‖A_test·A_train⁺‖ carries
    # that to the test rows, and the metrics follow (``metrics_tolerance``).
    x_train, y_train = read_split(diabetes, "train")
    x_test, y_test = read_split(diabetes, "test")
    shift = 2 * gap_prediction_tolerance(y_train, reference.tol) * held_out_factor(x_train, x_test)
    shift += 2 * residual_tolerance(x_test, y_test, reference.coef_, float(reference.intercept_))
    tolerance = metrics_tolerance(y_test, reference.predict(x_test), shift)
    assert_metrics_close(summary["metrics"], expected, tolerance)


def test_artifact_carries_lineage_and_round_trips(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes: str
) -> None:
    summary = train(capsys, diabetes, tmp_path, "--penalty", "l2", "--alpha", "0.5", "--name", "reg")
    assert summary["uri"] == str(tmp_path / f"model-{summary['sha256']}.json")
    model = artifact.load(summary["uri"], summary["sha256"])
    stored = dataset.load(diabetes)
    assert model.feature_names == list(stored.data.features) and model.target == "target"
    assert model.dataset == {
        "name": "diabetes",
        "version": stored.version,
        "sha256": stored.data.sha256,
        "uri": diabetes,
    }
    assert model.feature_statistics == {
        f: stored.description["statistics"]["train"][f] for f in model.feature_names
    }
    assert model.code_version == __version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", model.created)
    assert model.hyperparameters["penalty"] == "l2" and model.hyperparameters["alpha"] == 0.5
    assert "n_iter" in model.hyperparameters and model.scaling is None
    assert summary["name"] == "reg" and summary["datasetVersion"] == stored.version
    assert summary["bestParameters"] == model.hyperparameters
    # the training split's histograms, binned as serving will bin: every training row counted once
    reference = model.reference_distribution()
    assert reference is not None
    x_train = stored.data.x_train
    for j, histogram in enumerate(reference.features):
        assert list(histogram.counts) == bin_counts(histogram.edge_array, x_train[:, j]).tolist()
    predictions = model.predict(x_train)
    assert (
        list(reference.prediction.counts) == bin_counts(reference.prediction.edge_array, predictions).tolist()
    )
    # The artifact alone reproduces the reported test metrics: its coefficients are the fit's
    # (JSON round-trips floats exactly) and the metrics the same function's, so only the order in
    # which a BLAS evaluates x·w + b may differ: the predictions' evaluation bound, twice.
    x_test, y_test = stored.data.x_test, stored.data.y_test
    prediction = model.predict(x_test)
    shift = 2 * residual_tolerance(x_test, y_test, np.asarray(model.coefficients), model.intercept)
    assert_metrics_close(
        scoring.regression_metrics(y_test, prediction),
        summary["metrics"],
        metrics_tolerance(y_test, prediction, shift),
    )
    with pytest.raises(artifact.ArtifactError, match="sha256 mismatch"):
        artifact.load(summary["uri"], "f" * 64)


def test_grid_search_picks_the_cross_validated_best(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, synthetic: str
) -> None:
    alphas = [0.001, 1.0, 10.0, 100.0, 10_000.0]
    summary = train(
        capsys,
        synthetic,
        tmp_path,
        "--penalty",
        "l2",
        "--search-alpha",
        ",".join(map(str, alphas)),
        "--cv",
        "4",
        "--seed",
        "5",
    )
    x_train, y_train = read_split(synthetic, "train")
    folds = scoring.kfold_indices(len(y_train), 4, 5)
    fits = {a: [Ridge(alpha=a).fit(x_train[t], y_train[t]) for t, _ in folds] for a in alphas}
    by_hand = {
        a: np.mean(
            [
                mean_squared_error(y_train[v], m.predict(x_train[v]))
                for m, (_, v) in zip(fits[a], folds, strict=True)
            ]
        )
        for a in alphas
    }
    best = min(by_hand, key=by_hand.__getitem__)
    assert best not in (alphas[0], alphas[-1])  # the example is built so that neither extreme wins
    assert summary["bestParameters"]["alpha"] == best
    assert summary["cv"]["folds"] == 4 and summary["cv"]["candidates"] == 5
    # Each fold's MSE differs by ``fold_mse_tolerance`` (two direct solves, the statistics formula);
    # their mean by the mean of those plus the rounding of a 4-term mean.
    cv_tolerance = sum_tolerance(4) * by_hand[best] + np.mean(
        [
            fold_mse_tolerance(x_train, y_train, t, v, m, direct_tolerance(x_train[t], y_train[t], best))
            for m, (t, v) in zip(fits[best], folds, strict=True)
        ]
    )
    assert abs(summary["cv"]["bestMeanMse"] - by_hand[best]) <= cv_tolerance
    assert [r["alpha"] for r in summary["cvResults"]] == sorted(alphas, key=by_hand.__getitem__)
    model = artifact.load(summary["uri"])
    reference = Ridge(alpha=best)
    expected = sklearn_metrics(reference, synthetic)
    tolerance = direct_metrics_tolerance(synthetic, reference, model, best)
    assert_metrics_close(summary["metrics"], expected, tolerance)
    assert abs(model.metrics["cv_mse"] - by_hand[best]) <= cv_tolerance


def test_elasticnet_grid_and_compact_result(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, synthetic: str
) -> None:
    alphas = ",".join(str(a) for a in np.geomspace(0.01, 10, 40).round(6))
    result_file = tmp_path / "result.json"
    summary = train(
        capsys,
        synthetic,
        tmp_path,
        "--penalty",
        "elasticnet",
        "--search-alpha",
        alphas,
        "--search-l1-ratio",
        "0.1,0.5,0.9",
        "--cv",
        "3",
        "--result-file",
        str(result_file),
    )
    assert summary["cv"]["candidates"] == 120
    assert summary["truncated"] == ["cvResults"] and "cvResults" not in summary
    assert json.loads(result_file.read_text()) == summary and len(result_file.read_bytes()) < 4096
    assert summary["bestParameters"]["l1_ratio"] in (0.1, 0.5, 0.9)


def test_cv_alone_scores_the_single_configuration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes: str
) -> None:
    summary = train(capsys, diabetes, tmp_path, "--cv", "3")
    assert summary["cv"]["candidates"] == 1 and len(summary["cvResults"]) == 1
    reference = LinearRegression()
    expected = sklearn_metrics(reference, diabetes)
    tolerance = direct_metrics_tolerance(diabetes, reference, artifact.load(summary["uri"]))
    assert_metrics_close(summary["metrics"], expected, tolerance)


@pytest.mark.parametrize(
    ("args", "kind", "message"),
    [
        (("--penalty", "huber"), "spec", "--penalty: must be one of none, l2, l1, elasticnet"),
        (("--alpha", "lots"), "spec", "--alpha: 'lots' is not a valid number"),
        (("--max-iter", "1.5"), "spec", "--max-iter: '1.5' is not a valid integer"),
        (("--search-alpha", "0.1,1"), "spec", "--search-alpha needs --penalty l2, l1 or elasticnet"),
        (
            ("--penalty", "l2", "--search-l1-ratio", "0.5"),
            "spec",
            "--search-l1-ratio needs --penalty elasticnet",
        ),
        (
            ("--penalty", "l2", "--search-alpha", "0.1,-1"),
            "spec",
            "--search-alpha: must be in [0, inf), got -1.0",
        ),
        (("--penalty", "l2", "--search-alpha", ","), "spec", "--search-alpha: give at least one value"),
        (("--cv", "1"), "spec", "--cv: must be in [2, 20], got 1"),
        (("--solver", "magic"), "spec", "--solver: must be one of auto, normal, qr, cd, gd"),
        (("--penalty", "l1", "--solver", "qr"), "spec", "--solver: l1 needs one of auto, cd, gd, got 'qr'"),
        (("--learning-rate", "-1", "--solver", "gd"), "spec", "learning_rate"),
        (
            ("--solver", "gd", "--learning-rate", "1e6", "--max-iter", "100000"),
            "training",
            "training failed:",
        ),
    ],
)
def test_errors_are_reported_on_one_line_with_their_kind(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    diabetes: str,
    args: tuple[str, ...],
    kind: str,
    message: str,
) -> None:
    result_file = tmp_path / "result.json"
    code, out, err = run_cli(
        capsys,
        "train",
        "--data",
        diabetes,
        "--output",
        str(tmp_path / "models"),
        *args,
        "--result-file",
        str(result_file),
    )
    assert code == 1 and out == ""
    assert err.startswith("marina train: error: ") and err.count("\n") == 1 and message in err
    error = json.loads(result_file.read_text())["error"]
    assert error["kind"] == kind and message in error["message"]
    assert not (tmp_path / "models").exists()


def test_missing_and_corrupted_datasets_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes: str
) -> None:
    code, _, err = run_cli(capsys, "train", "--data", str(tmp_path / "nothing"), "--output", str(tmp_path))
    assert code == 1 and "no prepared dataset at" in err and "dataset.json" in err
    copy = tmp_path / "copy"
    shutil.copytree(Path(diabetes).parent, copy)
    manifest = json.loads((Path(diabetes) / "dataset.json").read_text())
    part = copy / parts.PARTS_FOLDER / manifest["parts"]["test"]["parts"][0]["name"]
    x_test, y_test = read_split(diabetes, "test")
    part.write_bytes(parts.to_parquet(np.column_stack([x_test, y_test + 1.0]), manifest["columns"]))
    code, _, err = run_cli(
        capsys, "train", "--data", str(copy / Path(diabetes).name), "--output", str(tmp_path)
    )
    assert code == 1 and "is corrupted" in err


def fold_relative(request: TrainRequest, alpha: float, x: np.ndarray, y: np.ndarray) -> float:
    """Scaled coefficient error between the two fits of a fold when both are direct solves (ridge: the
    statistics' Cholesky and the rows'); the penalties with an l1 part add their gap bound instead."""
    if request.penalty in ("l1", "elasticnet"):
        return 0.0
    return direct_tolerance(x, y, alpha, not request.no_intercept, request.standardize)


def search_request(**overrides: Any) -> TrainRequest:
    base: dict[str, Any] = {"penalty": "l2", "tol": 1e-10, "max_iter": 100_000}
    return TrainRequest(
        data="-", output="-", folds=4, seed=3, search_alpha=(0.01, 0.3, 3.0), **{**base, **overrides}
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"no_intercept": True},
        {"standardize": True},
        {"penalty": "l1"},
        {"penalty": "elasticnet", "l1_ratio": 0.4},
        {"solver": "qr"},
    ],
    ids=["ridge", "no-intercept", "standardize", "lasso", "elasticnet", "qr-uses-rows"],
)
def test_search_from_fold_statistics_equals_refitting_on_rows(overrides: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 6)) * [1, 10, 0.1, 1, 5, 1] + [0, 50, -3, 0, 0, 1000]
    y = x @ rng.normal(size=6) + rng.normal(0, 2.0, 300)
    request = search_request(**overrides)
    fast = training.cross_validated_search(request, x, y)
    parameters = request.model_parameters()
    slow = scoring.grid_search(
        lambda p: training.make_model({**parameters, **p}), training.grid(request), x, y, folds=4, seed=3
    )
    assert fast.best.parameters == slow.best.parameters
    splits = scoring.kfold_indices(len(y), 4, 3)
    for ours, reference in zip(fast.candidates, slow.candidates, strict=True):
        assert ours.parameters == reference.parameters
        for mse, expected, (train, validation) in zip(ours.fold_mse, reference.fold_mse, splits, strict=True):
            model = training.make_model({**parameters, **reference.parameters}).fit(x[train], y[train])
            tolerance = fold_mse_tolerance(
                x,
                y,
                train,
                validation,
                model,
                fold_relative(request, reference.parameters["alpha"], x[train], y[train]),
            )
            if request.penalty in ("l1", "elasticnet"):
                # Both fits stop at duality gap ≤ tol·‖y_c‖² (``gap_prediction_tolerance``); the
                # held-out predictions move by ‖A_v·A_t⁺‖ times what each leaves on the training rows.
                factor = held_out_factor(x[train], x[validation], not request.no_intercept)
                gap = gap_prediction_tolerance(y[train], request.tol, not request.no_intercept)
                tolerance += metrics_tolerance(y[validation], model.predict(x[validation]), 2 * gap * factor)[
                    "mse"
                ]
            assert abs(mse - expected) <= tolerance


# --- --data: a version's folder, or the folder `marina prepare --output` wrote ----------------------


def test_train_reads_the_folder_prepare_wrote(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    prepared = ok(capsys, "prepare", "--source", "synthetic:rows=60,features=2", "--output", "data")
    code, out, err = run_cli(capsys, "train", "--data", "data", "--output", "models")
    assert code == 0 and err == ""
    assert json.loads(out)["datasetVersion"] == prepared["version"]


@pytest.mark.parametrize("newest", [0, 1])
def test_train_picks_the_newest_of_several_versions_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newest: int
) -> None:
    monkeypatch.chdir(tmp_path)
    versions = [
        ok(
            capsys,
            "prepare",
            "--source",
            "synthetic:rows=60,features=2",
            "--output",
            "data",
            "--seed",
            str(seed),
        )["version"]
        for seed in (1, 2)
    ]
    for index, version in enumerate(versions):  # creation times one day apart, `newest` the later one
        manifest = tmp_path / "data" / version / "dataset.json"
        description = json.loads(manifest.read_text())
        description["created"] = "2026-01-02T00:00:00Z" if index == newest else "2026-01-01T00:00:00Z"
        manifest.write_text(json.dumps(description))
    (tmp_path / "data" / "0123456789abcdef").mkdir()  # a version whose writing never finished: ignored
    code, out, err = run_cli(capsys, "train", "--data", "data/", "--output", "models")
    assert code == 0 and json.loads(out)["datasetVersion"] == versions[newest]
    assert err == (
        f"marina train: data holds 2 dataset versions; using the newest, {versions[newest]} "
        "(created 2026-01-02T00:00:00Z)\n"
    )


# --- streaming training: larger than memory, the same model -----------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--penalty", "l2", "--alpha", "0.5", "--standardize"],
        ["--penalty", "l2", "--search-alpha", "0.01,0.1,1", "--cv", "3"],
    ],
    ids=["ols", "ridge-standardize", "ridge-cv"],
)
def test_streaming_training_matches_in_memory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    diabetes: str,
    options: list[str],
) -> None:
    """Past IN_MEMORY_CELLS the split is read in chunks into sufficient statistics; the model is the same
    to the normal equations' bound and the metrics to their evaluation bound (cv folds differ: by hash)."""
    in_memory = ok(capsys, "train", "--data", diabetes, "--output", str(tmp_path / "a"), *options)
    monkeypatch.setattr(training, "IN_MEMORY_CELLS", 0)
    streamed = ok(capsys, "train", "--data", diabetes, "--output", str(tmp_path / "b"), *options)
    first = artifact.load(in_memory["uri"])
    second = artifact.load(streamed["uri"])
    x_train, _ = read_split(diabetes, "train")
    kappa = condition(x_train)
    if "--cv" not in options:
        relative = normal_equations_tolerance(kappa, *x_train.shape)
        assert scaled_error(x_train, np.array(second.coefficients), np.array(first.coefficients)) <= relative
        x_test, y_test = read_split(diabetes, "test")
        shift = coefficient_prediction_tolerance(
            x_train, x_test, np.array(first.coefficients), first.intercept, relative
        )
        bounds = metrics_tolerance(y_test, first.predict(x_test), shift)
        for name, bound in bounds.items():
            assert abs(streamed["metrics"][name] - in_memory["metrics"][name]) <= bound, name
    assert (
        streamed["trainRows"] == in_memory["trainRows"]
        and streamed["datasetVersion"] == in_memory["datasetVersion"]
    )
    # The whole train split fits the sample: the same feature histograms, whatever the row order.
    assert second.reference["features"] == first.reference["features"]
    if "--cv" not in options:
        assert_same_answers(first, second, *read_split(diabetes, "train"))


def test_streaming_qr_refines_against_rows_read_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, diabetes: str
) -> None:
    """With --solver qr a streamed split is read again for R and each refinement sweep: the coefficients
    agree with the in-memory QR fit to the least-squares bound, not just the Gram's."""
    in_memory = ok(capsys, "train", "--data", diabetes, "--output", str(tmp_path / "a"), "--solver", "qr")
    monkeypatch.setattr(training, "IN_MEMORY_CELLS", 0)
    streamed = ok(capsys, "train", "--data", diabetes, "--output", str(tmp_path / "b"), "--solver", "qr")
    assert streamed["bestParameters"]["solver_used"] == "qr"
    x_train, y_train = read_split(diabetes, "train")
    first, second = (np.array(artifact.load(r["uri"]).coefficients) for r in (in_memory, streamed))
    relative = relative_residual(x_train, y_train, first, artifact.load(in_memory["uri"]).intercept)
    bound = least_squares_tolerance(condition(x_train), *x_train.shape, relative)
    assert scaled_error(x_train, second, first) <= bound


# --- text columns: one-hot categories --------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_text_columns_are_one_hot_encoded_as_scikit_learn_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streaming: bool
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    source = tmp_path / "diamonds.csv"
    write_diamonds(source)
    prepared = ok(
        capsys,
        "prepare",
        "--source",
        str(source),
        "--output",
        str(tmp_path / "d"),
        "--target",
        "price",
        "--features",
        "carat,cut,color",
    )
    if streaming:  # the full one-hot block is collinear with the intercept: both paths take a minimum norm
        monkeypatch.setattr(training, "IN_MEMORY_CELLS", 0)
    trained = ok(capsys, "train", "--data", prepared["uri"], "--output", str(tmp_path / "m"))
    model = artifact.load(trained["uri"])
    assert [item["name"] for item in model.inputs] == ["carat", "cut", "color"]
    assert model.inputs[1]["categories"] == sorted(["Fair", "Good", "Very Good", "Premium", "Ideal"])
    assert model.feature_names[:3] == ["carat", "cut=Fair", "cut=Good"]

    stored = dataset.open_stored(prepared["uri"])
    dictionaries = stored.dictionaries

    def raw(split: str) -> tuple[list[list[object]], np.ndarray]:
        count = len(stored.part_records(split))
        values = np.vstack([b for k in range(count) for b in stored.raw_part(split, k)])
        rows = [[r[0], dictionaries["cut"][int(r[1])], dictionaries["color"][int(r[2])]] for r in values]
        return rows, values[:, -1]

    (x_train, y_train), (x_test, y_test) = raw("train"), raw("test")
    encoder = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), [1, 2])], remainder="passthrough"
    )
    pipeline = make_pipeline(encoder, LinearRegression()).fit(x_train, y_train)
    expected = r2_score(y_test, pipeline.predict(x_test))
    assert abs(trained["metrics"]["r2"] - expected) <= 1e-6


def test_an_identifier_column_is_refused_by_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id,x,y\n" + "".join(f"user-{i},{i},{2 * i}\n" for i in range(300)))
    code, _, err = run_cli(
        capsys,
        "prepare",
        "--source",
        str(path),
        "--output",
        str(tmp_path / "o"),
        "--target",
        "y",
        "--max-categories",
        "50",
    )
    assert code == 1 and "column 'id' has more than 50 distinct values" in err


# --- sharded training: N pods' statistics merged equal one pod's -----------------------------------------


@pytest.fixture(scope="module")
def many_parts(tmp_path_factory: pytest.TempPathFactory) -> str:
    """20,000 x 6 in parts of 1,000 rows (parts are cut by cells; lowered here): shards get unequal shares."""
    output = tmp_path_factory.mktemp("many-parts")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parts, "PART_CELLS", 7_000)
        assert (
            main(
                [
                    "prepare",
                    "--source",
                    "synthetic:rows=20000,features=6,noise=0.3,seed=8",
                    "--output",
                    str(output),
                ]
            )
            == 0
        )
    return version_folder(output)


def sharded(data: str, output: Path, shards: int, partials: Path) -> list[str]:
    """`marina train` options shared by a sharded run's shard and reduce phases."""
    return ["--data", data, "--output", str(output), "--shards", str(shards), "--partials", str(partials)]


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--penalty", "l2", "--alpha", "0.3", "--standardize"],
        ["--penalty", "l1", "--search-alpha", "0.001,0.01", "--cv", "4"],
        ["--solver", "qr"],  # the reduce reads the rows again for R, as one pod does
    ],
    ids=["ols", "ridge-standardize", "lasso-cv", "qr"],
)
@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_training_equals_one_pod(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    many_parts: str,
    options: list[str],
    shards: int,
) -> None:
    monkeypatch.setattr(training, "IN_MEMORY_CELLS", 0)
    single = ok(capsys, "train", "--data", many_parts, "--output", str(tmp_path / "one"), *options)
    common = sharded(many_parts, tmp_path / "many", shards, tmp_path / "p")
    rows = 0
    for index in range(shards):
        monkeypatch.setenv(sharding.JOB_INDEX_ENV, str(index))  # as Kubernetes sets it in an Indexed Job
        rows += ok(capsys, "train", *common, "--phase", "shard", *options)["trainRows"]
    reduced = ok(capsys, "train", *common, "--phase", "reduce", *options)
    assert rows == single["trainRows"] == reduced["trainRows"]
    one, many = artifact.load(single["uri"]), artifact.load(reduced["uri"])
    scale = max(abs(c) for c in one.coefficients)
    assert max(abs(a - b) for a, b in zip(one.coefficients, many.coefficients, strict=True)) <= 1e-10 * scale
    assert abs(one.intercept - many.intercept) <= 1e-10 * max(1.0, abs(one.intercept))
    for name in ("mse", "rmse", "mae", "r2"):
        assert abs(single["metrics"][name] - reduced["metrics"][name]) <= 1e-10 * max(
            1.0, abs(single["metrics"][name])
        )
    assert one.reference["features"] == many.reference["features"]  # the same sample, merged from shards
    assert_same_answers(one, many, *read_split(many_parts, "train"))
    assert "mae" not in reduced["trainMetrics"]
    assert (
        abs(reduced["trainMetrics"]["mse"] - single["trainMetrics"]["mse"])
        <= 1e-9 * single["trainMetrics"]["mse"]
    )


def test_a_reduce_without_every_shard_names_the_missing_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, many_parts: str
) -> None:
    common = sharded(many_parts, tmp_path, 2, tmp_path / "p")
    ok(capsys, "train", *common, "--phase", "shard", "--shard-index", "0")
    code, _, err = run_cli(capsys, "train", *common, "--phase", "reduce")
    assert code == 1 and "expected one shard-1-of-2-<sha256>.json, found 0" in err


def test_each_shard_reports_its_own_share_beside_the_jobs_progress(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, many_parts: str
) -> None:
    monkeypatch.setattr(training, "Progress", functools.partial(Progress, interval=0.0))  # every chunk
    stored = dataset.open_stored(many_parts)
    uri = tmp_path / "progress" / "wide-shard-x.json"
    uri.parent.mkdir()
    common = sharded(many_parts, tmp_path, 2, tmp_path / "p")
    for index in range(2):
        ok(capsys, "train", *common, "--phase", "shard", "--shard-index", str(index), "--progress", str(uri))
        report = json.loads((tmp_path / "progress" / f"wide-shard-x-shard-{index}.json").read_text())
        share = stored.shard_rows("train", 2, index)
        assert report["rows"] == report["total"] == share and report["done"] is True
    assert stored.shard_rows("train", 2, 0) + stored.shard_rows("train", 2, 1) == stored.rows("train")
    assert not uri.exists()  # shards write only their own objects


def test_a_dataset_of_the_second_format_still_trains_and_scores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Datasets prepared before format 3 (row-major parts, category codes) train and score as before."""
    rng = np.random.default_rng(0)
    train, test = (
        np.column_stack([rng.integers(0, 2, n).astype(float), rng.normal(size=n), rng.normal(size=n)])
        for n in (50, 10)
    )
    uri = write_second_format(tmp_path / "data", train, test, 0.0)
    trained = ok(capsys, "train", "--data", uri, "--output", str(tmp_path / "m"))
    assert (trained["trainRows"], trained["testRows"], trained["features"]) == (50, 10, 3)
    scored = ok(
        capsys,
        "predict",
        "--model",
        trained["uri"],
        "--data",
        uri,
        "--output",
        str(tmp_path / "s"),
        "--passthrough",
        "city",
    )
    assert scored["rows"] == 10 and scored["columns"] == ["city", "predict"]
