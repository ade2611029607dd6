"""The build records the torch and CUDA it was built for, and sdd_fast refuses, at import and with
both builds and the wheel to install named, a library built for another torch release or CUDA."""

import pytest
import torch

import sdd_fast
from sdd_fast._version import build_version, local_tag
from sdd_fast.core import library


def test_the_local_tag_names_torch_and_cuda():
    assert local_tag("2.14.1+cu130", "13.0") == "pt2141cu130"
    assert local_tag("2.6.0", "12.4.131") == "pt260cu124"
    assert local_tag("2.14.1+cpu", None) == "pt2141cpu"
    assert build_version("2.14.1+cu130", None).endswith("+pt2141cpu")


def test_a_library_built_for_another_torch_release_is_a_clear_import_error():
    with pytest.raises(ImportError) as error:
        library.check_build_matches({"torch": "1.13.0+cu117", "cuda": "11.7"}, torch_version="2.14.1+cu130",
                                    torch_cuda="13.0")
    message = str(error.value)
    assert "1.13.0+cu117" in message and "2.14.1+cu130" in message and "+pt2141cu130" in message
    assert "make build" in message


@pytest.mark.parametrize("torch_cuda, wheel", [("12.8", "+pt2141cu128"), (None, "+pt2141cpu")])
def test_cuda_kernels_for_another_cuda_are_a_clear_import_error(torch_cuda, wheel):
    """Same torch release, CUDA kernels built for 13.0: under a torch with CUDA 12.8, or a CPU-only
    torch, the error names both CUDAs and the wheel for the installed torch."""
    with pytest.raises(ImportError) as error:
        library.check_build_matches({"torch": "2.14.1+cu130", "cuda": "13.0"}, torch_version="2.14.1",
                                    torch_cuda=torch_cuda)
    message = str(error.value)
    assert "CUDA 13.0" in message and wheel in message
    assert (f"CUDA {torch_cuda}" if torch_cuda else "with no CUDA") in message


def test_same_release_and_cuda_or_a_cpu_only_build_is_accepted():
    library.check_build_matches({"torch": "2.14.1+cpu", "cuda": None}, torch_version="2.14.1+cu130", torch_cuda="13.0")
    library.check_build_matches({"torch": "2.14.1+cu130", "cuda": "13.0"}, torch_version="2.14.1+cu130",
                                torch_cuda="13.0")
    library.check_build_matches(None)  # not built: nothing to compare


@pytest.mark.skipif(not sdd_fast.has_ops(), reason="needs the compiled library")
def test_the_build_records_the_torch_it_was_built_for():
    info = library.built_for()
    assert info is not None and info["torch"] == torch.__version__
    assert (info["cuda"] is not None) == (sdd_fast.cuda_version() > 0)
    assert sdd_fast.__version__ == build_version(info["torch"], info["cuda"])
