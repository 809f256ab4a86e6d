"""``nnunet_ts dataset``: write nnU-Net raw datasets (teacher / student / weak) from a case manifest."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id, positive_int


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nnunet_ts.datasets.raw_writer import DatasetSpec, write_dataset
    from nnunet_ts.datasets.splits_install import install_splits
    from nnunet_ts.io.manifest import read_manifest
    from nnunet_ts.nnunet.paths import env_root

    records = read_manifest(args.cases)
    raw = env_root("nnUNet_raw", args.raw)
    spec = DatasetSpec(kind=args.kind, dataset_id=args.dataset_id, name=args.name,
                       segbox_mode=args.segbox, num_folds=args.folds, seed=args.seed,
                       allow_empty_boxes=args.allow_empty_boxes)
    with tqdm(desc=f"{spec.folder_name}", unit="case") as bar:
        folder = write_dataset(records, spec, raw, overwrite=args.overwrite, workers=args.workers,
                               progress=lambda done: bar.update(done - bar.n))
    print(f"wrote {folder}")
    preprocessed = env_root("nnUNet_preprocessed", args.preprocessed, required=False)
    if preprocessed is not None and (folder / "splits_final.json").is_file():
        print(f"wrote {install_splits(folder, preprocessed, overwrite=True)}")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Write an nnU-Net raw dataset from a case manifest (cases.csv, as written by "
                    "`nnunet_ts synth`).\n\n"
                    "  teacher  CT (_0000) + segbox (_0001, channel 'noNorm') with tumour masks; "
                    "strong cases,\n           segbox made from each mask; test cases go to imagesTs/labelsTs\n"
                    "  student  CT (_0000) with tumour masks; strong cases (+ test cases in imagesTs/labelsTs)\n"
                    "  weak     CT (_0000) + segbox (_0001) from the drawn boxes, no masks; weak cases,\n"
                    "           in imagesTs: the input of the pseudo-label step\n\n"
                    "Every channel and mask must share size, spacing, origin and direction. The "
                    "dataset is written\ncompletely or not at all; after an error or Ctrl-C, rerun the same "
                    "command to resume.\nsplits_final.json groups scans by patient; it is also copied "
                    "to\n$nnUNet_preprocessed/DatasetXXX_NAME/ where nnU-Net reads it.",
        epilog="example:\n  nnunet_ts synth synth_cases --n-strong 8 --n-weak 16 --n-test 4\n"
               "  nnunet_ts dataset teacher --cases synth_cases -d 501 -n LungTeacher")
    p.add_argument("kind", choices=("teacher", "student", "weak"), help="which dataset to write")
    p.add_argument("--cases", required=True, type=Path,
                   help="case manifest (cases.csv) or the folder holding it")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="nnU-Net dataset id (1-999)")
    p.add_argument("-n", "--name", required=True, help="dataset name; folder is DatasetXXX_NAME")
    p.add_argument("--raw", type=Path, default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--preprocessed", type=Path, default=None,
                   help="nnUNet_preprocessed folder for splits_final.json (default: $nnUNet_preprocessed, "
                        "skipped when unset)")
    p.add_argument("--segbox", choices=("per_lesion", "per_slice", "box3d"), default="per_lesion",
                   help="segbox form: a rectangle per lesion per slice (default), one per slice "
                        "(the paper's), or a 3D box per lesion")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (grouped by patient)")
    p.add_argument("--seed", type=int, default=0, help="seed for assigning patients to folds")
    p.add_argument("--allow-empty-boxes", action="store_true",
                   help="accept weak cases whose boxes file holds no rectangle")
    p.add_argument("--workers", type=positive_int, default=1, help="processes converting cases")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset with this id (only once the new one is complete)")
    p.set_defaults(func=run)
