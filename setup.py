"""nnunet_ts: an nnU-Net v2 plugin for teacher-student lung-tumour segmentation.

The top-level folders ``trainers/``, ``planners/`` and ``dataset_conversion/`` install as
``nnunet_ts.trainers``, ``nnunet_ts.planners`` and ``nnunet_ts.dataset_conversion``.
"""
from setuptools import find_packages, setup

setup(
    name="nnunet_ts",
    version="0.1.0",
    description="Teacher-student lung-tumour segmentation from mixed supervision on nnU-Net v2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=["nnunet_ts", "nnunet_ts.*"]),
        "nnunet_ts.trainers", "nnunet_ts.planners", "nnunet_ts.dataset_conversion",
    ],
    package_dir={
        "nnunet_ts.trainers": "trainers",
        "nnunet_ts.planners": "planners",
        "nnunet_ts.dataset_conversion": "dataset_conversion",
    },
    install_requires=[
        # The range our tests run against: trainer hooks, plans keys and nnUNet_extTrainer (2.8.0+).
        "nnunetv2>=2.8.1,<2.9",
        "connected-components-3d>=3.12",
        "SimpleITK>=2.2",
        "numpy>=1.24",
        "scipy>=1.10",
        "tqdm>=4.60",
        "isal>=1.6",  # ISA-L inflate: the whole-file check of compressed images at twice zlib's speed
        "pydicom>=3.0",
        "scikit-image>=0.21",
        "matplotlib>=3.6",  # the demo report's bar chart and image panels, prediction previews
        "highdicom>=0.28,<0.29",  # DICOM SEG output; the range our tests run against (with pydicom 3)
    ],
    # lungmask (R231 lung masks for lung cropping) reuses nnU-Net's torch; without it, or without
    # its weights, lung cropping falls back to a classical lung mask and says so.
    extras_require={"lungmask": ["lungmask>=0.2.20"],
                    # pytest 9 with pytest-xdist 3.8 ignores xdist_group marks; make test relies on them
                    "test": ["pytest>=8,<9", "pytest-xdist>=3.5", "ruff==0.17.6", "lungmask>=0.2.20"]},
    entry_points={"console_scripts": ["nnunet_ts=nnunet_ts.cli.main:entry"]},
)
