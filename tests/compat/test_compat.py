"""The one-line import swap gives the published matrices."""

import numpy as np
import pytest

from xmrank.compat import compute_jaccard_distance, compute_jaccard_distance_xmodal


def test_cluster_contrast_signature_and_result(golden):
    D = compute_jaccard_distance(golden["X"], k1=int(golden["k1"]), k2=int(golden["k2"]), print_flag=False)
    assert isinstance(D, np.ndarray) and D.shape == (len(golden["X"]),) * 2
    np.testing.assert_allclose(D, golden["cc_vanilla_jaccard"], atol=1e-5)


def test_bmil_rgbnum_convention(golden):
    m = golden["modalities"]
    order = np.argsort(m, kind="stable")  # BMIL wants visible rows first
    X = golden["X"][order]
    D = compute_jaccard_distance_xmodal(X, k1=int(golden["k1"]), k2=int(golden["k2"]), search_option=5,
                                        rgbNum=int((m == 0).sum()))
    np.testing.assert_allclose(D, golden["bmil_modality_aware_jaccard"][np.ix_(order, order)], atol=1e-5)


def test_bmil_file_name_convention_is_the_qe_only_variant(golden):
    m = golden["modalities"]
    names = [f"/data/{'ir_modify' if v else 'rgb_modify'}/{i}.jpg" for i, v in enumerate(m)]
    D = compute_jaccard_distance_xmodal(golden["X"], k1=int(golden["k1"]), k2=int(golden["k2"]), search_option=3,
                                        all_file_name=names)
    np.testing.assert_allclose(D, golden["bmil_qe_only_jaccard"], atol=1e-5)


def test_torch_tensor_input_and_float16(golden):
    torch = pytest.importorskip("torch")
    D = compute_jaccard_distance(torch.from_numpy(golden["X"]), k1=int(golden["k1"]), k2=int(golden["k2"]),
                                 use_float16=True)
    assert D.dtype == np.float16
    np.testing.assert_allclose(D.astype(np.float32), golden["cc_vanilla_jaccard"], atol=1e-3)


def test_bad_rgbnum():
    X = np.eye(10, dtype=np.float32)
    with pytest.raises(ValueError, match="rgbNum must be >= 1"):
        compute_jaccard_distance_xmodal(X, k1=4, k2=2, search_option=5, rgbNum=0)
