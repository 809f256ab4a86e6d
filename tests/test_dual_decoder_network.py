"""The dual-output network: shapes, where gradients flow, every parameter used in training, and
eval mode that is the plain U-Net's segmentation path."""
import pytest
import torch

from nnunet_ts.dual_decoder.network import DualDecoderUNet
from tests.factories.networks import plain_unet, residual_unet


@pytest.mark.parametrize("make", [plain_unet, residual_unet])
@pytest.mark.parametrize("deep_supervision", [True, False])
def test_output_shapes(make, deep_supervision):
    network = DualDecoderUNet(make())
    network.decoder.deep_supervision = deep_supervision  # as nnU-Net's set_deep_supervision_enabled
    x = torch.randn(2, 1, 16, 32, 32)
    segmentation, segbox = network(x)
    if deep_supervision:
        shapes = [(2, 16, 32, 32), (2, 8, 16, 16), (2, 4, 8, 8)]
        assert [tuple(t.shape) for t in segmentation] == [(2, 2, *s[1:]) for s in shapes]
        assert [tuple(t.shape) for t in segbox] == [(2, 1, *s[1:]) for s in shapes]
    else:
        assert segmentation.shape == (2, 2, 16, 32, 32) and segbox.shape == (2, 1, 16, 32, 32)


def _grads(module):
    return [p.grad for p in module.parameters()]


def _own_decoder_parameters(decoder):
    """The decoder's parameters without the encoder it holds a reference to."""
    return [p for name, p in decoder.named_parameters() if not name.startswith("encoder.")]


@pytest.mark.parametrize("loss_on", ["segmentation", "segbox"])
def test_gradients_reach_each_decoder_only_from_its_loss(loss_on):
    torch.manual_seed(0)
    network = DualDecoderUNet(plain_unet())
    segmentation, segbox = network(torch.randn(2, 1, 16, 32, 32))
    sum(t.square().mean() for t in (segmentation if loss_on == "segmentation" else segbox)).backward()
    seg_grads = [p.grad for p in _own_decoder_parameters(network.decoder)]
    box_grads = [p.grad for p in _own_decoder_parameters(network.box_decoder)]
    encoder_grads = _grads(network.encoder)
    assert all(g is not None and g.abs().sum() > 0 for g in encoder_grads[:1])
    assert sum(g.abs().sum() for g in encoder_grads if g is not None) > 0
    if loss_on == "segmentation":
        assert all(g is None for g in box_grads) and any(g is not None for g in seg_grads)
    else:
        assert all(g is None for g in seg_grads) and any(g is not None for g in box_grads)


def test_every_parameter_takes_part_in_a_training_forward():
    network = DualDecoderUNet(plain_unet(nonlin_first=True))
    segmentation, segbox = network(torch.randn(1, 1, 16, 32, 32))
    (sum(t.mean() for t in segmentation) + sum(t.mean() for t in segbox)).backward()
    unused = [name for name, p in network.named_parameters() if p.grad is None]
    assert unused == []


def test_eval_mode_is_the_plain_unet_segmentation():
    torch.manual_seed(0)
    unet = plain_unet(deep_supervision=False)
    network = DualDecoderUNet(unet).eval()
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        expected = unet.eval()(x)
        out = network(x)
    assert torch.equal(out, expected)
    # the box decoder is a full decoder: same stages as the segmentation decoder, its own weights
    assert len(network.box_decoder.stages) == len(network.decoder.stages)
    assert network.box_decoder.stages[0].convs[0].conv.weight.data_ptr() != \
        network.decoder.stages[0].convs[0].conv.weight.data_ptr()
    # a state dict round trip (nnU-Net's checkpoints) restores both decoders
    copy = DualDecoderUNet(plain_unet(deep_supervision=False))
    copy.load_state_dict(network.state_dict())
    with torch.no_grad():
        assert torch.equal(copy.eval()(x), out)


def _size(module):
    return sum(p.numel() for p in module.parameters())


def test_a_lighter_box_decoder_has_fewer_convolutions_and_the_same_outputs():
    full, light = DualDecoderUNet(plain_unet()), DualDecoderUNet(plain_unet(), box_convs_per_stage=1)
    assert [len(s.convs) for s in light.box_decoder.stages] == [1, 1, 1]
    assert [len(s.convs) for s in light.decoder.stages] == [2, 2, 2]
    assert _size(light.box_decoder) < _size(full.box_decoder)
    x = torch.randn(1, 1, 16, 32, 32)
    assert [t.shape for t in light(x)[1]] == [t.shape for t in full(x)[1]]
    with pytest.raises(ValueError, match="box_convs_per_stage must be >= 1"):
        DualDecoderUNet(plain_unet(), box_convs_per_stage=0)


def test_a_checkpoint_with_another_box_decoder_size_gets_one_clear_error():
    full, light = DualDecoderUNet(plain_unet()), DualDecoderUNet(plain_unet(), box_convs_per_stage=1)
    with pytest.raises(RuntimeError, match=r"checkpoint's segbox decoder has 2 convolution\(s\) per stage, the "
                                           r"configuration builds 1; .*--box-decoder-convs full --overwrite"):
        light.load_state_dict(full.state_dict())
    with pytest.raises(RuntimeError, match="has 1 convolution.*builds 2; .*--box-decoder-convs 1 --overwrite"):
        full.load_state_dict({f"module.{k}": v for k, v in light.state_dict().items()})  # DDP-prefixed keys too
    other = DualDecoderUNet(plain_unet())
    other.load_state_dict(full.state_dict())  # same size: loads
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), full.state_dict().values()))
    light.load_state_dict(full.state_dict(), strict=False)  # non-strict: torch's own rules


def test_rejects_a_network_without_unet_decoder():
    with pytest.raises(ValueError, match="not a U-Net"):
        DualDecoderUNet(torch.nn.Conv3d(1, 2, 3))
