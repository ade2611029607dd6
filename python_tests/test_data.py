"""sdd_fast.data: the embedded synthetic scenes, the --data parser, ImageFolder and VOC readers."""

import numpy as np
import pytest
import torch
from PIL import Image

from sdd_fast import data
from sdd_fast.data import scenes

C = scenes.NUM_CLASSES


# ----------------------------------------------------------------------------------------- synthetic


def test_render_is_deterministic_per_scene():
    imgs, masks = scenes.render_scenes(0, "val", range(6), 32)
    again = scenes.render_scenes(0, "val", range(6), 32)
    assert torch.equal(imgs, again[0]) and torch.equal(masks, again[1])
    # scene i depends on (seed, split, i) only, not on which other scenes are rendered with it
    part = scenes.render_scenes(0, "val", [4, 2], 32)
    assert torch.equal(part[0], imgs[[4, 2]]) and torch.equal(part[1], masks[[4, 2]])
    other_seed = scenes.render_scenes(1, "val", range(6), 32)
    other_split = scenes.render_scenes(0, "train", range(6), 32)
    for other in (other_seed, other_split):
        assert all(not torch.equal(imgs[i], other[0][i]) for i in range(6))
        assert not torch.equal(masks, other[1])


def test_render_leaves_global_rngs_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    scenes.render_scenes(5, "train", range(3), 32)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


def test_dataset_items_shapes_dtypes_ranges():
    ds = scenes.SyntheticScenes("val", img_size=24, seed=3, length=10)
    assert len(ds) == 10
    image, mask = ds[7]
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8
    assert mask.shape == (24, 24) and mask.dtype == torch.int64
    assert 0 <= int(mask.min()) and int(mask.max()) < C
    assert int(image.max()) > int(image.min())  # not blank
    image[:] = 0  # items are copies: the cache is not corrupted
    assert int(ds[7][0].max()) > 0
    assert len(scenes.SyntheticScenes("val", img_size=16)) == scenes.VAL_SIZE == 256


def test_every_class_appears_with_balanced_objects():
    _, masks = scenes.render_scenes(0, "train", range(64), 32)
    freq = torch.bincount(masks.flatten().long(), minlength=C).double() / masks.numel()
    assert len(freq) == C and bool((freq > 0).all())
    assert 0.5 < freq[0] < 0.85  # background is the largest class but not everything
    objects = freq[1:] / freq[1:].sum()
    assert float(objects.min()) > 0.3 / (C - 1) and float(objects.max()) < 3.0 / (C - 1)
    per_image = [len(set(m.unique().tolist()) - {0}) for m in masks]
    assert min(per_image) >= 1 and max(per_image) <= scenes.MAX_OBJECTS
    mean_objects = (scenes.MIN_OBJECTS + scenes.MAX_OBJECTS) / 2
    assert sum(per_image) / len(per_image) >= 0.85 * mean_objects  # few objects fully hidden


def _line_residual(colours: torch.Tensor) -> float:
    """RMS distance of RGB points [n, 3] from their best-fitting line."""
    x = colours - colours.mean(0)
    s = torch.linalg.svdvals(x)
    return float((s[1:] ** 2).sum().div(len(x)).sqrt())


def test_masks_agree_with_image_content():
    # Without sensor noise an object is its texture mapped between two colours: its pixels lie on
    # one line in RGB space, up to uint8 rounding. A mask that is off by a few pixels picks up
    # background or another object and leaves the line.
    imgs, masks = scenes.render_scenes(2, "val", range(12), 48, pixel_noise=False)
    good = shifted = textured = total = 0
    for img, mask in zip(imgs.double(), masks):
        moved = torch.roll(mask, shifts=3, dims=1)
        for c in set(mask.unique().tolist()) - {0}:
            sel = mask == c
            if sel.sum() < 30:
                continue
            colours = img[:, sel].T  # [n, 3] in 0..255
            total += 1
            good += _line_residual(colours) < 1.0
            textured += float(colours.std(0).max()) > 8.0  # the texture is visible, not a flat fill
            shifted += _line_residual(img[:, moved == c].T) < 1.0
    assert total >= 20
    assert good == total
    assert textured >= 0.9 * total
    assert shifted <= 0.2 * total


def test_colour_does_not_give_the_class_away():
    imgs, masks = scenes.render_scenes(4, "train", range(96), 32, pixel_noise=False)
    means = {c: [] for c in range(1, C)}
    for img, mask in zip(imgs.double() / 255, masks):
        for c in set(mask.unique().tolist()) - {0}:
            means[c].append(img[:, mask == c].mean(1))
    for c, m in means.items():
        assert len(m) >= 15, scenes.CLASS_NAMES[c]
        avg = torch.stack(m).mean(0)
        assert bool(((avg > 0.35) & (avg < 0.65)).all()), (scenes.CLASS_NAMES[c], avg)


def test_objects_are_grey_textures_with_visible_contrast():
    # Object colours: two grey levels >= OBJECT_CONTRAST apart with a faint tint, so that
    # neither colour nor brightness identifies a class or an image (SSL would learn colour only).
    imgs, masks = scenes.render_scenes(5, "train", range(48), 48, pixel_noise=False)
    checked = contrasted = 0
    for img, mask in zip(imgs.double() / 255, masks):
        for c in set(mask.unique().tolist()) - {0}:
            pixels = img[:, mask == c]  # [3, n]
            if pixels.shape[1] < 30:
                continue
            checked += 1
            chroma = pixels - pixels.mean(0, keepdim=True)  # [3, n]: distance from the grey axis
            assert float(chroma.abs().max()) <= scenes.OBJECT_TINT + 0.01, scenes.CLASS_NAMES[c]
            grey = pixels.mean(0)
            contrasted += float(grey.max() - grey.min()) >= 0.5 * scenes.OBJECT_CONTRAST
    assert checked >= 40
    assert contrasted >= 0.8 * checked  # small, occluded fragments may show one stripe only


def test_synthetic_factories():
    source = data.parse_data("synthetic")
    assert source == data.DataSource("synthetic") and str(source) == "synthetic"
    assert data.num_classes(source) == C == 9
    names = data.class_names(source)
    assert names[0] == "background" and len(set(names)) == C
    train = data.train_images(source, 32, seed=1)
    assert len(train) == scenes.TRAIN_SIZE == 2048
    image = train[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    seg = data.segmentation_split(source, "train", 32, seed=1)
    x, y = seg[5]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (32, 32)
    torch.testing.assert_close(x, data.normalize(image))  # same scene, normalised
    val = data.segmentation_split("synthetic", "val", 32, seed=1)
    assert len(val) == scenes.VAL_SIZE
    with pytest.raises(ValueError, match="split"):
        data.segmentation_split(source, "test", 32)
    with pytest.raises(ValueError, match="img_size"):
        data.train_images(source, 4)


def test_normalize():
    image = torch.tensor([255, 0, 128], dtype=torch.uint8).view(3, 1, 1).expand(3, 2, 2)
    out = data.normalize(image)
    expect = [(1 - data.MEAN[0]) / data.STD[0], -data.MEAN[1] / data.STD[1],
              (128 / 255 - data.MEAN[2]) / data.STD[2]]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expect))
    assert data.IGNORE_INDEX == 255


# ---------------------------------------------------------------------------------------- parse_data


@pytest.mark.parametrize("spec, message", [
    ("foo", "--data foo: expected synthetic, imagefolder:PATH or voc:PATH"),
    ("synthetic:x", "--data synthetic:x: expected"),
    ("imagefolder:", "--data imagefolder:: missing PATH"),
    ("imagefolder:/no/such/dir", "--data imagefolder:/no/such/dir: no such directory"),
    ("voc:/no/such/dir", "--data voc:/no/such/dir: no such directory"),
])
def test_parse_data_errors_name_the_option(spec, message):
    with pytest.raises(ValueError) as error:
        data.parse_data(spec)
    assert str(error.value).startswith(message)


def test_parse_data_checks_folder_contents(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"--data imagefolder:.*no images"):
        data.parse_data(f"imagefolder:{tmp_path}")
    with pytest.raises(ValueError, match=r"--data voc:.*no JPEGImages/"):
        data.parse_data(f"voc:{tmp_path}")
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    with pytest.raises(ValueError, match=r"--data voc:.*no SegmentationClass/<id>.png mask"):
        data.parse_data(f"voc:{tmp_path}")


# --------------------------------------------------------------------------------------- imagefolder


def _save_rgb(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_imagefolder(tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)  # the center square is green: the center crop keeps only it
    _save_rgb(tmp_path / "a" / "wide.png", wide)
    _save_rgb(tmp_path / "a" / "b" / "c" / "blue.JPG", np.full((30, 30, 3), (0, 0, 255)))
    _save_rgb(tmp_path / "gray.bmp", np.full((17, 23), 100))
    Image.fromarray(np.full((12, 12, 4), 200, np.uint8)).save(tmp_path / "rgba.webp")
    (tmp_path / "a" / "README.txt").write_text("not an image")
    source = data.parse_data(f"imagefolder:{tmp_path}")
    assert source.kind == "imagefolder" and source.path == tmp_path
    images = data.train_images(source, 16)
    assert len(images) == 4
    items = [images[i] for i in range(len(images))]
    assert all(x.shape == (3, 16, 16) and x.dtype == torch.uint8 for x in items)
    by_name = dict(zip([p.name for p in images.paths], items))
    green = by_name["wide.png"][:, :, 2:14].int()
    assert bool((green[1] > 240).all()) and bool((green[0] < 15).all())
    assert bool((by_name["blue.JPG"][2] > 230).all()) and bool((by_name["blue.JPG"][:2] < 25).all())
    assert bool((by_name["gray.bmp"] == 100).all())  # grayscale -> 3 equal channels
    no_masks = r"^--data imagefolder:.* has no masks; the probe needs synthetic or voc:PATH"
    with pytest.raises(ValueError, match=no_masks):
        data.segmentation_split(source, "train", 16)
    with pytest.raises(ValueError, match="has no masks"):
        data.num_classes(source)


# ----------------------------------------------------------------------------------------------- voc


def _palette_png(path, labels):
    """A VOC-style palette PNG whose indices are `labels` [H, W] uint8."""
    h, w = labels.shape
    img = Image.frombytes("P", (w, h), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    palette = np.random.default_rng(0).integers(0, 256, (256, 3)).astype(np.uint8)
    palette[255] = (224, 224, 192)
    img.putpalette(palette.flatten().tolist())
    img.save(path)


def _voc(root, ids, split_files=True):
    """A VOC layout: image id k is red on its left half (person, class 15) with a void (255) border."""
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(ids):
        image = np.full((32, 48, 3), 40 + 10 * k, np.uint8)
        image[:, :24] = (255, 0, 0)
        _save_rgb(root / "JPEGImages" / f"{name}.jpg", image)
        labels = np.zeros((32, 48), np.uint8)
        labels[:, :24] = 15
        labels[:, 22:26] = 255  # void border between the object and the background
        _palette_png(root / "SegmentationClass" / f"{name}.png", labels)
    if split_files:
        (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:3]) + "\n")
        (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[3:]) + "\n")


def test_voc_with_split_files(tmp_path):
    ids = ["2007_000001", "2007_000002", "2007_000003", "2008_000004", "2008_000005"]
    _voc(tmp_path, ids)
    source = data.parse_data(f"voc:{tmp_path}")
    assert data.num_classes(source) == 21 and data.class_names(source)[15] == "person"
    val = data.segmentation_split(source, "val", 16)
    assert len(val) == 2 and len(data.segmentation_split(source, "train", 16)) == 3
    image, mask = val[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert mask.shape == (16, 16) and mask.dtype == torch.int64
    # 32 x 48 -> 16 x 24 -> center crop columns 4..20; nearest keeps labels exact, incl. the void border
    assert set(mask.unique().tolist()) == {0, 15, 255}
    assert bool((mask[:, :7] == 15).all()) and bool((mask[:, 7:9] == 255).all())
    assert bool((mask[:, 9:] == 0).all())
    red = data.normalize(torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1))
    torch.testing.assert_close(image[:, :, :5], red.expand(3, 16, 5), atol=0.15, rtol=0)
    train = data.train_images(source, 16)
    assert len(train) == 3 and train[0].shape == (3, 16, 16) and train[0].dtype == torch.uint8
    # a split file naming an id without files is reported with the id
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2008_000004\nmissing_id\n")
    with pytest.raises(ValueError, match="missing_id"):
        data.segmentation_split(source, "val", 16)


def test_voc_without_split_files_and_rgb_masks(tmp_path):
    ids = [f"img{k:02d}" for k in range(10)]
    _voc(tmp_path, ids, split_files=False)
    # an RGB-coded mask (VOC colour map: class 15 = (192, 128, 128)) decodes to the same labels
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (192, 128, 128)
    rgb[:, 22:26] = (224, 224, 192)
    _save_rgb(tmp_path / "SegmentationClass" / "img03.png", rgb)
    source = data.parse_data(f"voc:{tmp_path}")
    train = data.segmentation_split(source, "train", 16)
    val = data.segmentation_split(source, "val", 16)
    train_ids, val_ids = train.pairs.ids, val.pairs.ids
    assert len(train_ids) == 8 and len(val_ids) == 2 and not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == ids
    assert data.segmentation_split(source, "val", 16).pairs.ids == val_ids  # deterministic
    k = (train_ids + val_ids).index("img03")
    _, mask = (train[k] if k < 8 else val[k - 8])
    assert set(mask.unique().tolist()) == {0, 15, 255}
    # labels other than 0..20 and 255 are an error naming the file
    _palette_png(tmp_path / "SegmentationClass" / f"{val_ids[0]}.png", np.full((32, 48), 40, np.uint8))
    with pytest.raises(ValueError, match=f"{val_ids[0]}.png holds label 40"):
        val[0]
