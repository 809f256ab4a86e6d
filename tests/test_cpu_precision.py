"""bf16 on the CPU (``nnunet_ts.nnunet.cpu_precision``): the decision, and the hooks around the forward pass."""
import pytest
import torch
from torch import nn

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet import cpu_precision
from nnunet_ts.nnunet.cpu_precision import ENV_PRECISION, autocast_forward_on_cpu, resolve_cpu_precision


@pytest.mark.parametrize("env, setting, native, expected", [
    (None, None, True, "bf16"),         # the default: bf16 where the CPU has it natively
    (None, None, False, "fp32"),        # float32 elsewhere
    (None, "auto", True, "bf16"),
    (None, "fp32", True, "fp32"),
    (None, "bf16", False, "bf16"),      # forced: runs (emulated) where the CPU has no bf16 instructions
    ("fp32", "bf16", True, "fp32"),     # the environment variable wins over the configuration
    ("bf16", "fp32", False, "bf16"),
    ("auto", "fp32", True, "bf16"),
    ("BF16", None, False, "bf16"),
])
def test_the_precision_is_decided_by_environment_then_configuration_then_cpu(env, setting, native, expected,
                                                                             monkeypatch):
    monkeypatch.setattr(cpu_precision, "cpu_has_native_bf16", lambda: native)
    if env is None:
        monkeypatch.delenv(ENV_PRECISION, raising=False)
    else:
        monkeypatch.setenv(ENV_PRECISION, env)
    precision, why = resolve_cpu_precision(setting)
    assert precision == expected and why.startswith(expected)


def test_an_unknown_precision_names_where_it_came_from(monkeypatch):
    monkeypatch.setenv(ENV_PRECISION, "fp16")
    with pytest.raises(InputError, match=f"{ENV_PRECISION}=fp16.*unset {ENV_PRECISION}"):
        resolve_cpu_precision()
    monkeypatch.delenv(ENV_PRECISION)
    with pytest.raises(InputError, match="configuration.*budget-config"):
        resolve_cpu_precision("half")


class _TwoOutputs(nn.Module):
    """A small 3D network returning a list (as deep supervision) and failing on request."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.norm = nn.InstanceNorm3d(4, affine=True)
        self.head = nn.Conv3d(4, 2, 1)

    def forward(self, x, fail: bool = False):
        if fail:
            raise RuntimeError("fails inside the forward pass")
        y = self.head(torch.relu(self.norm(self.conv(x))))
        return [y, y[:, :, ::2, ::2, ::2]]


def _pair():
    torch.manual_seed(0)
    fp32 = _TwoOutputs()
    bf16 = _TwoOutputs()
    bf16.load_state_dict(fp32.state_dict())
    return fp32, autocast_forward_on_cpu(bf16, "bf16")


def test_bf16_forward_runs_in_bf16_and_returns_float32_outputs_in_the_standard_layout():
    fp32, bf16 = _pair()
    seen = []
    bf16.conv.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    x = torch.randn(2, 1, 8, 12, 12)
    reference, outputs = fp32(x), bf16(x)
    assert seen == [torch.bfloat16]                      # the convolution ran in bf16
    assert all(o.dtype == torch.float32 and o.is_contiguous() for o in outputs)
    assert not torch.is_autocast_enabled("cpu")          # autocast covers the forward pass only
    for a, b in zip(reference, outputs):                 # bf16 keeps 8 bits of mantissa: ~1 % relative
        assert torch.allclose(a, b, atol=0.05, rtol=0.05)
        assert not torch.equal(a, b)
    assert bf16.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_bf16_training_keeps_float32_weights_and_gradients_close_to_fp32():
    fp32, bf16 = _pair()
    x = torch.randn(2, 1, 8, 12, 12)
    for network in (fp32, bf16):
        sum((o ** 2).mean() for o in network(x)).backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in bf16.parameters())
    # the whole gradient (the convolution's bias has ~0 gradient before instance norm: compare the vector)
    a, b = (torch.cat([p.grad.ravel() for p in n.parameters()]) for n in (fp32, bf16))
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999
    assert abs(b.norm() / a.norm() - 1) < 0.02


def test_a_failing_forward_leaves_no_autocast_behind_and_hooks_are_added_once():
    _, bf16 = _pair()
    with pytest.raises(RuntimeError, match="fails inside"):
        bf16(torch.randn(1, 1, 4, 4, 4), fail=True)
    assert not torch.is_autocast_enabled("cpu")
    hooks = (len(bf16._forward_pre_hooks), len(bf16._forward_hooks))
    assert autocast_forward_on_cpu(bf16, "bf16") is bf16
    assert (len(bf16._forward_pre_hooks), len(bf16._forward_hooks)) == hooks
    assert bf16(torch.randn(1, 1, 4, 4, 4))[0].dtype == torch.float32


def test_fp32_leaves_the_network_as_it_was():
    fp32, _ = _pair()
    same = autocast_forward_on_cpu(_TwoOutputs(), "fp32")
    same.load_state_dict(fp32.state_dict())
    assert not same._forward_pre_hooks and not same._forward_hooks
    x = torch.randn(1, 1, 6, 6, 6)
    assert all(torch.equal(a, b) for a, b in zip(fp32(x), same(x)))


def test_passes_without_gradients_run_the_network_in_bf16_on_cached_weights_and_restore_float32():
    fp32, bf16 = _pair()
    seen = []
    bf16.norm.register_forward_hook(lambda m, a, out: seen.append((a[0].dtype, m.weight.dtype)))
    x = torch.randn(1, 1, 8, 12, 12)
    with torch.inference_mode():
        reference, outputs = fp32(x), bf16(x)
    assert seen == [(torch.bfloat16, torch.bfloat16)]    # the normalisation too: no mixed-type path
    for a, b in zip(reference, outputs):
        assert b.dtype == torch.float32 and b.is_contiguous()
        assert torch.allclose(a, b, atol=0.05, rtol=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert bf16.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)

    # a changed weight (an optimizer step) is cast again; a failing pass leaves the float32 weights in place
    with torch.no_grad():
        fp32.head.weight.mul_(3)
        bf16.head.weight.mul_(3)
        again = bf16(x)
        with pytest.raises(RuntimeError, match="fails inside"):
            bf16(x, fail=True)
    assert torch.allclose(fp32(x)[0], again[0], atol=0.15, rtol=0.05)
    assert not torch.allclose(outputs[0], again[0], atol=0.15)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    sum((o ** 2).mean() for o in bf16(x)).backward()       # training still gets float32 gradients
    assert all(p.grad.dtype == torch.float32 for p in bf16.parameters())
