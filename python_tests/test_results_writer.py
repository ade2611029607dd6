"""benchmarks/write_results.py: a section another device wrote is kept and marked as of its own
commit; the baselines are stated in units of the roofline."""

import os
import sys
from types import SimpleNamespace

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
write_results = pytest.importorskip("write_results")

OTHER = ("## CPU: Some CPU (AVX2), 2 threads\n\nRun 2026-01-01 10:00 UTC, commit `aaaa`, full mode.\n"
         "Host: Some CPU.\n\n| measure | value |\n|---|---|\n| dse forward | 500 ms |\n\n")


def _run(commit):
    return SimpleNamespace(machine={"commit": commit, "date_utc": "2026-02-02 12:00 UTC"},
                           roofline_ms=lambda _pass: 50.0)


def test_kept_section_of_another_commit_is_marked_once():
    marked = write_results.mark_kept(OTHER, _run("bbbb"))
    assert marked.count("*Kept from an earlier run") == 1
    assert "commit `aaaa`" in marked.split("\n\n")[1] and "commit `bbbb`" in marked.split("\n\n")[1]
    assert marked.startswith("## CPU: Some CPU (AVX2), 2 threads\n\n*Kept")
    again = write_results.mark_kept(marked, _run("cccc"))  # a later run replaces the line
    assert again.count("*Kept from an earlier run") == 1 and "commit `cccc`" in again
    assert write_results.mark_kept(marked, _run("aaaa")) == OTHER  # rerun at its own commit: no line


def test_baselines_in_units_of_the_roofline():
    size = (64, 196, 384)
    dse = {("torch-batched", "forward", *size): (600.0, 3, None), ("published", "forward", *size): (900.0, 2, None)}
    line = write_results.baselines_against_roofline(_run("x"), dse, {"B": 64, "N": 196, "d": 384})
    assert "torch-batched 600 ms = 12.0x it, so >= 10x over it asks for 60.0 ms = 1.20x the roofline" in line
    assert "published 900 ms = 18.0x it, so >= 30x over it asks for 30.0 ms = 0.60x the roofline" in line
    assert write_results.baselines_against_roofline(_run("x"), {}, {"B": 64, "N": 196, "d": 384}) is None


def _dse_entry(impl, median_s):
    return {"stats": {"median": median_s, "rounds": 3},
            "extra_info": {"kind": "dse", "device": "cpu", "impl": impl, "pass": "forward", "B": 64, "N": 196,
                           "d": 384}}


def test_published_target_reads_the_paired_ratio():
    """With a paired measurement the >= 30x target reads its median ratio, not the ratio of the two
    separate benchmarks' medians (shown beside it); without one, the separate ratio."""
    separate = [_dse_entry("sdd_fast", 0.040), _dse_entry("published", 1.6)]
    paired = {"stats": {"median": 2.0, "rounds": 4},
              "extra_info": {"kind": "paired", "device": "cpu", "impl": "published", "pass": "forward",
                             "ratios": [24.0, 26.0, 25.0, 23.0], "ratio": 24.5}}
    row = next(line for line in write_results.section(write_results.Run(
        {"benchmarks": separate + [paired]}, "cpu")).splitlines() if "over published" in line)
    assert "24.5x paired (median of 4 rounds, 23.0x-26.0x; separate benchmarks' medians: 40.0x)" in row
    assert "MISS: 24.5x < 30x" in row
    row = next(line for line in write_results.section(write_results.Run(
        {"benchmarks": separate}, "cpu")).splitlines() if "over published" in line)
    assert "| 40.0x |" in row and "PASS" in row


def test_a_speed_up_just_under_its_target_does_not_print_as_the_target():
    status = write_results._headline_status("speedup", 29.966, 30.0)
    assert status == "MISS: 29.97x < 30x (0.11% short)"
    assert write_results._headline_status("speedup", 24.5, 30.0) == "MISS: 24.5x < 30x (22% short)"
    assert write_results._headline_status("speedup", 30.0, 30.0) == "PASS"
