"""The build records the torch it was built for, and sdd_fast refuses, at import and with both
versions named, a library built for another torch release."""

import pytest
import torch

import sdd_fast
from sdd_fast.core import library


def test_a_library_built_for_another_torch_release_is_a_clear_import_error():
    with pytest.raises(ImportError) as error:
        library.check_build_matches({"torch": "1.13.0+cu117", "cuda": "11.7"}, torch_version="2.14.1+cu130")
    message = str(error.value)
    assert "1.13.0+cu117" in message and "2.14.1+cu130" in message and "+pt2141" in message
    assert "make build" in message


def test_same_release_with_another_local_tag_is_accepted():
    library.check_build_matches({"torch": "2.14.1+cpu", "cuda": None}, torch_version="2.14.1+cu130")
    library.check_build_matches(None)  # not built: nothing to compare


@pytest.mark.skipif(not sdd_fast.has_ops(), reason="needs the compiled library")
def test_the_build_records_the_torch_it_was_built_for():
    info = library.built_for()
    assert info is not None and info["torch"] == torch.__version__
    assert (info["cuda"] is not None) == (sdd_fast.cuda_version() > 0)
