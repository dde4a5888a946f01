"""Hostile values for the torch side: training settings, weights, features.

- training configurations: billion-laughs YAML, non-integer ``non_local`` entries and settings that overflow are
  refused in one line (``train --show-config``);
- ``load_model`` refuses weights that are NaN, complex, sparse or float8, and paths that are not paths;
- ``extract_features`` refuses non-finite features, and a corrupt image read by a DataLoader worker is the
  worker's one-line message.
"""

import numpy as np
import pytest

from conftest import cli, one_line, one_line_failure
from xmrank import InputError


# --- YAML and --set -----------------------------------------------------------------------------------------

LAUGHS = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else '1, 1, 1, 1, 1, 1, 1, 1, 1'}]\n"
                 for p, c in zip([""] + list("abcdefg"), "abcdefgh")) + "lr: *h\n"


def test_billion_laughs_yaml_is_refused(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "bomb.yaml").write_text(LAUGHS)
    res = cli("train", "--preset", "smoke", "--show-config", "--config", tmp_path / "bomb.yaml")
    one_line_failure(res, "aliases (*a) are not allowed in a configuration")


@pytest.mark.parametrize("value", ["[0,2.5,0,0]", "[0,true,0,0]", "0,2.5,0,0", "[0,1e400,0,0]"])
def test_non_local_entries_must_be_whole_numbers(value):
    pytest.importorskip("yaml")
    res = cli("train", "--preset", "smoke", "--show-config", "--set", f"non_local={value}")
    one_line_failure(res, "config non_local must be a list of 4 integers")


def test_non_local_whole_floats_are_read_as_integers():
    pytest.importorskip("yaml")
    res = cli("train", "--preset", "smoke", "--show-config", "--set", "non_local=0,2.0,3,0")
    assert res.exit_code == 0 and "non_local: [0, 2, 3, 0]" in res.output


@pytest.mark.parametrize("field,value,message", [
    ("lr", "1e308", "lr must be <= 1.0"), ("gamma", "1.5", "gamma must be <= 1.0"),
    ("gem_p", "1e308", "gem_p must be <= 10.0"), ("temperature", "1e-300", "temperature must be >= 0.001"),
    ("height", "100000", "height must be <= 2048"),
    ("synthetic_train_ids", "100000", "synthetic_train_ids + 4 + synthetic_test_ids must be at most 9999"),
    ("synthetic_images_per_camera", "1000", "at most 200000 are written"),
])
def test_training_settings_that_overflow_are_refused(field, value, message):
    pytest.importorskip("yaml")
    one_line_failure(cli("train", "--preset", "smoke", "--show-config", "--set", f"{field}={value}"), message)


# --- weights, features, workers -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind,match", [
    ("nan", r"holds \d+ NaN or infinite value"), ("complex", "holds complex numbers"),
    ("sparse", "is a sparse_coo tensor"), ("float8", "is a float8_e4m3fn tensor"),
])
def test_load_model_refuses_weights_that_are_not_real_finite_numbers(tmp_path, small_model, kind, match):
    import torch

    from xmrank.torch.loading import load_model

    model, cfg = small_model
    state = dict(model.state_dict())
    key = "base.layer1.0.conv1.weight" if "base.layer1.0.conv1.weight" in state else \
        next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    w = state[key]
    state[key] = {"nan": lambda: torch.full_like(w, float("nan")), "complex": lambda: w.to(torch.complex64),
                  "sparse": lambda: w.to_sparse(), "float8": lambda: w.to(torch.float8_e4m3fn)}[kind]()
    torch.save({"model": state, "config": cfg.to_dict(), "stage": 2}, tmp_path / "m.pt")
    import contextlib

    # a complex weight used to be cast with numpy's ComplexWarning: no warning may escape (sparse tensors make
    # torch.load warn about their invariants: not checked there)
    with _no_warning() if kind in ("nan", "complex") else contextlib.nullcontext():
        with pytest.raises(InputError, match=match) as e:
            load_model(tmp_path / "m.pt")
    one_line(e)


class _no_warning:
    """Every warning raised as an error inside the block."""

    def __enter__(self):
        import warnings

        self.ctx = warnings.catch_warnings()
        self.ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


@pytest.mark.parametrize("path", [None, 3, "", b"a\x00b"])
def test_load_model_of_no_path_is_one_line(path):
    pytest.importorskip("torch")
    from xmrank.torch.loading import load_model

    with pytest.raises(InputError, match="path") as e:
        load_model(path)
    one_line(e)


def test_extract_features_refuses_non_finite_features(small_model, tmp_path):
    import torch
    from PIL import Image

    from xmrank.datasets import ImageRecord
    from xmrank.torch.features import extract_features

    model, _ = small_model
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(tmp_path / "a.jpg")
    bad = model
    saved = {k: v.clone() for k, v in bad.state_dict().items()}
    try:
        with torch.no_grad():
            next(p for p in bad.parameters() if p.dim() == 4).fill_(float("nan"))
        with pytest.raises(InputError, match="NaN or infinite features for 1 of 1 image") as e:
            extract_features(bad, [ImageRecord(str(tmp_path / "a.jpg"), 0, 1, 0)], height=32, width=16,
                             num_workers=0)
        one_line(e)
    finally:
        bad.load_state_dict(saved)


def test_a_corrupt_image_read_by_a_dataloader_worker_is_the_workers_message(small_model, tmp_path):
    from PIL import Image

    from xmrank.datasets import ImageRecord
    from xmrank.torch.features import extract_features

    model, _ = small_model
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    records = [ImageRecord(str(tmp_path / n), 0, 1, 0) for n in ("a.jpg", "b.jpg")]
    with pytest.raises(InputError, match=r"^cannot read image .*b.jpg") as e:
        extract_features(model, records, height=32, width=16, num_workers=1, batch_size=1)
    one_line(e)
    assert "DataLoader" not in str(e.value) and "Traceback" not in str(e.value)
