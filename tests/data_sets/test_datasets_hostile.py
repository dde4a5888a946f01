"""Hostile input to the data set readers: every one answers with one InputError line.

- RegDB list paths stay inside the root (absolute paths, ``..``, links leading out, UNC paths) and labels fit
  in 64 bits;
- SYSU-MM01 lists only images inside the root and says, in one warning at the caller's line, what it skipped;
  malformed id lists, trial seeds beyond 64 bits and roots that are not paths are refused;
- an image too large to decode (a decompression bomb) or unreadable is one line naming the file.
"""

import os

import pytest

from conftest import one_line
from xmrank import InputError
from xmrank.datasets import regdb_records, sysu_ids, sysu_query_gallery, sysu_test_records

HERE = os.path.abspath(__file__)


# --- RegDB list files stay inside their root ----------------------------------------------------------------

@pytest.fixture
def regdb_tree(tmp_path):
    root = tmp_path / "RegDB"
    (root / "idx").mkdir(parents=True)
    (root / "Visible" / "1").mkdir(parents=True)
    (root / "Visible" / "1" / "a.bmp").write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bmp").write_bytes(b"")
    os.symlink(outside / "secret.bmp", root / "Visible" / "1" / "evil.bmp")
    os.symlink(root / "Visible" / "1" / "a.bmp", root / "Visible" / "1" / "alias.bmp")  # a link inside: fine
    return root, outside


def write_list(root, line, name="train_visible_1.txt"):
    (root / "idx" / name).write_text(f"Visible/1/a.bmp 0\n{line}\n")


@pytest.mark.parametrize(
    "line,match",
    [
        ("/etc/passwd 0", r"line 2 of .* names '/etc/passwd', outside the root"),
        ("../outside/secret.bmp 0", r"names '../outside/secret.bmp', outside the root"),
        ("Visible/../../outside/secret.bmp 0", r"outside the root"),
        ("Visible/1/evil.bmp 0", r"names 'Visible/1/evil.bmp', outside the root"),  # a link leading out
        ("\\\\server\\share\\x.bmp 0", r"outside the root"),
        ("Visible/1/a.bmp 18446744073709551616", r"line 2 of .* has label 18446744073709551616, beyond 64 bits"),
        ("Visible/1/a.bmp 9223372036854775808", r"beyond 64 bits"),
        ("Visible/1/a.bmp 1_000", r"line 2 of .* expected 'relative/path label' with an integer label"),
        ("Visible/1/a.bmp 1.0", r"with an integer label"),
    ],
)
def test_regdb_list_lines_stay_inside_the_root(regdb_tree, line, match):
    root, _ = regdb_tree
    write_list(root, line)
    with pytest.raises(InputError, match=match) as e:
        regdb_records(str(root), split="train", modality="visible")
    one_line(e)


def test_regdb_links_inside_the_root_and_64_bit_labels_are_fine(regdb_tree):
    root, _ = regdb_tree
    write_list(root, "Visible/1/alias.bmp 9223372036854775807")
    recs = regdb_records(str(root), split="train", modality="visible")
    assert [r.pid for r in recs] == [0, 2**63 - 1]
    assert recs[1].path == os.path.join(str(root), "Visible/1/alias.bmp")


# --- SYSU-MM01 folders, id lists, trials and roots ----------------------------------------------------------

@pytest.fixture
def sysu_tree(tmp_path):
    root = tmp_path / "SYSU"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(b"")
    for cam in (1, 3):
        folder = root / f"cam{cam}" / "0001"
        folder.mkdir(parents=True)
        (folder / "0001.jpg").write_bytes(b"")
        (folder / "0002.PNG").write_bytes(b"")  # any case
    (root / "cam3" / "0001" / "Thumbs.db").write_bytes(b"")
    (root / "cam3" / "0001" / "notes.txt").write_bytes(b"")
    os.symlink(outside / "private.jpg", root / "cam3" / "0001" / "0003.jpg")
    os.symlink(root / "cam1" / "0001" / "0001.jpg", root / "cam3" / "0001" / "0004.jpg")  # inside: kept
    os.symlink(outside, root / "cam1" / "0002")  # an identity folder leading out
    (root / "exp").mkdir()
    for split in ("train", "val", "test"):
        (root / "exp" / f"{split}_id.txt").write_text("1,2\n")
    return root


def test_sysu_lists_only_images_inside_the_root_and_says_what_it_skipped(sysu_tree):
    with pytest.warns(UserWarning) as rec:
        query, gallery = sysu_query_gallery(str(sysu_tree))
    assert sorted(os.path.basename(r.path) for r in query) == ["0001.jpg", "0002.PNG", "0004.jpg"]
    assert all("elsewhere" not in os.path.realpath(r.path) for r in query + gallery)
    assert [r.pid for r in gallery] == [1]
    msgs = [str(w.message) for w in rec if "SYSU-MM01" in str(w.message)]
    assert len(msgs) == 1 and "\n" not in msgs[0]
    assert "skipped 2 non-image file(s)" in msgs[0] and "2 link(s) pointing outside the root" in msgs[0]
    assert all(w.filename == HERE for w in rec)  # attributed to the caller, not to xmrank
    with pytest.warns(UserWarning, match="SYSU-MM01: skipped"):
        recs = sysu_test_records(str(sysu_tree))
    assert all(os.path.realpath(r.path).startswith(os.path.realpath(sysu_tree)) for r in recs)


@pytest.mark.parametrize(
    "text,match",
    [
        ("1,--1\n", r"holds '--1'; expected comma-separated integer ids"),
        ("1,-3\n", r"holds a negative id \(-3\)"),
        ("1,18446744073709551616\n", r"holds id 18446744073709551616, beyond 64 bits"),
        ("1,1e3\n", r"holds '1e3'"),
        ("1,٣\n", r"holds '٣'"),  # not an ASCII digit
        ("1,+2\n", r"holds '\+2'"),
    ],
)
def test_sysu_ids_rejects_malformed_ids(tmp_path, text, match):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "test_id.txt").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match) as e:
        sysu_ids(str(tmp_path), "test")
    one_line(e)


@pytest.mark.parametrize("trial", [-1, 2**64, 1.5, "0"])
def test_sysu_trial_is_a_64_bit_seed(sysu_tree, trial):
    with pytest.raises(InputError) as e:
        sysu_query_gallery(str(sysu_tree), trial=trial)
    one_line(e)


def test_dataset_roots_that_are_not_paths():
    for root in (None, 5, "a\x00b"):
        with pytest.raises(InputError) as e:
            sysu_ids(root, "test")
        one_line(e)


# --- images too large to decode -----------------------------------------------------------------------------

def _bomb(path, side=20000):
    """A PNG whose header claims side x side pixels (a few KB on disk): Pillow refuses it on open."""
    from PIL import Image

    Image.new("1", (side, side)).save(path)


def test_decompression_bomb_is_one_line_naming_the_file(tmp_path):
    from xmrank.datasets.images import open_image

    _bomb(tmp_path / "bomb.png")
    with pytest.raises(InputError, match=r"image .*bomb.png is too large to decode") as e:
        with open_image(tmp_path / "bomb.png") as img:
            img.load()
    one_line(e)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"cannot read image .*junk.jpg \(UnidentifiedImageError"):
        with open_image(tmp_path / "junk.jpg"):
            pass
