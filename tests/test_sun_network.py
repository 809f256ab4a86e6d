"""Sun et al.'s student network: shapes, where gradients flow, every parameter used in training, and
eval mode that is the plain U-Net's segmentation path."""
import copy

import pytest
import torch

from nnunet_ts.dual_decoder.sun_network import SunStudentUNet
from tests.factories.networks import plain_unet, residual_unet


@pytest.mark.parametrize("make", [plain_unet, residual_unet])
@pytest.mark.parametrize("deep_supervision", [True, False])
def test_output_shapes(make, deep_supervision):
    network = SunStudentUNet(make())
    network.decoder.deep_supervision = deep_supervision  # as nnU-Net's set_deep_supervision_enabled
    segmentation, segbox = network(torch.randn(2, 1, 16, 32, 32))
    if deep_supervision:
        shapes = [(16, 32, 32), (8, 16, 16), (4, 8, 8)]
        assert [tuple(t.shape) for t in segmentation] == [(2, 2, *s) for s in shapes]
        assert [tuple(t.shape) for t in segbox] == [(2, 1, *s) for s in shapes]
        # the lower scales are the full-resolution logit, average-pooled
        torch.testing.assert_close(segbox[1], torch.nn.functional.avg_pool3d(segbox[0], 2))
    else:
        assert segmentation.shape == (2, 2, 16, 32, 32) and segbox.shape == (2, 1, 16, 32, 32)


def test_eval_mode_is_the_plain_unet_segmentation():
    torch.manual_seed(0)
    unet = plain_unet()
    plain = copy.deepcopy(unet).eval()
    network = SunStudentUNet(unet).eval()
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        out = network(x)
        expected = plain(x)
    assert isinstance(out, list) and len(out) == len(expected)
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _box_branch(network):
    return [*network.projections.parameters(), *network.box_head.parameters()]


@pytest.mark.parametrize("loss_on", ["segmentation", "segbox"])
def test_the_segmentation_loss_never_reaches_the_localisation_branch(loss_on):
    torch.manual_seed(0)
    network = SunStudentUNet(plain_unet()).train()
    segmentation, segbox = network(torch.randn(2, 1, 16, 32, 32))
    out = segmentation if loss_on == "segmentation" else segbox
    sum(o.square().mean() for o in out).backward()
    branch = [p.grad for p in _box_branch(network)]
    if loss_on == "segmentation":
        assert all(g is None for g in branch)
    else:  # the box loss trains the branch and, shared, the decoder and encoder under it
        assert all(g is not None and g.abs().sum() > 0 for g in branch)
        assert all(p.grad is not None for p in network.decoder.stages.parameters())
        assert all(p.grad is not None for p in network.encoder.parameters())


def test_every_parameter_takes_part_in_a_training_forward():
    network = SunStudentUNet(residual_unet()).train()
    segmentation, segbox = network(torch.randn(1, 1, 16, 32, 32))
    (sum(o.mean() for o in segmentation) + sum(o.mean() for o in segbox)).backward()
    unused = [n for n, p in network.named_parameters() if p.grad is None]
    # nnU-Net builds every scale's 1x1 segmentation layer; with deep supervision each is used
    assert unused == []


def test_rejects_a_network_without_a_unet_decoder():
    with pytest.raises(ValueError, match="PlainConvUNet or ResidualEncoderUNet"):
        SunStudentUNet(torch.nn.Conv3d(1, 2, 3))
