"""Training (generic fit, strategies, seeding), the paper backbones' smoke test, and the train and
predict stage mains on a tiny fixture."""

from __future__ import annotations

import json
import logging
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from galaxy_xai import units
from galaxy_xai.config import ImagesConfig, ModelConfig, TrainConfig
from galaxy_xai.data import catalogue, galaxyzoo, splits
from galaxy_xai.models import architectures, control, training
from galaxy_xai.results import table1
from stages import control as control_stage
from stages import predict as predict_stage
from stages import train as train_stage
from tests.e2e import model_entry
from tests.fixtures import params_file, tree_labels, truncate, write_jpeg

SMALL = ("vgg_small", "resnet_small")  # two models make an ensemble; xception_small trains below
SIZE_PX = 32
N_ROWS = {"train": 16, "val": 6, "test": 8}
KAGGLE_IDS = [901234, 100007, 555555]
KAGGLE_BAD = {"123456.jpg": "corrupt_image", "notanid.jpg": "not_a_galaxy_id"}
"""Files of the Kaggle test folder that predict must skip and list (TensorFlow cannot use them)."""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A data folder (labelled + Kaggle-test images, truth.csv), a prepared morphology table and
    tiny params, as the stages see them."""
    root = tmp_path_factory.mktemp("project")
    data = root / "data"
    rng = np.random.default_rng(0)
    n = sum(N_ROWS.values())
    ids = 100_000 + 13 * np.arange(n)
    paths = []
    for gid in ids:
        write_jpeg(data / catalogue.TRAIN_IMAGES / f"{gid}.jpg", int(gid))
        paths.append(str(data / catalogue.TRAIN_IMAGES / f"{gid}.jpg"))
    for gid in KAGGLE_IDS:
        write_jpeg(data / catalogue.TEST_IMAGES / f"{gid}.jpg", gid)
    for k, name in enumerate(KAGGLE_BAD):
        write_jpeg(data / catalogue.TEST_IMAGES / name, k)
    truncate(data / catalogue.TEST_IMAGES / "123456.jpg")
    table = pd.DataFrame(tree_labels(n, rng), columns=galaxyzoo.CLASS_COLUMNS)
    table.insert(0, "image_path", paths)
    table.insert(0, "GalaxyID", ids)
    table["split"] = np.repeat(list(N_ROWS), list(N_ROWS.values()))
    (root / "prepared").mkdir()
    table.to_csv(root / "prepared" / "table1.csv", index=False)
    pd.DataFrame(
        {
            "set": "training",
            "id": ids,
            "kind": np.where(np.arange(n) % 3 == 0, "smooth", "disk"),
            "has_bar": np.arange(n) % 2,
        },
        columns=catalogue.TRUTH_COLUMNS,  # the properties the predict stage does not use are empty
    ).to_csv(data / catalogue.TRUTH_CSV, index=False)
    params = params_file(
        root / "params.yaml",
        {
            "data": {"path": str(data)},
            "images": {"crop_px": 212, "size_px": SIZE_PX},
            "models": {
                name: model_entry(name, epochs=2, batch_size=8, learning_rate=0.002, weights=None)
                for name in SMALL
            },
        },
    )
    return {"root": root, "params": params, "table": root / "prepared" / "table1.csv", "frame": table}


def _train_args(project, name):
    root = project["root"]
    return [
        "--params", str(project["params"]), "--model", name, "--table", str(project["table"]),
        "--out", str(root / "models" / f"{name}.keras"), "--metrics", str(root / "metrics" / "train" / f"{name}.json"),
        "--timings", str(root / "metrics" / "timings" / "train" / f"{name}.json"),
        "--plots", str(root / "plots" / "train" / name),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(project):
    for name in SMALL:
        train_stage.main(_train_args(project, name))
    return project


def test_train_stage_outputs(trained):
    root = trained["root"]
    for name in SMALL:
        metrics = json.loads((root / "metrics" / "train" / f"{name}.json").read_text())
        assert metrics["epochs_run"] == 2 and metrics["arch"] == name
        assert metrics["n_train"] == N_ROWS["train"] and metrics["n_val"] == N_ROWS["val"]
        assert 1 <= metrics["best_epoch"] <= 2 and 0 < metrics["best_val_rmse"] < 1
        timings = json.loads((root / "metrics" / "timings" / "train" / f"{name}.json").read_text())
        assert timings["images_per_s"] > 0 and timings["train_seconds"] > 0 and "images_per_s" not in metrics
        curve = pd.read_csv(root / "plots" / "train" / name / "learning_curve.tsv", sep="\t")
        assert list(curve.columns) == training.CURVE_COLUMNS
        assert curve["epoch"].tolist() == [1, 2]
        assert metrics["best_val_rmse"] == pytest.approx(curve["val_rmse"].min())
        model = keras.models.load_model(root / "models" / f"{name}.keras")
        assert model.input_shape == (None, SIZE_PX, SIZE_PX, 3) and model.output_shape == (None, 37)
        assert not list((root / "models").glob(".*"))  # no temporary file left behind


def test_restored_weights_give_best_val_rmse(trained):
    """EarlyStopping restores the best epoch: the saved model reproduces the best val RMSE."""
    root, frame = trained["root"], trained["frame"]
    model = keras.models.load_model(root / "models" / "resnet_small.keras")
    paths, y = training.split_inputs(frame, "val", galaxyzoo.CLASS_COLUMNS)
    pred = training.predict(model, paths, ImagesConfig(crop_px=212, size_px=SIZE_PX))
    best = json.loads((root / "metrics" / "train" / "resnet_small.json").read_text())["best_val_rmse"]
    assert np.sqrt(np.mean((pred - y) ** 2)) == pytest.approx(best, rel=1e-4)


def _predict_args(project, metrics, out):
    root = project["root"]
    return [
        "--params", str(project["params"]), "--models", str(root / "models"), "--table", str(project["table"]),
        "--train-metrics", str(root / "metrics" / "train"), "--metrics", str(metrics / "table1.json"),
        "--table1", str(metrics / "table1.md"), "--predictions", str(out),
    ]  # fmt: skip


def test_predict_stage(trained):
    root = trained["root"]
    out = root / "predictions"
    predict_stage.main(_predict_args(trained, root / "metrics", out))
    metrics = json.loads((root / "metrics" / "table1.json").read_text())
    names = [*SMALL, "ensemble", "baseline_zeros", "baseline_train_mean"]
    assert list(metrics["rmse"]) == names
    frame = trained["frame"]
    test = frame[frame["split"] == "test"]
    y = test[galaxyzoo.CLASS_COLUMNS].to_numpy()
    assert metrics["rmse"]["baseline_zeros"]["test"] == pytest.approx(np.sqrt(np.mean(y**2)))
    assert metrics["per_question_test_rmse"]["baseline_zeros"]["Q3"] == pytest.approx(
        np.sqrt(np.mean(test[["Class3.1", "Class3.2"]].to_numpy() ** 2))
    )
    mean = frame.loc[frame["split"] == "train", galaxyzoo.CLASS_COLUMNS].to_numpy().mean(axis=0)
    assert metrics["rmse"]["baseline_train_mean"]["test"] == pytest.approx(np.sqrt(np.mean((y - mean) ** 2)))
    assert metrics["n"] == N_ROWS

    preds = {name: pd.read_csv(out / f"{name}.csv") for name in [*SMALL, "ensemble"]}
    for frame_ in preds.values():
        assert list(frame_.columns) == ["GalaxyID", "split", *galaxyzoo.CLASS_COLUMNS]
        assert frame_["GalaxyID"].tolist() == frame["GalaxyID"].tolist()
    ensemble = np.mean([preds[name][galaxyzoo.CLASS_COLUMNS].to_numpy() for name in SMALL], axis=0)
    np.testing.assert_allclose(preds["ensemble"][galaxyzoo.CLASS_COLUMNS].to_numpy(), ensemble, atol=1e-6)
    test_mask = (preds["ensemble"]["split"] == "test").to_numpy()
    ours = np.sqrt(np.mean((preds["ensemble"][galaxyzoo.CLASS_COLUMNS].to_numpy()[test_mask] - y) ** 2))
    assert metrics["rmse"]["ensemble"]["test"] == pytest.approx(ours, rel=1e-5)
    assert metrics["bar_auc"] is None or 0 <= metrics["bar_auc"] <= 1

    table1 = (root / "metrics" / "table1.md").read_text()
    assert "| vgg_small | vgg_small | 2 |" in table1 and "0.07939 (VGG16)" in table1
    assert "ensemble (mean)" in table1 and "baseline: all zeros" in table1

    submission = (out / "kaggle_submission.csv").read_text().splitlines()
    assert submission[0] == ",".join(["GalaxyID", *galaxyzoo.CLASS_COLUMNS])
    assert [int(line.split(",")[0]) for line in submission[1:]] == sorted(KAGGLE_IDS)
    values = np.array([[float(v) for v in line.split(",")[1:]] for line in submission[1:]])
    assert values.shape == (3, 37) and np.all((values >= 0) & (values <= 1))
    skipped = pd.read_csv(out / "kaggle_skipped.csv")
    assert list(skipped.columns) == ["file", "reason"]
    assert (
        dict(zip(skipped["file"].map(lambda f: f.rsplit("/", 1)[-1]), skipped["reason"], strict=True))
        == KAGGLE_BAD
    )
    assert metrics["kaggle_test"] == {
        "images": len(KAGGLE_IDS) + len(KAGGLE_BAD),
        "predicted": len(KAGGLE_IDS),
        "skipped": {r: list(KAGGLE_BAD.values()).count(r) for r in catalogue.KAGGLE_SKIP_REASONS},
    }


def test_predict_writes_nothing_when_a_prediction_fails(trained, tmp_path, monkeypatch):
    """A crash in the last prediction (the Kaggle folder's) must not leave the earlier outputs behind."""
    real_predict = training.predict

    def crash_on_kaggle(model, paths, images_cfg):
        if any(catalogue.TEST_IMAGES in str(p) for p in paths):
            raise RuntimeError("simulated crash")
        return real_predict(model, paths, images_cfg)

    monkeypatch.setattr(training, "predict", crash_on_kaggle)
    with pytest.raises(RuntimeError, match="simulated crash"):
        predict_stage.main(_predict_args(trained, tmp_path / "metrics", tmp_path / "predictions"))
    assert not (tmp_path / "predictions").exists() and not (tmp_path / "metrics").exists()


def test_predict_names_a_truncated_model_file(trained, tmp_path, capsys):
    """`head -c 50000 vgg_small.keras > models/vgg_small.keras` gave Keras' 'File not found' for a file that exists."""
    models = tmp_path / "models"
    shutil.copytree(trained["root"] / "models", models)
    (models / "vgg_small.keras").write_bytes((trained["root"] / "models" / "vgg_small.keras").read_bytes()[:50_000])
    args = _predict_args(trained, tmp_path / "metrics", tmp_path / "predictions")
    args[args.index("--models") + 1] = str(models)
    with pytest.raises(SystemExit) as exit_:
        predict_stage.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"{models / 'vgg_small.keras'}: not a zip archive (truncated, or another format); expected a Keras model" in err
    assert "File not found" not in err and not (tmp_path / "metrics").exists()


def test_bar_auc_known_answer():
    truth = pd.DataFrame(
        {
            "set": ["training"] * 5 + ["gz2"],
            "id": [1, 2, 3, 4, 5, 1],
            "kind": ["disk", "disk", "disk", "smooth", "disk", "disk"],
            "has_bar": [1, 0, 1, 0, 0, 0],
        }
    )
    log = logging.getLogger("test")
    # Galaxy 4 (smooth) and the gz2 row are ignored; among disks the score ranks bars first.
    scores = np.array([0.9, 0.1, 0.8, 0.95, 0.2])
    assert table1.bar_auc(truth, np.arange(1, 6), scores, log) == 1.0
    assert table1.bar_auc(truth, np.arange(1, 6), -scores, log) == 0.0
    assert table1.bar_auc(truth, np.array([2, 5]), scores[[1, 4]], log) is None


def test_train_stage_rejects_bad_model_before_work(project, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_stage.main(
            [
                "--params",
                str(project["params"]),
                "--model",
                "nope",
                "--table",
                "x",
                "--out",
                "x",
                "--metrics",
                "y",
                "--timings",
                "t",
                "--plots",
                "z",
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--model nope: not a key of models" in err and "vgg_small, resnet_small" in err
    params = params_file(
        tmp_path / "params.yaml", {"images": {"size_px": 64}, "models": {"big": model_entry("xception")}}
    )
    args = ["--params", str(params), "--model", "big", "--table", str(tmp_path / "missing.csv")]
    with pytest.raises(SystemExit) as exit_:
        train_stage.main([*args, "--out", "x", "--metrics", "y", "--timings", "t", "--plots", "z"])
    assert exit_.value.code == 2
    assert "xception needs an input of at least 71 px" in capsys.readouterr().err
    # start() bound the root logger to capsys' stream, closed after this test: detach it.
    logging.root.handlers.clear()


def _fit(arch, distribute="none", mixed=False, px=16, seed=0, loss="mse"):
    """One epoch on four random images: exercises a code path, not learning."""
    rng = np.random.default_rng(0)
    x, y = rng.random((4, px, px, 3), dtype="float32"), rng.random((4, 37), dtype="float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    return training.fit(
        lambda: architectures.build_model(arch, px, seed=seed),
        ds,
        ds,
        n_train=4,
        model_cfg=ModelConfig(arch=arch, epochs=1, batch_size=2),
        train_cfg=TrainConfig(distribute=distribute, mixed_precision=mixed),
        seed=seed,
        loss=loss,
    )


def test_weighted_mse_known_answer():
    """sum_i w_i e_i^2 / sum_i w_i per row; all ones is Keras' MSE."""
    y_true = np.array([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]], dtype="float32")
    y_pred = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.0]], dtype="float32")
    squared = (y_true - y_pred) ** 2  # rows [1, 0, 0.25] and [1, 0.25, 0]
    per_row = keras.ops.convert_to_numpy(training.WeightedMSE([2.0, 1.0, 1.0]).call(y_true, y_pred))
    np.testing.assert_allclose(per_row, [(2 * 1 + 0.25) / 4, (2 * 1 + 0.25) / 4], rtol=1e-6)
    ones = float(training.WeightedMSE([1.0, 1.0, 1.0])(y_true, y_pred))
    assert ones == pytest.approx(float(keras.losses.MeanSquaredError()(y_true, y_pred)), rel=1e-6)
    assert ones == pytest.approx(squared.mean(), rel=1e-6)


def test_bar_weight_weighs_the_bar_question_only_and_one_is_the_papers_mse():
    assert training.morphology_loss(1.0) == "mse"  # the default compiles the plain MSE, bit for bit
    loss = training.morphology_loss(5.0)
    weights = dict(zip(galaxyzoo.CLASS_COLUMNS, loss.output_weights, strict=True))
    assert weights["Class3.1"] == weights["Class3.2"] == 5.0
    assert {w for c, w in weights.items() if not c.startswith("Class3.")} == {1.0}


def test_a_model_trained_with_bar_weight_differs_and_loads_compiled(tmp_path):
    """The weight changes what is learnt (same seed, other weights) and a model compiled with the
    weighted loss loads with compile=True, as the predict stage loads it."""
    plain, _ = _fit("vgg_small")
    weighted, result = _fit("vgg_small", loss=training.morphology_loss(20.0))
    assert np.isfinite(result.best_val_rmse)
    assert not all(np.allclose(a, b) for a, b in zip(plain.get_weights(), weighted.get_weights(), strict=True))
    weighted.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.loss.output_weights == training.morphology_loss(20.0).output_weights


def test_mirrored_strategy_on_one_cpu():
    model, result = _fit("vgg_small", distribute="mirrored")
    assert result.epochs_run == 1 and np.isfinite(result.best_val_rmse)
    strategy = training.select_strategy("mirrored")
    assert type(strategy).__name__ == "MirroredStrategy" and strategy.num_replicas_in_sync >= 1
    assert type(training.select_strategy("auto")).__name__ != "MirroredStrategy"  # no GPUs here
    with pytest.raises(ValueError, match="expected one of auto, none, mirrored"):
        training.select_strategy("tpu")


def test_mixed_precision_keeps_output_float32():
    model, result = _fit("vgg_small", mixed=True)
    assert model.get_layer("hidden").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model.get_layer("output").compute_dtype == "float32"
    assert np.isfinite(result.best_val_rmse)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_train_stage_is_seeded(trained, tmp_path):
    """The same params give the same model: rerun one train stage and compare weights and curve."""
    root = trained["root"]
    args = _train_args(trained, "vgg_small")
    again = {"--out": tmp_path / "m.keras", "--metrics": tmp_path / "m.json", "--timings": tmp_path / "t.json",
             "--plots": tmp_path / "plots"}  # fmt: skip
    for flag, value in again.items():
        args[args.index(flag) + 1] = str(value)
    train_stage.main(args)
    first = keras.models.load_model(root / "models" / "vgg_small.keras")
    second = keras.models.load_model(tmp_path / "m.keras")
    for wa, wb in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    curves = [
        pd.read_csv(p / "learning_curve.tsv", sep="\t")
        for p in (root / "plots" / "train" / "vgg_small", tmp_path / "plots")
    ]
    assert curves[0]["val_rmse"].tolist() == curves[1]["val_rmse"].tolist()


def test_split_inputs_errors_name_the_split_and_file():
    frame = pd.DataFrame(
        {"image_path": [__file__, "nowhere/a.jpg"], "split": ["train", "test"], "y": [0.5, 1]}
    )
    paths, y = training.split_inputs(frame, "train", ["y"])
    assert paths == [__file__] and y.dtype == np.float32 and y.shape == (1, 1)
    with pytest.raises(ValueError, match="no rows with split == 'val'"):
        training.split_inputs(frame, "val", ["y"])
    with pytest.raises(ValueError, match="1 image.* of the test split not found, e.g. nowhere/a.jpg"):
        training.split_inputs(frame, "test", ["y"])


# --- the control CNN, cross-fitted ----------------------------------------------------------------

CONTROL_FOLDS = 3


def test_cross_fit_never_predicts_a_row_with_a_model_that_trained_on_it(monkeypatch):
    """cross_fit on 12 rows and 3 folds with training and prediction faked: what each fold saw."""
    table = pd.DataFrame({"image_path": [f"g{i}.jpg" for i in range(12)], "y": np.arange(12.0)})
    fold_of = np.arange(12) % 3
    roles = [np.where(fold_of == k, "predict", np.where(np.arange(12) % 4 == 0, "val", "train")) for k in range(3)]
    seen: list[set[str]] = []

    def fake_train(frame, targets, *, split_column, **kwargs):
        seen.append(set(frame.loc[frame[split_column] != "predict", "image_path"]))
        return len(seen) - 1, None  # the "model" is the fold's number

    monkeypatch.setattr(training, "train_from_table", fake_train)
    monkeypatch.setattr(training, "predict", lambda k, paths, cfg: np.full((len(paths), 1), 100.0 * k + 1))
    saved = []
    predictions, _ = training.cross_fit(
        table, ["y"], roles, images_cfg=ImagesConfig(), model_cfg=ModelConfig(), train_cfg=TrainConfig(), seed=0,
        on_model=lambda k, model: saved.append((k, model)),
    )  # fmt: skip
    assert saved == [(0, 0), (1, 1), (2, 2)]
    # Each row's prediction came from its own fold's model, which never trained or stopped early on it.
    np.testing.assert_array_equal(predictions[:, 0], 100.0 * fold_of + 1)
    for k in range(3):
        assert not seen[k] & set(table["image_path"][fold_of == k])
    # A row predicted by two folds (or by none) is refused before any training.
    bad = [roles[0], np.where(np.arange(12) == 0, "predict", roles[1]), roles[2]]
    with pytest.raises(ValueError, match=r"row 0 \(image g0.jpg\) is 'predict' in 2 of the 3 folds"):
        training.cross_fit(table, ["y"], bad, images_cfg=ImagesConfig(), model_cfg=ModelConfig(), train_cfg=TrainConfig(), seed=0)
    with pytest.raises(ValueError, match="is 'predict' in 0 of the 2 folds"):
        training.cross_fit(table, ["y"], roles[:2], images_cfg=ImagesConfig(), model_cfg=ModelConfig(), train_cfg=TrainConfig(), seed=0)


@pytest.fixture(scope="module")
def control_run(project):
    """The control stage on a 30-galaxy bar table (the fixture's images as bar galaxies), 3 folds, 1 epoch."""
    root, frame = project["root"], project["frame"]
    n = len(frame)
    objids = 587_000_000_000_000_000 + 7 * np.arange(n, dtype=np.int64)
    xai, control = splits.split_bars(objids, 1 / 3, 0.64, 0.16, seed=42)
    rng = np.random.default_rng(5)
    scaled = rng.uniform(0.1, 0.6, n)
    length_px424 = units.scaled_to_px424(scaled)
    petro, z = rng.uniform(8, 20, n), rng.uniform(0.02, 0.06, n)
    bars = pd.DataFrame({
        "objid": objids, "image_path": frame["image_path"], "length_scaled": scaled, "PETROR90_R": petro, "REDSHIFT": z,
        "length_px424": length_px424, "length_kpc": units.px424_to_kpc(length_px424, petro, z),
        "xai_split": xai, "control_split": control,
        "true_length_px424": length_px424 * rng.uniform(0.8, 1.2, n), "true_length_kpc": 1.0,
    })  # fmt: skip
    bars.to_csv(root / "prepared" / "bars.csv", index=False)
    params = params_file(
        root / "control_params.yaml",
        {
            "images": {"crop_px": 212, "size_px": SIZE_PX},
            "xai": {"permutations": 20, "bootstrap": 100},
            "control": {"folds": CONTROL_FOLDS, "model": {"arch": "xception_small", "epochs": 1, "batch_size": 8}},
        },
    )
    out = root / "control"
    control_stage.main([
        "--params", str(params), "--bars", str(root / "prepared" / "bars.csv"), "--out", str(out / "models"),
        "--metrics", str(out / "control.json"), "--timings", str(out / "timings.json"), "--plots", str(out / "plots"),
    ])  # fmt: skip
    return {"out": out, "bars": bars}


def test_control_stage_predicts_every_galaxy_out_of_fold(control_run):
    out, bars = control_run["out"], control_run["bars"]
    predictions = pd.read_csv(out / "plots" / "predictions.csv")
    assert sorted(predictions["objid"]) == sorted(bars["objid"])
    folds = splits.control_folds(bars["objid"].to_numpy(), bars["control_split"].to_numpy(), CONTROL_FOLDS, 42)
    expected = pd.Series(folds, index=bars["objid"])
    np.testing.assert_array_equal(predictions["fold"], expected.loc[predictions["objid"]])
    np.testing.assert_array_equal(predictions["xai_split"], bars.set_index("objid").loc[predictions["objid"], "xai_split"])
    for column in ("measured_px424", "measured_kpc", "catalogue_px424", "catalogue_kpc", "true_px424", "petror90_r_arcsec"):
        assert np.isfinite(predictions[column]).all(), column
    np.testing.assert_allclose(predictions["measured_px424"], units.scaled_to_px424(predictions["predicted_scaled"]), rtol=1e-6)
    # Each fold's saved model made exactly its fold's predictions.
    images_cfg = ImagesConfig(crop_px=212, size_px=SIZE_PX)
    paths = bars.set_index("objid")["image_path"]
    for k in range(CONTROL_FOLDS):
        model = keras.models.load_model(out / "models" / f"fold{k}.keras", compile=False)
        rows = predictions[predictions["fold"] == k]
        again = training.predict(model, paths.loc[rows["objid"]].tolist(), images_cfg)[:, 0]
        np.testing.assert_allclose(again, rows["predicted_scaled"], rtol=1e-5, atol=1e-6)
        curve = pd.read_csv(out / "plots" / f"fold{k}" / "learning_curve.tsv", sep="\t")
        assert curve["epoch"].tolist() == [1]


def test_control_metrics_cover_every_xai_test_galaxy_and_the_paper_split(control_run):
    out, bars = control_run["out"], control_run["bars"]
    metrics = json.loads((out / "control.json").read_text())
    n = len(bars)
    assert metrics["n"] == (bars["xai_split"] == "test").sum() and metrics["folds"] == CONTROL_FOLDS
    paper = metrics["paper_split"]
    assert paper["n"] == (bars["control_split"] == "test").sum() < metrics["n"]
    assert (paper["n_train"], paper["n_val"], paper["n_predicted"]) == tuple(
        int((bars["control_split"] == s).sum()) for s in splits.CONTROL_SPLITS
    )
    for scores in (metrics, paper):
        for key in ("rho", "rho_image", "spearman", "spearman_image", "rho_truth", "rho_truth_image"):
            lo, hi = scores[f"{key}_ci95"]
            assert lo <= scores[key] <= hi, key
    per_fold = metrics["per_fold"]
    assert [f["fold"] for f in per_fold] == list(range(CONTROL_FOLDS))
    assert sum(f["n_predicted"] for f in per_fold) == n
    assert sum(f["n_predicted_xai_test"] for f in per_fold) == metrics["n"]
    assert all(f["n_train"] + f["n_val"] + f["n_predicted"] == n and f["epochs_run"] == 1 for f in per_fold)


def test_seed_offset_trains_another_member_of_a_seed_ensemble():
    """models.<name>.seed_offset shifts train.seed for that model only: offset 0 is the default model,
    bit for bit; another offset gives other weights (a seed-ensemble member)."""
    assert training.model_seed(TrainConfig(seed=42), ModelConfig(seed_offset=3)) == 45
    seeds = [training.model_seed(TrainConfig(seed=7), ModelConfig(seed_offset=k)) for k in (0, 0, 1)]
    fitted = [_fit("vgg_small", seed=s)[0] for s in seeds]
    weights = [np.concatenate([w.ravel() for w in m.get_weights()]) for m in fitted]
    assert seeds[0] == 7 and np.array_equal(weights[0], weights[1])
    assert not np.allclose(weights[0], weights[2])


def test_control_target_truth_is_the_true_length_in_units_of_the_petrosian_diameter():
    bars = pd.DataFrame({"objid": [1, 2], "length_scaled": [0.4, 0.5], "true_length_px424": [60.0, 90.0]})
    column, same = control.target_lengths(bars, "catalogue", "bars.csv")
    assert column == control.TARGET and same is bars
    column, with_truth = control.target_lengths(bars, "truth", "bars.csv")
    assert column == control.TRUE_TARGET and control.TRUE_TARGET not in bars.columns  # the input is not changed
    np.testing.assert_allclose(units.scaled_to_px424(with_truth[column]), [60.0, 90.0])
    with pytest.raises(ValueError, match=r"bars.csv: control.target = truth needs the true bar lengths"):
        control.target_lengths(bars.drop(columns="true_length_px424"), "truth", "bars.csv")
    with pytest.raises(ValueError, match=r"bars.csv: control.target = truth: true_length_px424 of objid 2 is nan"):
        control.target_lengths(bars.assign(true_length_px424=[60.0, np.nan]), "truth", "bars.csv")
    with pytest.raises(ValueError, match="control.target = 'human': expected catalogue or truth"):
        control.target_lengths(bars, "human", "bars.csv")
