"""Using a trained model: CTs (NIfTI, DICOM, folders) in, tumour masks in their own geometry out.

``predict`` (one CT through nnU-Net's predictor), ``postprocess`` (threshold, lung filter, closing),
``cases`` (what INPUT holds, output names, resume), ``batch`` (a run over cases with its outputs and
summary), ``box_prompt`` (a reader's boxes as a teacher's segbox), ``model_package`` (model zips and
their record), ``restriction_folder`` (box restriction of an ``nnUNetv2_predict`` folder).
"""
