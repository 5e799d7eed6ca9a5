"""The real datasets (docs/method/data.md): the NYUv2 loader on the four public samples (skipped
when ``../shared`` is absent, as in a user's clone), the joint augmentation on a synthetic pattern,
``cutlib data check`` on broken copies, and a ``cutlib run`` on the samples as a tiny dataset."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from cutlib.cli import main
from cutlib.data import DATASETS, REAL_LAYOUTS, load_dataset, paper_tasks
from cutlib.data.nyuv2 import LAYOUT, decode_normals
from cutlib.data.real import DataError, check_layout, read_index, split_entries
from cutlib.data.transforms import (
    IMAGE_MEAN,
    IMAGE_STD,
    IgnoreValueMask,
    SurfaceNormals,
    denormalize,
    real_transform,
)
from cutlib.profiles import load_profile

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyuv2-samples"
IDS = ("0061", "0295", "0774", "1314")

needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="the NYUv2 samples of ../shared are not here (a user's clone)"
)


def _entry(sample_id: str) -> list[str]:
    return [
        f"img/{sample_id}.png",
        f"seg/{sample_id}.png",
        f"normal_mask/{sample_id}.png",
        f"depth/{sample_id}.npy",
    ]


def _write_index(path: Path, entries: list[list[str]]) -> None:
    """An index that trains and tests on the same entries (a tiny dataset)."""
    path.write_text(json.dumps({"train": entries, "test": entries}))


@pytest.fixture
def nyuv2_root(tmp_path: Path) -> Path:
    """The four samples as a tiny dataset: a copy with an index that trains and tests on them."""
    root = tmp_path / "nyuv2"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("README*"))
    _write_index(root / "nyu_v2_3task.json", [_entry(i) for i in IDS])
    return root


@needs_samples
def test_nyuv2_test_split_follows_the_sample_conventions(nyuv2_root: Path) -> None:
    test = load_dataset("nyuv2", "test", load_profile("smoke"), 0, root=nyuv2_root)
    assert len(test) == 4
    for index in range(len(test)):
        sample = test[index]
        raw = test.read(index)
        assert sample["image"].shape == (3, 480, 640) and sample["image"].dtype == torch.float32
        seg = sample["seg"]
        assert seg.shape == (480, 640) and seg.dtype == torch.long
        ignored = seg == 255
        assert bool(((seg < 40) | ignored).all())
        assert 0.05 < float(ignored.float().mean()) < 0.3  # 13–17 % in the samples' README
        normals, depth = sample["sn"], sample["depth"]
        assert normals.shape == (3, 480, 640) and depth.shape == (1, 480, 640)
        invalid = torch.from_numpy((raw["sn"] == 255).all(-1))
        norm = normals.norm(dim=0)
        assert bool((norm[invalid] == 0).all())
        assert torch.allclose(norm[~invalid], torch.ones(()), atol=1e-5)
        assert bool((depth >= 0).all()) and 0.5 < float(depth[depth > 0].min())
        assert float(depth.max()) < 10.0
        assert torch.equal(depth[0] == 0, torch.from_numpy(raw["depth"] == 0))


@needs_samples
def test_nyuv2_training_crops_and_the_paper_compatible_normals(nyuv2_root: Path) -> None:
    profile = load_profile("smoke")
    train = load_dataset("nyuv2", "train", profile, 0, augment=True, root=nyuv2_root)
    crop = profile.data.resolution
    sample = train[0]
    assert sample["image"].shape == (3, *crop) and sample["seg"].shape == crop
    colour = profile.override({"data": {"options": {"normals": "colour"}}})
    test = load_dataset("nyuv2", "test", colour, 0, root=nyuv2_root)
    normals = test[0]["sn"]
    valid = normals.abs().sum(0) > 0
    assert float(normals[:, valid].min()) >= 0 and float(normals[:, valid].max()) <= 255
    assert float(normals[:, valid].max()) > 128  # raw colour values, not unit vectors
    with pytest.raises(ValueError, match="unknown data option 'normal'"):
        bad = profile.override({"data": {"options": {"normal": "unit"}}})
        load_dataset("nyuv2", "test", bad, 0, root=nyuv2_root)


def test_decode_normals_unit_and_colour() -> None:
    rgb = np.array([[[255, 128, 128], [0, 128, 128], [255, 255, 255]]], dtype=np.uint8)
    unit = decode_normals(rgb, "unit")
    assert unit.shape == (3, 1, 3)
    assert np.allclose(np.linalg.norm(unit[:, 0, :2], axis=0), 1.0)
    assert unit[0, 0, 0] > 0.99 and unit[0, 0, 1] < -0.99  # red is x: +x, then −x
    assert (unit[:, 0, 2] == 0).all()  # (255, 255, 255) is invalid
    colour = decode_normals(rgb, "colour")
    assert colour[:, 0, 0].tolist() == [255.0, 128.0, 128.0] and (colour[:, 0, 2] == 0).all()
    with pytest.raises(ValueError, match="unknown normals mode"):
        decode_normals(rgb, "bgr")


def test_augmentation_keeps_image_and_labels_aligned() -> None:
    """Blocks of 8×8 pixels, each with its own class; the image's red channel, the depth and the
    class map carry the same block pattern, and every normal points to +x. After random scaling,
    flips and crops, every label must still agree with the others and with the image."""
    height, width, block = 64, 96, 8
    rows, cols = np.mgrid[0:height, 0:width] // block
    classes = (rows * (width // block) + cols) % 40
    image = np.zeros((3, height, width), np.uint8)
    image[0] = classes * 6  # distinct red levels per class
    image[1] = np.linspace(0, 255, width, dtype=np.uint8)[None]  # rises left to right
    normals = np.zeros((3, height, width), np.float32)
    normals[0] = 1.0
    transform = real_transform(True, (48, 48), (height, width))
    torch.manual_seed(0)
    flipped = 0
    for _ in range(20):
        out = transform(
            {
                "image": tv_tensors.Image(torch.from_numpy(image)),
                "seg": IgnoreValueMask(torch.from_numpy(classes.astype(np.uint8))),
                "depth": tv_tensors.Mask(torch.from_numpy(classes.astype(np.float32))[None]),
                "sn": SurfaceNormals(torch.from_numpy(normals)),
            }
        )
        seg, depth, sn = out["seg"].long(), out["depth"][0], out["sn"]
        kept = seg != 255
        assert bool(kept.any())
        assert torch.equal(depth[kept], seg[kept].float())  # labels moved together
        assert bool((depth[~kept] == 0).all()) and bool((sn[:, ~kept] == 0).all())  # padding
        red = denormalize(out["image"])[0] * 255
        # pixels two or more pixels away from any block edge or padding: bilinear resampling
        # leaves their colour that of their own block
        edge = torch.zeros_like(seg, dtype=torch.float32)
        edge[:, 1:] += (seg[:, 1:] != seg[:, :-1]).float()
        edge[1:, :] += (seg[1:, :] != seg[:-1, :]).float()
        edge = torch.nn.functional.max_pool2d(edge[None, None], 5, 1, 2)[0, 0]
        interior = kept & (edge == 0)
        interior[:2], interior[-2:], interior[:, :2], interior[:, -2:] = False, False, False, False
        if interior.any():  # the image carries the class of the label at the same pixel
            assert torch.allclose(red[interior], seg[interior].float() * 6, atol=4)
        green = denormalize(out["image"])[1]
        row = int(kept.any(1).nonzero()[0, 0])
        values = green[row][kept[row]]
        is_flipped = bool(values[0] > values[-1])
        flipped += is_flipped
        expected = -1.0 if is_flipped else 1.0  # a flip mirrors the normals' x component
        assert torch.allclose(sn[0][kept], torch.full_like(sn[0][kept], expected))
    assert 0 < flipped < 20


@needs_samples
def test_data_check_reports_each_problem_on_one_line(
    nyuv2_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "check", "nyuv2", "--root", str(nyuv2_root)]) == 0
    assert "is valid" in capsys.readouterr().out
    (nyuv2_root / "img" / "0061.png").unlink()  # a missing file
    np.save(nyuv2_root / "depth" / "0295.npy", np.ones((240, 320), np.float32))  # wrong shape
    np.save(nyuv2_root / "depth" / "0774.npy", np.ones((480, 640), np.int64))  # wrong dtype
    assert main(["data", "check", "nyuv2", "--root", str(nyuv2_root)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(
        line.startswith(str(nyuv2_root / "img" / "0061.png")) and "missing" in line
        for line in lines
    )
    assert any("0295.npy: wrong shape 240×320" in line for line in lines)
    assert any("0774.npy: wrong dtype int64" in line for line in lines)
    problems, _ = check_layout(LAYOUT, nyuv2_root)
    assert len(problems) == len(lines)  # nothing reported twice


def test_data_check_on_an_empty_folder_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "check", "nyuv2", "--root", str(tmp_path)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{tmp_path / 'nyu_v2_3task.json'}: missing")
    assert out[0].count("nyu_v2_3task.json:") == 1 and "data/README.md" in out[0]
    assert main(["data", "check", "kitti"]) == 2
    assert "valid: nyuv2" in capsys.readouterr().err
    assert main(["data", "info", "--root", str(tmp_path)]) == 0
    assert "nyuv2: not present" in capsys.readouterr().out


def test_index_errors_and_the_validation_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_index(LAYOUT, tmp_path / "nowhere")
    (tmp_path / "nyu_v2_3task.json").write_text(json.dumps({"train": [["a", "b"]], "test": []}))
    with pytest.raises(DataError, match="non-empty 'test'"):
        read_index(LAYOUT, tmp_path)
    (tmp_path / "nyu_v2_3task.json").write_text(json.dumps({"train": [["a"]], "test": [["a"]]}))
    with pytest.raises(DataError, match="list of 4 paths"):
        read_index(LAYOUT, tmp_path)
    index = {"train": [[str(i)] for i in range(25)], "test": [["t"]]}
    train, val = split_entries(index, "train", 3), split_entries(index, "val", 3)
    assert len(val) == 2 and len(train) == 23 and not {*map(tuple, val)} & {*map(tuple, train)}
    assert split_entries(index, "val", 3) == val  # seeded
    assert split_entries({**index, "val": [["v"]]}, "val", 0) == [["v"]]


def test_missing_real_data_stops_a_run_and_reproduce_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["run", "--dataset", "nyuv2", "--data-root", str(tmp_path), "--profile", "smoke"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cutlib data check nyuv2" in err[0]
    assert main(["run", "--dataset", "synth-nyuv2", "--data-root", str(tmp_path)]) == 2
    assert "takes no data root" in capsys.readouterr().err
    monkeypatch.setenv("CUTLIB_ROOT", str(tmp_path))
    assert main(["reproduce", "--profile", "paper", "--dataset", "nyuv2"]) == 2
    err = capsys.readouterr().err
    assert "data/nyuv2" in err and "data/README.md" in err
    assert set(REAL_LAYOUTS) <= {"nyuv2", "cityscapes", "taskonomy"}


@needs_samples
@pytest.mark.slow
def test_cut_runs_end_to_end_on_the_four_samples(nyuv2_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--dataset", "nyuv2", "--data-root", str(nyuv2_root), "--method", "cut"]
    args += ["--tasks", "seg,depth", "--sparsity", "0.9", "--profile", "smoke", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "nyuv2" and metrics["tasks"] == ["seg", "depth"]
    assert abs(metrics["sparsity"]["achieved"] - 0.9) < 0.01
    assert set(metrics["metrics"]) == {"seg", "depth"}
    assert all(np.isfinite(v) for t in metrics["metrics"].values() for v in t.values())
    assert np.isfinite(metrics["delta_mtl"])


@pytest.mark.slow
def test_paper_profile_trains_the_reference_model_one_iteration_at_full_crop() -> None:
    """The exact DeepLab-ResNet34 with 1024-channel heads of the `paper` profile, one SGD step on
    one 321×321 crop (the training crop; batch 1 instead of 16 to fit the test budget on CPU)."""
    from cutlib.data import dataset_tasks
    from cutlib.losses import multitask_loss
    from cutlib.models import SceneNet

    profile = load_profile("paper", "nyuv2")
    tasks = dataset_tasks("nyuv2", profile)
    assert [t.loss_weight for t in tasks] == [1.0, 20.0, 3.0]
    torch.manual_seed(0)
    model = SceneNet(tasks, **profile.model.kwargs())
    assert sum(p.numel() for p in model.parameters()) == 90_695_664  # docs/method/model.md
    height, width = profile.data.resolution
    image = torch.randn(1, 3, height, width)
    targets = {
        "seg": torch.randint(0, 40, (1, height, width)),
        "sn": torch.nn.functional.normalize(torch.randn(1, 3, height, width), dim=1),
        "depth": torch.rand(1, 1, height, width) + 0.5,
    }
    optimiser = torch.optim.SGD(model.parameters(), lr=profile.pretrain.lr)
    model.train()
    outputs = model(image)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "seg": (1, 40, 41, 41),
        "sn": (1, 3, 41, 41),
        "depth": (1, 1, 41, 41),
    }
    loss, _ = multitask_loss(tasks, outputs, targets)
    loss.backward()
    before = model.heads["seg"].branches[0][0].weight.detach().clone()
    optimiser.step()
    assert torch.isfinite(loss) and not torch.equal(
        before, model.heads["seg"].branches[0][0].weight
    )


def _write_cityscapes(root: Path, count: int = 2) -> None:
    """Files in the documented Cityscapes format (docs/method/data.md#cityscapes-on-disk), at the
    native 256×512."""
    rng = np.random.default_rng(0)
    entries = []
    for i in range(count):
        names = [f"{kind}/{i}.npy" for kind in ("img", "depth", "label2", "label7", "label19")]
        (root / "img").mkdir(parents=True, exist_ok=True)
        for kind in ("depth", "label2", "label7", "label19"):
            (root / kind).mkdir(exist_ok=True)
        np.save(root / names[0], rng.random((256, 512, 3), dtype=np.float32))
        depth = rng.random((256, 512, 1), dtype=np.float32) * 0.49
        depth[:10] = 0  # invalid rows
        np.save(root / names[1], depth)
        for name, classes in zip(names[2:], (2, 7, 19), strict=True):
            labels = rng.integers(-1, classes, (256, 512)).astype(np.int64)
            np.save(root / name, labels)
        entries.append(names)
    _write_index(root / "cityscape.json", entries)


def test_cityscapes_loader_reads_the_documented_format(tmp_path: Path) -> None:
    _write_cityscapes(tmp_path)
    profile = load_profile("smoke")
    test = load_dataset("cityscapes", "test", profile, 0, root=tmp_path)
    sample = test[1]
    assert sample["image"].shape == (3, 256, 512) and sample["image"].dtype == torch.float32
    raw = np.load(tmp_path / "label19" / "1.npy")
    assert torch.equal(sample["seg"] == 255, torch.from_numpy(raw == -1))
    assert torch.equal(sample["seg"][raw >= 0], torch.from_numpy(raw[raw >= 0]))
    assert sample["depth"].shape == (1, 256, 512) and bool((sample["depth"][0, :10] == 0).all())
    train = load_dataset("cityscapes", "train", profile, 0, augment=True, root=tmp_path)
    assert train[0]["seg"].shape == profile.data.resolution
    assert check_layout(REAL_LAYOUTS["cityscapes"], tmp_path) == ([], {"train": 2, "test": 2})


#: The seg class weights of the Taskonomy fixture (classes 0–16).
PRIOR = np.linspace(0.5, 2.1, 17).astype(np.float32)


def _write_taskonomy(root: Path, count: int = 2) -> None:
    """Files in the documented Tiny-Taskonomy format (docs/method/data.md#tiny-taskonomy-on-disk),
    at 64×64."""
    from PIL import Image

    rng = np.random.default_rng(1)
    entries = []
    for i in range(count):
        arrays = {
            "rgb": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "seg": rng.integers(0, 18, (64, 64), dtype=np.uint8),
            "normal": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
            "depth": rng.integers(0, 2**16, (64, 64), dtype=np.uint16),
            "keypoint": rng.integers(0, 2**16, (64, 64), dtype=np.uint16),
            "edge": rng.integers(0, 2**16, (64, 64), dtype=np.uint16),
        }
        names = []
        for kind, array in arrays.items():
            (root / "building" / kind).mkdir(parents=True, exist_ok=True)
            names.append(f"building/{kind}/{i}.png")
            Image.fromarray(array).save(root / names[-1])
        entries.append(names)
    _write_index(root / "taskonomy.json", entries)
    np.save(root / "semseg_prior_factor.npy", PRIOR)


def test_taskonomy_loader_reads_the_documented_format(tmp_path: Path) -> None:
    _write_taskonomy(tmp_path)
    profile = load_profile("smoke")
    test = load_dataset("taskonomy", "test", profile, 0, root=tmp_path)
    sample, raw = test[0], test.read(0)
    assert set(sample) == {"image", "seg", "sn", "depth", "keypoint", "edge"}
    seg = sample["seg"]
    assert torch.equal(seg == 255, torch.from_numpy(raw["seg"] == 0))  # unlabelled: ignored
    assert int(seg[seg != 255].max()) <= 16
    depth = sample["depth"][0]
    invalid = torch.from_numpy(raw["depth"] >= 64500)
    assert bool((depth[invalid] == 0).all())
    assert torch.allclose(depth[~invalid], torch.from_numpy(raw["depth"] / 512.0)[~invalid].float())
    for task in ("keypoint", "edge"):
        assert float(sample[task].min()) >= 0 and float(sample[task].max()) <= 1
    assert torch.allclose(sample["sn"].norm(dim=0), torch.ones(()), atol=1e-5)
    reference = {"seg_unlabelled": "class0", "depth": "log", "maps": "signed"}
    paper = profile.override({"data": {"options": reference}})
    compat = load_dataset("taskonomy", "test", paper, 0, root=tmp_path)[0]
    assert int((compat["seg"] == 255).sum()) == 0  # merged into class 0, as the reference
    assert float(compat["keypoint"].min()) >= -1 and float(compat["keypoint"].min()) < 0
    train = load_dataset("taskonomy", "train", profile, 0, augment=True, root=tmp_path)
    assert train[0]["keypoint"].shape == (1, *profile.data.resolution)
    (tmp_path / "building" / "depth" / "1.png").unlink()
    problems, _ = check_layout(REAL_LAYOUTS["taskonomy"], tmp_path)
    assert [p.problem for p in problems] == ["missing (train depth file)"]  # once per file


# --- the reference code's pipeline, metrics and losses on the real datasets ---------------------


@pytest.mark.parametrize("layout", [LAYOUT, REAL_LAYOUTS["cityscapes"]], ids=lambda x: x.name)
def test_random_scale_draws_s_in_half_to_one_and_a_half_of_the_stored_size(layout) -> None:
    """On the non-square NYUv2 (480×640) and Cityscapes (256×512) sizes, the scaled image and
    every label are int(s·H) × int(s·W) with s ∈ [0.5, 1.5) spread over the whole range, and the
    labels are resampled without interpolation (seg ids, ignore values and unit normals)."""
    height, width = layout.native_size
    crop = (int(1.5 * height) + 1, int(1.5 * width) + 1)  # every scaled image fits whole
    transform = real_transform(True, crop, (height, width))
    classes = torch.arange(height * width).view(height, width) % 7
    normals = torch.nn.functional.normalize(torch.randn(3, height, width), dim=0)
    torch.manual_seed(0)
    scales = []
    for _ in range(60):
        out = transform(
            {
                "image": tv_tensors.Image(torch.full((3, height, width), 200, dtype=torch.uint8)),
                "seg": IgnoreValueMask(classes.to(torch.uint8)),
                "sn": SurfaceNormals(normals),
            }
        )
        kept = out["seg"] != 255  # the padding is the only ignore value
        rows, cols = int(kept.any(1).sum()), int(kept.any(0).sum())
        assert int(kept.sum()) == rows * cols  # one rectangle
        scale = rows / height
        assert abs(cols / width - scale) <= 2 / height  # one s for both sides
        scales.append(scale)
        assert set(out["seg"][kept].unique().tolist()) <= set(range(7))
        assert torch.allclose(out["sn"][:, kept].norm(dim=0), torch.ones(()), atol=1e-5)
        assert bool((out["sn"][:, ~kept] == 0).all())
        black = (torch.zeros(3) - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
        padded = torch.isclose(out["image"], black[:, None, None], atol=1e-4).all(0)
        assert torch.equal(padded, ~kept)  # the image covers exactly the labelled rectangle
    assert 0.5 - 1 / height <= min(scales) < 0.55 and 1.45 < max(scales) < 1.5


@needs_samples
def test_caffe_normalisation_and_centred_padding_on_the_nyuv2_samples(nyuv2_root: Path) -> None:
    caffe_mean_bgr = (104.00698793, 116.66876762, 122.67891434)  # the reference loaders' mean
    smoke = load_profile("smoke")
    reference = {"normalize": "caffe", "pad": "centred", "resolution": [800, 1000]}
    profile = smoke.override({"data": reference})
    test = load_dataset("nyuv2", "test", profile, 0, root=nyuv2_root)
    raw = torch.from_numpy(test.read(0)["image"]).permute(2, 0, 1).double()
    expected = raw.flip(0) - torch.tensor(caffe_mean_bgr, dtype=torch.float64).view(3, 1, 1)
    image = test[0]["image"]
    assert torch.allclose(image.double(), expected, atol=1e-3)  # BGR, 0–255, minus the mean
    assert torch.allclose(denormalize(image, "caffe").double() * 255, raw, atol=1e-2)
    train = load_dataset("nyuv2", "train", profile, 0, augment=True, root=nyuv2_root)
    torch.manual_seed(0)
    for index in range(len(train)):
        image = train[index]["image"]
        padding = -torch.tensor(caffe_mean_bgr).view(3, 1)
        content = ~torch.isclose(image, padding[..., None], atol=1e-3).all(0)
        rows, cols = content.any(1).nonzero()[:, 0], content.any(0).nonzero()[:, 0]
        height, width = int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1
        assert 0.5 <= height / 480 < 1.5
        # the scaled image sits in the middle of the crop, as the reference pads it
        assert (int(rows[0]), int(cols[0])) == ((800 - height) // 2, (1000 - width) // 2)
    imagenet = load_dataset("nyuv2", "test", smoke, 0, root=nyuv2_root)[0]["image"]
    assert float(imagenet.abs().max()) < 3 < float(image.abs().max())  # the ~58× input scale


def _constant_metrics(dataset: str, root: Path, constants: dict, tasks: tuple[str, ...]) -> dict:
    """Test metrics of a constant predictor on ``root`` with the paper profile's evaluation, as a
    run measures them (:meth:`RunContext.test_metrics`)."""
    from cutlib.experiments import RunConfig, resolve
    from cutlib.methods import RunContext
    from cutlib.trivial import ConstantPredictor

    if dataset == "taskonomy":  # its segmentation loss weighs the classes by this file
        np.save(root / "semseg_prior_factor.npy", np.ones(17, np.float32))
    config = RunConfig(dataset, "dense", tasks, 0.0, "paper", data_root=str(root))
    ctx = RunContext(resolve(config.validated()), torch.device("cpu"), False, None)
    return ctx.test_metrics(ConstantPredictor(ctx.tasks, constants))


def test_taskonomy_normals_are_true_angles_under_the_reference_conventions(
    tmp_path: Path,
) -> None:
    """The reference measures colour-vector angles on NYUv2 only: a true 30° error on
    Taskonomy reads 30° under `reference` (the colour-space angle would read 11.3°)."""
    from PIL import Image

    _write_taskonomy(tmp_path)
    colour = np.array([40, 200, 120], dtype=np.uint8)
    for i in range(2):
        Image.fromarray(np.tile(colour, (64, 64, 1))).save(tmp_path / f"building/normal/{i}.png")
    truth = torch.from_numpy(decode_normals(colour[None, None], "unit")[:, 0, 0])
    axis = torch.nn.functional.normalize(
        torch.linalg.cross(truth, torch.tensor([1.0, 0, 0])), dim=0
    )
    angle = torch.tensor(math.radians(30))
    rotated = truth * torch.cos(angle) + torch.linalg.cross(axis, truth) * torch.sin(angle)
    metrics = _constant_metrics("taskonomy", tmp_path, {"sn": rotated}, ("sn",))
    assert metrics["sn"]["angle_mean"] == pytest.approx(30.0, abs=0.01)
    from cutlib.data import metric_conventions

    paper = load_profile("paper", "taskonomy")
    conventions = metric_conventions("taskonomy", paper)
    assert conventions.normals == "unit" and conventions.pixel_acc == "per_batch"
    assert conventions.depth_errors == conventions.map_errors == "per_batch"
    nyuv2_paper = load_profile("paper", "nyuv2")
    nyuv2 = metric_conventions("nyuv2", nyuv2_paper)
    assert nyuv2.normals == "color" and nyuv2.pixel_acc == "per_image"
    colour_data = nyuv2_paper.override(
        {"data": {"options": {"normals": "colour"}}}
    )  # raw colour targets
    assert metric_conventions("nyuv2", colour_data).normals == "unit"  # no double encoding
    assert metric_conventions("synth-taskonomy", paper).normals == "unit"
    assert metric_conventions("taskonomy", load_profile("quick")).normals == "unit"


def test_cityscapes_void_pixels_count_as_wrong_under_the_reference_conventions(
    tmp_path: Path,
) -> None:
    """Per image (test batch 1): a constant class-3 predictor scores #(label = 3) over every
    pixel, void (−1) included, under `reference`, and over the labelled pixels under
    `standard`."""
    _write_cityscapes(tmp_path)
    labels = [np.load(tmp_path / "label19" / f"{i}.npy") for i in range(2)]
    reference = _constant_metrics("cityscapes", tmp_path, {"seg": torch.tensor(3)}, ("seg",))
    expected = np.mean([(a == 3).sum() / a.size for a in labels])
    assert reference["seg"]["pixel_acc"] == pytest.approx(expected)
    standard = load_dataset("cityscapes", "test", load_profile("smoke"), 0, root=tmp_path)
    from cutlib.metrics import evaluate
    from cutlib.trivial import ConstantPredictor

    specs = REAL_LAYOUTS["cityscapes"].tasks[:1]
    loader = torch.utils.data.DataLoader(standard, batch_size=1)
    plain = evaluate(ConstantPredictor(specs, {"seg": torch.tensor(3)}), loader, specs)
    assert plain["seg"]["pixel_acc"] == pytest.approx(
        sum((a == 3).sum() for a in labels) / sum((a >= 0).sum() for a in labels)
    )


def test_taskonomy_seg_class_weights_come_from_the_prior_file(tmp_path: Path) -> None:
    """The reference weighs Taskonomy's seg cross-entropy by semseg_prior_factor.npy: the task a
    run trains and scores carries those weights, and its loss is the hand-computed weighted
    mean Σ w_y·CE / Σ w_y."""
    from cutlib.data import dataset_tasks
    from cutlib.losses import task_loss

    _write_taskonomy(tmp_path)
    profile = load_profile("paper", "taskonomy")
    seg = dataset_tasks("taskonomy", profile, tmp_path)[0]
    assert seg.class_weights == pytest.approx(tuple(PRIOR.tolist()))
    logits = torch.randn(1, 17, 2, 3, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([[[0, 5, 16], [255, 5, 9]]])
    log_p = torch.log_softmax(logits, dim=1)[0]
    pixels = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]  # (1, 0) is ignored
    weights = [float(PRIOR[int(target[0, r, c])]) for r, c in pixels]
    losses = [-float(log_p[int(target[0, r, c]), r, c]) for r, c in pixels]
    expected = sum(w * ce for w, ce in zip(weights, losses, strict=True)) / sum(weights)
    assert float(task_loss(seg, logits, target)) == pytest.approx(expected, rel=1e-5)
    unweighted = profile.override({"data": {"options": {"seg_weights": "none"}}})
    assert dataset_tasks("taskonomy", unweighted, tmp_path)[0].class_weights is None
    (tmp_path / "semseg_prior_factor.npy").unlink()
    with pytest.raises(DataError, match="semseg_prior_factor.npy: missing"):
        dataset_tasks("taskonomy", profile, tmp_path)
    problems, _ = check_layout(REAL_LAYOUTS["taskonomy"], tmp_path)
    assert [p.path.name for p in problems] == ["semseg_prior_factor.npy"]
    np.save(tmp_path / "semseg_prior_factor.npy", PRIOR[:5])
    with pytest.raises(DataError, match="wrong shape 5"):
        dataset_tasks("taskonomy", profile, tmp_path)


@pytest.mark.slow
def test_a_taskonomy_run_trains_and_scores_with_the_class_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tasks a run trains, scores and saves carry the prior file's weights."""
    from cutlib.checkpoint import load_model

    monkeypatch.setenv("CUTLIB_RESULTS", str(tmp_path / "results"))
    root = tmp_path / "taskonomy"
    root.mkdir()
    _write_taskonomy(root, count=6)
    args = ["run", "--dataset", "taskonomy", "--data-root", str(root), "--method", "cut"]
    args += ["--tasks", "seg,sn", "--profile", "smoke", "--quiet", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    seg = load_model(tmp_path / "o" / "model.pt").tasks[0]
    assert seg.class_weights == pytest.approx(tuple(PRIOR.tolist()))
    pretrained = next((tmp_path / "results" / "runs").glob("taskonomy-dense-*/model.pt"))
    assert load_model(pretrained).tasks[0].class_weights == pytest.approx(tuple(PRIOR.tolist()))


def test_every_dataset_mirrors_a_paper_dataset_with_the_papers_class_counts() -> None:
    assert {name: info.mirrors for name, info in DATASETS.items()} == {
        "synth-nyuv2": "nyuv2",
        "synth-cityscapes": "cityscapes",
        "synth-taskonomy": "taskonomy",
        "nyuv2": "nyuv2",
        "cityscapes": "cityscapes",
        "taskonomy": "taskonomy",
    }
    seg_classes = {name: paper_tasks(name)[0].channels for name in DATASETS}
    assert seg_classes == {
        "synth-nyuv2": 40,
        "synth-cityscapes": 19,
        "synth-taskonomy": 17,
        "nyuv2": 40,
        "cityscapes": 19,
        "taskonomy": 17,
    }
    for name, info in DATASETS.items():  # the same tasks as the dataset, in the same order
        assert [t.name for t in paper_tasks(name)] == list(info.task_names)
