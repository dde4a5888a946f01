"""``xmrank visrank``: ranked-list pictures from image paths, an identity grid without them, one-line errors."""

import numpy as np
import pytest

from conftest import cli, one_line_failure

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    n_ids = 6
    (tmp_path / "img" / "ir").mkdir(parents=True)
    (tmp_path / "img" / "rgb").mkdir(parents=True)
    centres = rng.normal(size=(n_ids, 8))
    qp, gp, qi, gi, qf, gf = [], [], [], [], [], []
    for pid in range(n_ids):
        for k in range(2):  # single-channel infrared queries
            p = f"ir/{pid}_{k}.png"
            Image.fromarray(np.full((32, 16), 40 * pid, np.uint8), mode="L").save(tmp_path / "img" / p)
            qp.append(p), qi.append(pid), qf.append(centres[pid] + rng.normal(scale=0.5, size=8))
        for k in range(3):  # colour gallery
            p = f"rgb/{pid}_{k}.jpg"
            Image.fromarray(np.full((32, 16, 3), (40 * pid, 100, 200), np.uint8)).save(tmp_path / "img" / p)
            gp.append(p), gi.append(pid), gf.append(centres[pid] + rng.normal(scale=0.5, size=8))
    qf, gf = np.array(qf, np.float32), np.array(gf, np.float32)
    np.savez(tmp_path / "q.npz", features=qf, ids=qi, paths=np.array(qp))
    np.savez(tmp_path / "g.npz", features=gf, ids=gi, paths=np.array(gp))
    np.savez(tmp_path / "q_plain.npz", features=qf, ids=qi)
    np.savez(tmp_path / "g_plain.npz", features=gf, ids=gi)
    np.save(tmp_path / "D.npy", -(qf @ gf.T))
    return tmp_path


def test_picture_from_image_paths(files):
    out = files / "ranks.png"
    res = cli("visrank", files / "q.npz", files / "g.npz", "--images-root", files / "img", "-o", out,
              "--queries", 3, "--top-k", 4, "--protocol", "regdb")
    assert res.exit_code == 0, res.output
    assert "3 queries x top-4" in res.output
    with Image.open(out) as im:
        assert im.format == "PNG" and min(im.size) > 100
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    # both frame colours are drawn (same-identity green #2ca02c, other-identity red #d62728)
    assert (np.abs(pixels - [44, 160, 44]).sum(1) < 30).sum() > 100
    assert (np.abs(pixels - [214, 39, 40]).sum(1) < 30).sum() > 100


def test_identity_grid_without_paths_and_distances_file(files):
    out = files / "grid.svg"
    res = cli("visrank", files / "q_plain.npz", files / "g_plain.npz", "--distances", files / "D.npy", "-o", out,
              "--queries", 2, "--protocol", "regdb")
    assert res.exit_code == 0, res.output
    assert "identity grid" in res.output and out.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args, message", [
    (["{q}", "{g}", "-o", "{t}/x.gif"], "must end with"),
    (["{q}", "{g}"], "give -o/--output"),
    (["{q}", "{g}", "-o", "{t}/x.png"], "image not found"),  # paths are relative to --images-root
    (["{q}", "{g}", "--images-root", "{t}/nope", "-o", "{t}/x.png"], "is not a folder"),
    (["{q}", "{g}", "--images-root", "{t}/img", "--distances", "{t}/q.npz", "-o", "{t}/x.png"], "--distances"),
    (["{q}", "{g}", "--images-root", "{t}/img", "-o", "{t}/missing/x.png"], "does not exist"),
])
def test_errors_are_one_line_and_write_nothing(files, args, message):
    args = [a.format(q=files / "q.npz", g=files / "g.npz", t=files) for a in args]
    res = cli("visrank", *args, "--protocol", "regdb")
    one_line_failure(res, message)
    assert not (files / "x.png").exists()
