"""scripts/experiments/box_decoder_experiment.py: validation scores per seed and the paired comparison."""
import argparse
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "experiments" / "box_decoder_experiment.py"
spec = importlib.util.spec_from_file_location("box_decoder_experiment", SCRIPT)
bdx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bdx)


def _csv(path: Path, rows: dict[str, tuple[float, int]]) -> Path:
    path.write_text("case_id,dsc,n_gt_lesions\n" + "".join(f"{c},{d},{n}\n" for c, (d, n) in rows.items()))
    return path


def test_validation_dsc_keeps_the_tumour_bearing_validation_cases(tmp_path):
    f = _csv(tmp_path / "e.csv", {"v1": (0.5, 1), "v2": (1.0, 0), "t1": (0.9, 1)})
    assert bdx.tumour_dsc(f, ["v1", "v2"]) == {"v1": 0.5}  # tumour-free v2 and test case t1 left out
    with pytest.raises(SystemExit, match="v3"):
        bdx.tumour_dsc(f, ["v1", "v3"])


def test_variant_minus_reference_per_seed_and_over_seeds():
    reference = [{"a": 0.2, "b": 0.4}, {"a": 0.4, "b": 0.0}]
    full = [{"a": 0.6, "b": 0.4}, {"a": 0.6, "b": 0.4}]
    summary = bdx.summarise({"ref": reference, "full": full}, {"ref": [3, None], "full": [5, 6]}, "ref")
    assert summary["networks"]["ref"]["per_seed"] == pytest.approx([30.0, 20.0])
    assert summary["networks"]["ref"]["mean"] == pytest.approx(25.0)
    # cases averaged over seeds first: ref a 0.3, b 0.2; full a 0.6, b 0.4 -> differences 30 and 20 points
    c = summary["comparisons"]["full"]
    assert c["mean"] == pytest.approx(25.0) and 20 <= c["low"] <= c["high"] <= 30 and c["n_cases"] == 2
    lines = bdx.table_lines(summary, "ref", "header")
    assert "| ref | 30.0 | 20.0 | 25.0 | 3, never |" in lines
    assert any(line.startswith("| full − ref | +25.0 |") for line in lines)


def test_variants_are_checked_as_plan_dual_checks_them():
    assert bdx.variant("full") == "full" and bdx.variant("2") == "2"
    with pytest.raises(argparse.ArgumentTypeError):
        bdx.variant("0")


def test_link_folders_are_made_whole(tmp_path):
    (tmp_path / "a.nii.gz").write_text("x")
    (tmp_path / "links.partial").mkdir()  # left by an interrupted run
    folder = bdx._link_folder(tmp_path / "links", {"b.nii.gz": tmp_path / "a.nii.gz"})
    assert [p.name for p in folder.iterdir()] == ["b.nii.gz"] and (folder / "b.nii.gz").read_text() == "x"
    assert not (tmp_path / "links.partial").exists()
