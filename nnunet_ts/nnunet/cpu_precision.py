"""bf16 on the CPU: the network's forward pass under ``torch.autocast("cpu", torch.bfloat16)``.

nnU-Net 2.8 autocasts only on CUDA (``nnUNetTrainer.train_step``/``validation_step`` and
``nnUNetPredictor._internal_maybe_mirror_and_predict`` use ``dummy_context()`` elsewhere), so on a CPU
every convolution runs in float32. CPUs with native bf16 instructions (AVX512-BF16, AMX) run oneDNN's
bf16 convolutions several times faster (``scripts/benchmarks/cpu_precision.py``).

:func:`autocast_forward_on_cpu` adds two hooks to the network instead of copying nnU-Net's
``train_step``: a forward pre-hook enters ``torch.autocast("cpu", dtype=torch.bfloat16)`` for CPU
inputs, and a forward hook (``always_call``: also when the forward raises) leaves it and casts the
outputs (tensors, or lists/tuples of them: deep supervision, the dual decoder) back to float32 in
the standard layout (the bf16 path also runs 3D networks channels-last).
Why this is what nnU-Net does on CUDA, moved by one level:

* autocast covers exactly the network's forward, as nnU-Net's ``with autocast(...)`` block covers
  ``self.network(data)``; the loss then runs outside it, on float32 outputs (nnU-Net computes the loss
  inside the block, where autocast keeps losses in float32 anyway);
* the weights, the optimizer state and the gradients stay float32 (autocast casts copies per op); the
  backward pass follows the recorded casts; bf16 has float32's exponent range, so no gradient scaler
  is needed (nnU-Net's ``GradScaler`` exists for CUDA's float16 only);
* parameters and buffers are untouched, so checkpoints are the same in both precisions and load in
  either; the predictor builds the network through the trainer's ``build_network_architecture``, so
  ``nnUNetv2_predict``, ``nnunet_ts predict`` and the pseudo-label step get the hooks as well;
* CUDA inputs pass through untouched (nnU-Net's own float16 autocast applies there).

Forward passes without gradients (prediction tiles, nnU-Net's validation steps: ``torch.no_grad`` or
``torch.inference_mode``) skip autocast: the pre-hook swaps cached bf16 copies in for the float32
parameters (``Parameter.data``; made again whenever a parameter changed) and feeds a bf16 input in the
standard layout, so every layer, the normalisations included, runs in bf16; the forward hook puts the
float32 parameters back, also when the forward raises. Nothing is learned in such a pass, so the float32
weights the optimizer and the checkpoints see are never rounded.

The precision is decided once per process and configuration (:func:`resolve_cpu_precision`): the
environment variable ``NNUNET_TS_PRECISION`` (``auto``, ``bf16``, ``fp32``) wins over the configuration's
``cpu_precision`` setting (``planners.training_settings``); ``auto`` means bf16 where the CPU has native
bf16 instructions, float32 elsewhere, and is the default: seeded trainings of the box teacher and the
CT-only baseline in both precisions reached the same test Dice within their seed-to-seed spread
(``scripts/experiments/precision_parity.py``, ``docs/experiments.md``).
"""
from __future__ import annotations

import functools
import os
import sys

import torch
from torch import nn

from nnunet_ts.errors import InputError
from nnunet_ts.planners.training_settings import CPU_PRECISIONS

ENV_PRECISION = "NNUNET_TS_PRECISION"
PRECISIONS = CPU_PRECISIONS
DEFAULT_PRECISION = "auto"  # TrainingSettings.cpu_precision's default
_HOOKED = "_nnunet_ts_cpu_precision"


def cpu_has_native_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX tiles) and PyTorch's oneDNN uses them."""
    cpu = torch.cpu
    native = any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                 "_is_amx_tile_supported"))
    return bool(native and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_cpu_precision(setting: str | None = None) -> tuple[str, str]:
    """``(precision, why)``: ``"bf16"`` or ``"fp32"`` for CPU forward passes, and a line saying why.

    Args:
        setting: the configuration's ``cpu_precision`` (``auto``, ``bf16``, ``fp32``; None = ``auto``).
            ``NNUNET_TS_PRECISION`` overrides it when set.

    Raises:
        InputError: an unknown value (naming where it came from).
    """
    env = os.environ.get(ENV_PRECISION, "").strip().lower()
    setting = setting or DEFAULT_PRECISION
    requested, source = (env, f"{ENV_PRECISION}={env}") if env else (
        setting, "default" if setting == DEFAULT_PRECISION else "configuration")
    if requested not in PRECISIONS:
        raise InputError(f"CPU precision {requested!r} from {source} must be one of {', '.join(PRECISIONS)}"
                         + (f"; fix or unset {ENV_PRECISION}" if env else
                            "; rewrite the configuration with `nnunet_ts budget-config ... --overwrite`"))
    if requested != "auto":
        return requested, f"{requested} ({source})"
    if cpu_has_native_bf16():
        return "bf16", f"bf16 ({source} auto: the CPU has native bf16 instructions)"
    return "fp32", f"fp32 ({source} auto: the CPU has no native bf16 instructions)"


@functools.cache
def _announce(why: str) -> None:
    print(f"nnunet_ts: CPU forward passes in {why}", file=sys.stderr)


class _Bf16Weights:
    """bf16 copies of a network's parameters for forward passes without gradients, made again when a
    parameter changed (an optimizer step, a loaded checkpoint: each bumps the tensor's version counter)."""

    def __init__(self) -> None:
        self.key: tuple = ()
        self.copies: list[torch.Tensor] = []

    def for_(self, params: list[nn.Parameter]) -> list[torch.Tensor]:
        key = tuple((id(p), p._version, p.data_ptr()) for p in params)
        if key != self.key:
            with torch.inference_mode(False), torch.no_grad():  # plain tensors, usable after inference mode
                self.copies = [p.detach().to(torch.bfloat16, memory_format=torch.contiguous_format)
                               for p in params]
            self.key = key
        return self.copies


def _enter_bf16(module: nn.Module, args):
    contexts = module.__dict__.setdefault("_nnunet_ts_autocast", [])
    if not (args and isinstance(args[0], torch.Tensor) and args[0].device.type == "cpu"
            and args[0].is_floating_point()):
        contexts.append(None)
        return None
    if not torch.is_grad_enabled():
        # no gradients (prediction tiles, nnU-Net's validation steps): the network itself in bf16, on
        # cached bf16 copies of its float32 weights swapped in for this pass. Under autocast every pass
        # would cast each weight again and run the normalisations on bf16 inputs with float32 affine
        # parameters, a slow mixed-type path (scripts/benchmarks/cpu_precision.py, prediction tile)
        params = [p for p in module.parameters() if p.is_floating_point()]
        weights = module.__dict__.setdefault("_nnunet_ts_bf16_weights", _Bf16Weights())
        originals = [p.data for p in params]
        for p, copy in zip(params, weights.for_(params)):
            p.data = copy
        contexts.append(("weights", params, originals))
        return (args[0].to(torch.bfloat16, memory_format=torch.contiguous_format), *args[1:])
    context = torch.autocast("cpu", dtype=torch.bfloat16)
    context.__enter__()
    contexts.append(("autocast", context))
    if args[0].dim() == 5:  # the layout of the weights (autocast_forward_on_cpu): no reorder per convolution
        return (args[0].contiguous(memory_format=torch.channels_last_3d), *args[1:])
    return None


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.to(torch.float32, memory_format=torch.contiguous_format) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def _leave_bf16(module: nn.Module, args, output):
    contexts = module.__dict__.get("_nnunet_ts_autocast")
    context = contexts.pop() if contexts else None
    if context is None:
        return None
    if context[0] == "weights":  # the float32 weights back in place, also when the forward raised
        for p, original in zip(context[1], context[2]):
            p.data = original
    else:
        context[1].__exit__(None, None, None)
    return _to_float32(output)


def autocast_forward_on_cpu(network: nn.Module, precision: str) -> nn.Module:
    """Makes ``network``'s CPU forward passes run under bf16 autocast when ``precision`` is ``"bf16"``.

    3D networks also get the channels-last layout (``torch.channels_last_3d``: weights converted here,
    inputs in the pre-hook, outputs returned contiguous), which oneDNN's bf16 convolutions run without
    reordering (``scripts/benchmarks/cpu_precision.py`` measures both). ``"fp32"`` leaves the network as
    it is, layout included. Idempotent (a network is hooked once). Returns the network.
    """
    if precision == "bf16" and not getattr(network, _HOOKED, False):
        if any(isinstance(m, nn.Conv3d) for m in network.modules()):
            network.to(memory_format=torch.channels_last_3d)
        network.register_forward_pre_hook(_enter_bf16)
        network.register_forward_hook(_leave_bf16, always_call=True)
        setattr(network, _HOOKED, True)
    return network


def with_cpu_precision(network: nn.Module, setting: str | None = None) -> nn.Module:
    """:func:`autocast_forward_on_cpu` with the precision :func:`resolve_cpu_precision` decides (said once
    on stderr per process and decision)."""
    precision, why = resolve_cpu_precision(setting)
    _announce(why)
    return autocast_forward_on_cpu(network, precision)
