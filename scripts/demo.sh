#!/usr/bin/env bash
# The main job on embedded synthetic data, with the commands a user types. Rerunning it resumes:
# finished steps (their outputs exist) are skipped.
#
#   bash scripts/demo.sh [OUTPUT_DIR]        (default: demo_output)
set -euo pipefail
OUT=$(realpath -m "${1:-demo_output}")
mkdir -p "$OUT"
eval "$(nnunet_ts env --root "$OUT/nnunet")"
# A 2-core CPU: one export worker instead of nnU-Net's default 8 spawned processes.
export nnUNet_def_n_proc=${nnUNet_def_n_proc:-2}

TEACHER=501 STUDENT=502 WEAK=503
RAW="$nnUNet_raw"
step() { printf '\n== %s\n' "$*"; }

step "1/7 synthetic thorax CTs (strong: masks, weak: boxes only, test)"
[ -f "$OUT/cases/cases.csv" ] || nnunet_ts synth "$OUT/cases" --n-strong 16 --n-weak 24 --n-test 8 --seed 0

step "2/7 nnU-Net raw datasets: teacher (CT + segbox), student (CT), weak (CT + segbox, no mask)"
ls -d "$RAW"/Dataset${TEACHER}_* >/dev/null 2>&1 || nnunet_ts dataset teacher --cases "$OUT/cases" -d $TEACHER -n LungTeacher
ls -d "$RAW"/Dataset${STUDENT}_* >/dev/null 2>&1 || nnunet_ts dataset student --cases "$OUT/cases" -d $STUDENT -n LungStudent
# about 10 % of synthetic scans have no tumour; their empty box files correctly say "no tumour"
ls -d "$RAW"/Dataset${WEAK}_* >/dev/null 2>&1 || nnunet_ts dataset weak --cases "$OUT/cases" -d $WEAK -n LungWeak --allow-empty-boxes

step "3/7 plan and preprocess the teacher dataset (segbox channel kept binary)"
PRE=$(ls -d "$nnUNet_preprocessed"/Dataset${TEACHER}_* 2>/dev/null || true)
[ -n "$PRE" ] && [ -f "$PRE/nnUNetPlans.json" ] && [ -d "$PRE/nnUNetPlans_3d_fullres" ] || \
    nnunet_ts plan-teacher -d $TEACHER -np 2 --overwrite

step "4/7 tiny CPU configuration 3d_tiny (inherits 3d_fullres data)"
grep -q '"3d_tiny"' "$nnUNet_preprocessed"/Dataset${TEACHER}_*/nnUNetPlans.json || nnunet_ts tiny-plans -d $TEACHER

step "5/7 short box-guided teacher training, fold 0 (stock nnUNetv2_train with our trainer)"
MODEL=$(echo "$nnUNet_results"/Dataset${TEACHER}_*/BoxTeacherShortBudgetTrainer__nnUNetPlans__3d_tiny)
[ -f "$MODEL/fold_0/checkpoint_final.pth" ] || \
    nnUNet_n_proc_DA=0 nnUNetv2_train $TEACHER 3d_tiny 0 -tr BoxTeacherShortBudgetTrainer -device cpu

step "6/7 predict the held-out test scans (CT + their segbox)"
[ -f "$OUT/teacher_test_predictions/case_count" ] || {
    nnUNetv2_predict -i "$RAW"/Dataset${TEACHER}_*/imagesTs -o "$OUT/teacher_test_predictions" \
        -d $TEACHER -c 3d_tiny -f 0 -tr BoxTeacherShortBudgetTrainer -device cpu -chk checkpoint_final.pth
    ls "$OUT/teacher_test_predictions"/*.nii.gz | wc -l > "$OUT/teacher_test_predictions/case_count"
}

step "7/7 evaluate as in the paper (DSC, DSC-TP, lesion-level F1)"
nnunet_ts evaluate --pred "$OUT/teacher_test_predictions" --gt "$RAW"/Dataset${TEACHER}_*/labelsTs \
    --out "$OUT/teacher_test_evaluation" --overwrite

printf '\nDone. Datasets: %s\nModel: %s\nEvaluation: %s\n' "$RAW" "$MODEL" "$OUT/teacher_test_evaluation"
