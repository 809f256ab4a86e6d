"""Single CPU patches run their 3D convolutions on oneDNN, with unchanged results and weights."""
import copy

import pytest
import torch
from torch import nn

from nnunet_ts.nnunet.cpu_conv import use_onednn_for_single_patches

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def _unet():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(0)
    return PlainConvUNet(1, 3, (8, 16, 32), nn.Conv3d, 3, (1, 2, 2), 2, 2, n_conv_per_stage_decoder=2,
                         conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                         nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=False)


def _conv_kernels(network, x):
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        network(x)
    return {e.key for e in prof.key_averages()}


def test_a_single_patch_takes_onednn_instead_of_the_native_path():
    native = _unet().eval()
    x = torch.randn(1, 1, 16, 32, 32)  # batch * channels * depth * height < 20480: PyTorch's native path
    assert "aten::slow_conv3d_forward" in _conv_kernels(native, x)
    fast = use_onednn_for_single_patches(copy.deepcopy(native))
    kernels = _conv_kernels(fast, x)
    assert "aten::slow_conv3d_forward" not in kernels and "aten::mkldnn_convolution" in kernels


def test_results_weights_and_gradients_are_unchanged():
    native = _unet()
    fast = use_onednn_for_single_patches(copy.deepcopy(native))
    assert list(fast.state_dict()) == list(native.state_dict())
    assert all(type(m) is not nn.Conv3d for m in fast.modules() if isinstance(m, nn.Conv3d))
    for batch in (1, 2):
        x = torch.randn(batch, 1, 16, 32, 32)
        native.eval(), fast.eval()
        with torch.no_grad():
            torch.testing.assert_close(fast(x), native(x), atol=1e-4, rtol=1e-4)
        native.train(), fast.train()
        native.zero_grad(), fast.zero_grad()
        native(x).square().mean().backward()
        fast(x).square().mean().backward()
        for (name, p), q in zip(native.named_parameters(), fast.parameters()):
            torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3, msg=name)


def test_other_inputs_keep_pytorchs_choice():
    conv = use_onednn_for_single_patches(nn.Conv3d(2, 4, 3, padding="same"))
    x = torch.randn(1, 2, 6, 8, 8)
    torch.testing.assert_close(conv(x), nn.functional.conv3d(x, conv.weight, conv.bias, padding="same"))
    double = conv.to(torch.float64)
    torch.testing.assert_close(double(x.double()),
                               nn.functional.conv3d(x.double(), double.weight, double.bias, padding="same"))


def test_every_trainer_builds_fast_single_patch_convolutions():
    # built networks are checked in test_trainers (every class) and test_box_teacher
    from nnunet_ts.nnunet.trainer_mixins import CPUSpeedMixin
    from nnunet_ts.trainers import (
        baseline_trainers,
        box_teacher_trainers,
        dual_decoder_student_trainers,
        sun_student_trainers,
        teacher_student_trainers,
    )

    for module, name in ((baseline_trainers, "BaselineTrainer"), (baseline_trainers, "CTOnlyTeacherTrainer"),
                         (box_teacher_trainers, "BoxTeacherTrainer"),
                         (teacher_student_trainers, "TeacherStudentTrainer"),
                         (teacher_student_trainers, "TeacherStudentBaldeonCalistoTrainer"),
                         (dual_decoder_student_trainers, "DualDecoderStudentTrainer"),
                         (sun_student_trainers, "SunStudentTrainer")):
        assert CPUSpeedMixin in getattr(module, name).__mro__, name
