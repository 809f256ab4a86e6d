"""The demo's report: the paper's tables, a bar chart and image panels of test cases.

Reads what the evaluation steps wrote (``evaluation/<model>/<post-processing>/evaluation_summary.json``
and ``evaluation_per_case.csv``) and writes into the report folder:

* ``report.md``: teachers (the shape of the paper's Tables 2-3) and students (Tables 4-5), each metric
  as mean ± std over the test cases in %, without and with largest-connected-component (LCC)
  post-processing, the paper's numbers alongside; the two comparisons the method predicts;
* ``results.json``: the same numbers;
* ``bar_chart.png``: DSC and lesion F1 per network, mean ± std, without and with LCC;
* ``panels/<case>.png``: the axial slice of largest tumour area of a test case: CT, box, ground truth,
  baseline, SO and DO predictions (each network's case DSC in its title).
"""
from __future__ import annotations

import json
from pathlib import Path

from nnunet_ts.demo.config import MODELS, POSTPROCESSING
from nnunet_ts.demo.figures import POST_LABELS, bar_chart, write_panels
from nnunet_ts.evaluation.folder import SUMMARY_NAME

METRICS = (("dsc", "DSC"), ("dsc_tp", "DSC-TP"), ("precision", "precision"), ("recall", "recall"),
           ("f1", "lesion F1"))
# The paper's DSC in % (MSD / NSCLC), docs/method.md "Reference numbers".
PAPER_DSC = {
    ("teacher", "box_teacher"): "81.7 / 84.7 (40 strong); 84.9 / 86.7 (all)",
    ("teacher", "ct_only_teacher"): "48.5 / 43.8 (40 strong); 74.8 / 59.6 (all)",
    ("scarce", "baseline"): "26.5 / 28.2", ("scarce", "so_student"): "64.7 / 51.1",
    ("scarce", "do_student"): "71.0 / 53.9",
    ("vast", "baseline"): "67.3 / 51.1", ("vast", "so_student"): "64.3 / 52.9",
    ("vast", "do_student"): "55.4 / 52.3",
}


def load_results(demo) -> dict:
    """``{model key: {post-processing: summary["metrics"]}}`` of every finished evaluation."""
    results = {}
    for model in MODELS:
        for post in POSTPROCESSING:
            path = demo.evaluation(model, post) / SUMMARY_NAME
            if path.is_file():
                summary = json.loads(path.read_text())
                results.setdefault(model.key, {})[post] = {"metrics": summary["metrics"],
                                                           "n_cases": summary["n_cases"]}
    return results


def cell(stat: dict | None) -> str:
    """``mean ± std`` in %, or ``-`` for a metric without cases."""
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def mean_dsc(results: dict, key: str, post: str = "no_postprocessing") -> float | None:
    stat = results.get(key, {}).get(post, {}).get("metrics", {}).get("dsc")
    return None if not stat or stat.get("mean") is None else 100 * stat["mean"]


def tables(demo, results: dict) -> list[str]:
    """The markdown lines of the teacher and the student tables."""
    lines = []
    for role, title in (("teacher", "Teachers on the test set (CT + its box for the box-guided teacher; "
                                    "the paper's Tables 2-3)"),
                        ("student", f"Students on the test set, CT only (the paper's Table "
                                    f"{5 if demo.config.scenario == 'scarce' else 4}: "
                                    f"{demo.config.scenario} strong data)")):
        lines += [f"### {title}", "",
                  "| network | post-processing | " + " | ".join(f"{name} %" for _, name in METRICS)
                  + " | paper DSC % (MSD / NSCLC) |",
                  "|---|---|" + "---|" * len(METRICS) + "---|"]
        for model in (m for m in MODELS if m.role == role):
            for post, label in POST_LABELS.items():
                metrics = results.get(model.key, {}).get(post, {}).get("metrics", {})
                paper = PAPER_DSC.get((role if role == "teacher" else demo.config.scenario, model.key), "")
                lines.append(f"| {model.label} | {label} | "
                             + " | ".join(cell(metrics.get(m)) for m, _ in METRICS)
                             + f" | {paper if post == 'no_postprocessing' else ''} |")
        lines.append("")
    return lines


def pseudo_label_lines(summary_file: Path) -> list[str]:
    """A one-row table: the weak cases' pseudo-labels (teacher >= 0.5) vs their true masks, if known."""
    if not summary_file.is_file():
        return []
    summary = json.loads(summary_file.read_text())
    metrics = summary["metrics"]
    return [f"### Pseudo-labels: the box-guided teacher on the {summary['n_cases']} weak cases vs their true "
            f"masks (synthetic data only; the students never see these masks)", "",
            "| pseudo-labels | " + " | ".join(f"{name} %" for _, name in METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
            "| teacher probability >= 0.5 | " + " | ".join(cell(metrics.get(m)) for m, _ in METRICS) + " |", ""]


def finds_no_tumour(results: dict, key: str, post: str = "no_postprocessing") -> bool:
    """True when the network finds no lesion of any test case (the F1 criterion; DSC-TP has no case)."""
    stat = results.get(key, {}).get(post, {}).get("metrics", {}).get("dsc_tp")
    return stat is not None and stat.get("mean") is None


def comparisons(results: dict) -> list[str]:
    """The two claims of the method, measured: students vs baseline, box vs CT-only teacher.

    A difference between two networks that both find no tumour (only the tumour-free test cases and
    false positives move their DSC) is flagged: it says nothing about the method.
    """
    labels = {model.key: model.label for model in MODELS}

    def caveat(*keys: str) -> str:
        blind = [labels[k] for k in keys if finds_no_tumour(results, k)]
        if not blind:
            return ""
        if len(blind) == len(keys):
            return (" Neither network finds a single test tumour (no lesion found, DSC-TP undefined): the "
                    "difference comes from the tumour-free cases and false positives and says nothing about "
                    "the method.")
        return f" The {blind[0]} finds no test tumour (no lesion found, DSC-TP undefined)."

    lines = []
    base = mean_dsc(results, "baseline")
    students = {k: mean_dsc(results, k) for k in ("so_student", "do_student")}
    students = {k: v for k, v in students.items() if v is not None}
    if base is not None and students:
        best = max(students, key=students.get)
        gain = students[best] - base
        lines.append(f"- Better student ({'SO' if best == 'so_student' else 'DO'}, {students[best]:.1f}) minus "
                     f"baseline ({base:.1f}): **{gain:+.1f} DSC points** (the paper's scarce scenario: "
                     f"+38 to +45 on MSD)." + caveat(best, "baseline"))
    box, ct = mean_dsc(results, "box_teacher"), mean_dsc(results, "ct_only_teacher")
    if box is not None and ct is not None:
        lines.append(f"- Box-guided teacher ({box:.1f}) minus CT-only teacher ({ct:.1f}): "
                     f"**{box - ct:+.1f} DSC points** (the paper, 40 strong cases: +33 / +41)."
                     + caveat("box_teacher", "ct_only_teacher"))
    return lines


def write_report(demo, out: Path) -> Path:
    """Write report.md, results.json, bar_chart.png and panels/ into ``out``; returns report.md."""
    from nnunet_ts.io.manifest import read_manifest

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(demo)
    c = demo.config
    records = read_manifest(demo.cases)
    counts = {s: sum(r.subset == s for r in records) for s in ("strong", "weak", "test")}
    timings_file = demo.out / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    chart = bar_chart(results, out / "bar_chart.png")
    panels = write_panels(demo, out / "panels")
    source = f"synthetic, seed {c.seed}" if demo.given_cases is None else str(demo.cases)
    lines = [f"# Teacher-student demo: scenario `{c.scenario}`, scale `{c.scale}`", "",
             f"Cohort: {counts['strong']} strong (voxel masks), {counts['weak']} weak (boxes only), "
             f"{counts['test']} test cases ({source}). "
             f"Networks: nnU-Net `{c.network}`; teachers {c.teacher_budget.epochs} x "
             f"{c.teacher_budget.iterations} iterations, students {c.student_budget.epochs} x "
             f"{c.student_budget.iterations} (fold `all`, final checkpoint, no test-time mirroring). "
             f"Metrics: mean ± std over the test cases (`nnunet_ts evaluate --help` defines them); "
             f"LCC = largest connected component kept.", ""]
    empty = _test_cases_without_tumour(demo)
    if empty:
        lines += [f"{empty} of the {counts['test']} test cases have no tumour: there an empty prediction scores "
                  f"DSC 1 (and F1 1), so a network that never predicts tumour gets {100 * empty / counts['test']:.0f} "
                  f"% DSC.", ""]
    lines += tables(demo, results)
    lines += pseudo_label_lines(demo.out / "evaluation" / "pseudo_labels" / SUMMARY_NAME)
    lines += ["### What the method predicts", "", *comparisons(results), ""]
    if chart is not None:
        lines += ["### DSC and lesion F1", "", f"![bar chart]({chart.relative_to(out)})", ""]
    if panels:
        lines += ["### Test cases (axial slice of largest tumour area)", "",
                  "Columns: CT, box (segbox of the test case, the teacher's extra input), ground truth, "
                  "baseline, SO student, DO student; the case DSC of each network in its title.", ""]
        lines += [f"![{p.stem}]({p.relative_to(out)})" for p in panels] + [""]
    if timings:
        lines += ["### Wall time", "", "| step | seconds |", "|---|---|"]
        steps = sorted(timings.items(), key=lambda kv: kv[0].startswith("total"))  # the total last
        lines += [f"| {k} | {v:.0f} |" for k, v in steps if v > 0]
        lines.append("")
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(
        {"scenario": c.scenario, "scale": c.scale, "cohort": counts, "results": results}, indent=2))
    return report


def _test_cases_without_tumour(demo) -> int:
    from nnunet_ts.io.images import read_image

    labels = demo.test_labels()
    return sum(1 for p in sorted(labels.glob("*.nii.gz")) if not read_image(p)[0].any()) if labels.is_dir() else 0
