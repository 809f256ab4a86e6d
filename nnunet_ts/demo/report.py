"""The demo's report: the paper's tables on the test set, the comparisons with their CIs, the validation set.

Reads what the evaluation steps wrote (``evaluation/<model>/seed<k>/<post-processing>/evaluation_per_case.csv``)
and ``sets.json``, computes with :mod:`nnunet_ts.demo.results` and writes into the report folder:

* ``report.md``: how the comparison is set up (one plan, input, seeds, sets); on the **test set**: teachers
  (the shape of the paper's Tables 2-3) and students (Tables 4-5), DSC on the tumour-bearing cases,
  false-positive lesions per tumour-free case apart, without and with largest-connected-component (LCC)
  post-processing; per-seed rows; each student against the baseline with a paired bootstrap 95 % CI; on
  the **validation set**: the same rows, for design choices;
* ``results.json``: the same numbers;
* ``bar_chart.png``: test-set DSC and lesion F1 per network;
* ``panels/<case>.png``: test cases (axial slice of largest tumour area).
"""
from __future__ import annotations

import json
from pathlib import Path

from nnunet_ts.demo.config import COMPARED, MODEL, MODELS, POSTPROCESSING
from nnunet_ts.demo.figures import POST_LABELS, bar_chart, write_panels
from nnunet_ts.demo.results import (
    NO_POST,
    comparisons,
    finds_no_tumour,
    per_seed_rows,
    read_per_case,
    set_table,
)
from nnunet_ts.demo.sets import SETS, read_sets
from nnunet_ts.evaluation.folder import PER_CASE_NAME
from nnunet_ts.evaluation.statistics import N_BOOT

METRICS = (("dsc", "DSC"), ("dsc_tp", "DSC-TP"), ("precision", "precision"), ("recall", "recall"),
           ("f1", "lesion F1"))
# The paper's DSC in % (MSD / NSCLC), docs/method.md "Reference numbers". The paper's CT-only teacher is
# point-guided (a crop centred on the box): not the demo's unguided CT-only teacher, so it has no entry.
PAPER_DSC = {
    ("teacher", "box_teacher"): "81.7 / 84.7 (40 strong); 84.9 / 86.7 (all)",
    ("scarce", "baseline"): "26.5 / 28.2", ("scarce", "so_student"): "64.7 / 51.1",
    ("scarce", "do_student"): "71.0 / 53.9",
    ("vast", "baseline"): "67.3 / 51.1", ("vast", "so_student"): "64.3 / 52.9",
    ("vast", "do_student"): "55.4 / 52.3",
}
PAPER_GAINS = {("so_student", "baseline"): {"scarce": "+38.2 (MSD)", "vast": "-3.0 (MSD)"},
               ("do_student", "baseline"): {"scarce": "+44.5 (MSD)", "vast": "-11.9 (MSD)"}}


def load_per_case(demo) -> dict:
    """``{model key: {post-processing: {seed: {case: row}}}}`` of every finished evaluation."""
    per_case = {}
    for run in demo.runs():
        for post in POSTPROCESSING:
            path = demo.evaluation(run, post) / PER_CASE_NAME
            if path.is_file():
                per_case.setdefault(run.model.key, {}).setdefault(post, {})[run.seed] = read_per_case(path)
    return per_case


def compute_results(per_case: dict, sets: dict[str, list[str]]) -> dict:
    """Everything the report shows, per set: ``{set: {"table", "per_seed", "comparisons"}}``."""
    out = {}
    for name in SETS:
        cases = sets.get(name) or []
        if not cases or not per_case:
            continue
        out[name] = {"table": set_table(per_case, cases),
                     "per_seed": per_seed_rows(per_case, cases, COMPARED),
                     "comparisons": comparisons(per_case, cases)}
    return out


def cell(stat: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` (x ``scale``), or ``-`` for a metric without cases."""
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"


def table_lines(table: dict, role: str, scenario: str, paper: bool) -> list[str]:
    """Markdown rows of one role's networks (teachers or students) for one set."""
    lines = ["| network | post-processing | " + " | ".join(f"{name} %" for _, name in METRICS)
             + " | FP lesions per tumour-free case |" + (" paper DSC % (MSD / NSCLC) |" if paper else ""),
             "|---|---|" + "---|" * (len(METRICS) + 1) + ("---|" if paper else "")]
    for model in (m for m in MODELS if m.role == role):
        for post, label in POST_LABELS.items():
            row = table["rows"].get(model.key, {}).get(post)
            if row is None:
                continue
            reference = PAPER_DSC.get((role if role == "teacher" else scenario, model.key), "")
            seeds = f" ({row['seeds']} seeds)" if row["seeds"] > 1 else ""
            lines.append(f"| {model.label}{seeds} | {label} | "
                         + " | ".join(cell(row.get(m)) for m, _ in METRICS)
                         + f" | {cell(row['fp_per_tumour_free_case'], 1.0, 2)} |"
                         + (f" {reference if post == NO_POST else ''} |" if paper else ""))
    return lines


def per_seed_lines(per_seed: dict) -> list[str]:
    if not per_seed:
        return []
    lines = ["| network | seed | DSC % | lesion F1 % | FP lesions per tumour-free case |", "|---|---|---|---|---|"]
    for key, seeds in per_seed.items():
        for seed, row in seeds.items():
            def pct(v):
                return "-" if v is None else f"{100 * v:.1f}"
            fp = "-" if row["fp_per_tumour_free_case"] is None else f"{row['fp_per_tumour_free_case']:.2f}"
            lines.append(f"| {MODEL[key].label} | {seed} | {pct(row['dsc'])} | {pct(row['f1'])} | {fp} |")
    return lines


def comparison_lines(found: list[dict], table: dict, scenario: str) -> list[str]:
    """One line per comparison: the mean paired DSC difference and its 95 % CI, with caveats."""
    lines = []
    for c in found:
        a, b = MODEL[c["network"]], MODEL[c["reference"]]
        blind = [m.label for m in (a, b)
                 if finds_no_tumour(table["rows"].get(m.key, {}).get(NO_POST, {}))]
        caveat = ""
        if len(blind) == 2:
            caveat = (" Neither network finds a single tumour here (DSC-TP undefined): the difference says nothing "
                      "about the method.")
        elif blind:
            caveat = f" The {blind[0]} finds no tumour here (DSC-TP undefined)."
        paper = PAPER_GAINS.get((c["network"], c["reference"]), {}).get(scenario)
        # judged on the printed interval: [+0.0, +0.0] is no difference, however small its bounds' sign
        low, high = round(c["low"], 1) + 0.0, round(c["high"], 1) + 0.0  # + 0.0: -0.0 printed as +0.0
        verdict = "the CI excludes 0" if low > 0 or high < 0 else "the CI includes 0: no difference shown"
        lines.append(f"- {a.label} ({c['network_dsc']:.1f}) minus {b.label} ({c['reference_dsc']:.1f}): "
                     f"**{c['mean']:+.1f} DSC points**, 95 % CI [{low:+.1f}, {high:+.1f}] over "
                     f"{c['n_cases']} tumour-bearing case{'s' if c['n_cases'] != 1 else ''}; {verdict}."
                     + (f" Paper: {paper}." if paper else "") + caveat)
    return lines


def pseudo_label_lines(summary_file: Path, lung_crops: bool = False) -> list[str]:
    """A one-row table: the weak cases' pseudo-labels (teacher >= 0.5) vs their true masks, if known.

    With ``lung_crops`` the pseudo-labels, and so the scored inputs, are one per lung crop, not per case."""
    if not summary_file.is_file():
        return []
    summary = json.loads(summary_file.read_text())
    metrics = summary["metrics"]
    inputs = "lung crops of the weak cases" if lung_crops else "weak cases"
    return [f"### Pseudo-labels: the box-guided teacher on the {summary['n_cases']} {inputs} vs their true "
            f"masks (synthetic data only; the students never see these masks)", "",
            "| pseudo-labels | " + " | ".join(f"{name} %" for _, name in METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
            "| teacher probability >= 0.5 | " + " | ".join(cell(metrics.get(m)) for m, _ in METRICS) + " |", ""]


def setup_lines(demo, counts: dict, results: dict) -> list[str]:
    """How the comparison is set up: cohort, sets, input, plan, seeds, budgets."""
    c = demo.config
    source = f"synthetic, seed {c.seed}" if demo.given_cases is None else str(demo.cases)
    lines = [f"Cohort: {counts['strong']} strong (voxel masks), {counts['weak']} weak (boxes only), "
             f"{counts['test']} held-out cases ({source})."]
    for name, what in (("test", "final tables only"), ("validation", "for design choices")):
        if name in results:
            t = results[name]["table"]
            lines.append(f"- **{name.capitalize()} set** ({what}): {t['cases']} case(s), {t['tumour_bearing']} with "
                         f"tumour, {t['tumour_free']} tumour-free (split by patient, `sets.json`).")
    cropped = ("one crop per lung (how the lungs were found: `cases_lung_crops/lung_crops.json`), predictions "
               "pasted back and scored on the whole CT")
    lines.append(f"- **Input**: {cropped if c.lung_crops else 'whole scans'}; the same for every network. "
                 f"The box-guided teacher also gets the box channel; the paper's "
                 f"teacher sees a crop centred on the box.")
    plan = plan_summary(demo)
    lines.append("- **One plan**: baseline and students train with the baseline's plans (planned on the strong "
                 "cases and their true masks, moved to the students' dataset); the two teachers share a plan but "
                 "for the segbox channel" + (f": {plan}" if plan else "") + ".")
    lines.append(f"- **Training**: nnU-Net `{c.network}`; teachers {c.teacher_budget.epochs} x "
                 f"{c.teacher_budget.iterations} iterations (training seed 0), baseline and students "
                 f"{c.student_budget.epochs} x {c.student_budget.iterations}, {c.train_seeds} training seed(s) "
                 f"each (fold `all`, final checkpoint, no test-time mirroring).")
    lines.append("- **Metrics**: per case, averaged over a network's seeds, then over the set's *tumour-bearing* "
                 "cases (mean ± std over cases, %); tumour-free cases count as false-positive lesions per "
                 "tumour-free case. Lesion precision, recall and F1 are undefined (left out, not 1.0) where "
                 "nothing is predicted or there is nothing to find. LCC = largest connected component kept. "
                 f"CIs: paired bootstrap over cases ({N_BOOT} resamples, RNG seed 0) of the per-case DSC difference.")
    return lines


def plan_summary(demo) -> str:
    """Spacing, patch, batch and CT normalisation of the baseline's training configuration, in words."""
    from nnunet_ts.demo.config import STUDENT_CONFIG, STUDENT_ID
    from nnunet_ts.nnunet.stock_commands import dataset_folder
    from nnunet_ts.planners.plans_file import resolved_configuration

    try:
        plans = json.loads((dataset_folder(demo.preprocessed, STUDENT_ID) / "nnUNetPlans.json").read_text())
        conf = resolved_configuration(plans, f"{STUDENT_CONFIG}_seed0")
    except Exception:  # noqa: BLE001 - the report is written even when planning has not run
        return ""
    spacing = "x".join(f"{s:.2f}" for s in conf.get("spacing", []))
    patch = "x".join(str(p) for p in conf.get("patch_size", []))
    return (f"spacing {spacing} mm, patch {patch} voxels, batch {conf.get('batch_size')}, "
            f"{', '.join(conf.get('normalization_schemes', []))}")


def write_report(demo, out: Path) -> Path:
    """Write report.md, results.json, bar_chart.png and panels/ into ``out``; returns report.md."""
    from nnunet_ts.io.manifest import read_manifest

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_case = load_per_case(demo)
    sets = read_sets(demo.sets_file())
    results = compute_results(per_case, sets)
    c = demo.config
    records = read_manifest(demo.cases)
    counts = {s: sum(r.subset == s for r in records) for s in ("strong", "weak", "test")}
    timings_file = demo.out / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    test = results.get("test")
    chart = bar_chart(test["table"]["rows"], out / "bar_chart.png") if test else None
    panels = write_panels(demo, out / "panels", sets.get("test", []))
    lines = [f"# Teacher-student demo: scenario `{c.scenario}`, scale `{c.scale}`", "",
             "## How the comparison is set up", "", *setup_lines(demo, counts, results), ""]
    table_no = 5 if c.scenario == "scarce" else 4
    if test:
        t = test["table"]
        lines += ["## Test set (final tables)", "",
                  f"### Teachers: DSC on the {t['tumour_bearing']} tumour-bearing test cases (CT + its box for the "
                  f"box-guided teacher; the paper's Tables 2-3)", "",
                  *table_lines(t, "teacher", c.scenario, paper=True), "",
                  f"### Students: DSC on the {t['tumour_bearing']} tumour-bearing test cases, CT only, mean over "
                  f"{c.train_seeds} training seed(s) per case (the paper's Table {table_no}: {c.scenario} strong data)",
                  "", *table_lines(t, "student", c.scenario, paper=True), ""]
        if c.train_seeds > 1:
            lines += ["### Per training seed (test set, no post-processing)", "", *per_seed_lines(test["per_seed"]), ""]
        lines += ["### What the method predicts (test set, no post-processing)", "",
                  "Each student against the baseline on its own, and the box-guided against the CT-only teacher: "
                  "the mean of the per-case DSC differences, with its paired bootstrap 95 % CI.", "",
                  *comparison_lines(test["comparisons"], t, c.scenario), ""]
    lines += pseudo_label_lines(demo.out / "evaluation" / "pseudo_labels" / "evaluation_summary.json",
                                demo.config.lung_crops)
    if "validation" in results:
        v = results["validation"]
        lines += ["## Validation set (for design choices; not the final result)", "",
                  f"{v['table']['cases']} case(s), {v['table']['tumour_bearing']} with tumour. Choose settings "
                  f"(budgets, Dice smooth, box decoder, post-processing) here, never on the test set.", "",
                  *table_lines(v["table"], "teacher", c.scenario, paper=False), "",
                  *table_lines(v["table"], "student", c.scenario, paper=False), "",
                  *comparison_lines(v["comparisons"], v["table"], c.scenario), ""]
    if chart is not None:
        lines += ["### DSC and lesion F1 (test set, tumour-bearing cases)", "",
                  f"![bar chart]({chart.relative_to(out)})", ""]
    if panels:
        lines += ["### Test cases (axial slice of largest tumour area)", "",
                  "Columns: CT, box (from the ground truth: the box-guided teacher's extra input), ground truth, "
                  "baseline, SO student, DO student (training seed 0); the case DSC of each network in its title.",
                  ""]
        lines += [f"![{p.stem}]({p.relative_to(out)})" for p in panels] + [""]
    if timings:
        lines += ["### Wall time", "", "| step | seconds |", "|---|---|"]
        steps = sorted(timings.items(), key=lambda kv: kv[0].startswith("total"))  # the total last
        lines += [f"| {k} | {v:.0f} |" for k, v in steps if v > 0]
        lines.append("")
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(
        {"scenario": c.scenario, "scale": c.scale, "cohort": counts, "train_seeds": c.train_seeds,
         "lung_crops": c.lung_crops, "sets": {k: len(v) for k, v in sets.items()}, "results": results},
        indent=2, allow_nan=False))
    return report


def headline_lines(report_dir: Path) -> list[str]:
    """The test set's comparisons, from ``results.json``, for the end of a run."""
    path = Path(report_dir) / "results.json"
    if not path.is_file():
        return []
    stored = json.loads(path.read_text())
    test = stored["results"].get("test")
    if not test:
        return []
    return comparison_lines(test["comparisons"], test["table"], stored["scenario"])
