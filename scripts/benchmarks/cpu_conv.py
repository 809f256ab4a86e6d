"""Benchmark one sliding-window tile on the CPU: PyTorch's own 3D convolutions vs ``cpu_conv``'s oneDNN.

nnU-Net's predictor runs one tile (batch 1) per forward pass. For small networks PyTorch then picks its
native ``slow_conv3d`` (``nnunet_ts/nnunet/cpu_conv.py`` explains its rule); ``use_onednn_for_single_patches``
routes those convolutions to oneDNN. This script builds nnU-Net's U-Net for a configuration (the
plans' ``PlainConvUNet``: 3x3x3 convolutions, instance norm, leaky ReLU, random weights), times
``--passes`` forward passes of one tile in inference mode with both, interleaved round by round (the
order alternating; machines are noisy), and prints the medians, the speed-up and the largest
difference between the two outputs. Nothing is asserted: timings belong here, not in unit tests.

Configurations: ``tiny`` (the CPU plans of ``nnunet_ts tiny-plans``: 8..64 features, patch 32x64x64)
and ``fullres`` (nnU-Net's 3d_fullres shape on a CPU-sized patch: 32..320 features, 6 stages,
patch 64x128x128), where PyTorch already chooses oneDNN for most layers.

Run time: not recorded; about 5 minutes on 2 cores with the defaults (estimate), nearly all of it the
``fullres`` network.

Usage::

    python scripts/benchmarks/cpu_conv.py [--configuration tiny fullres] [--rounds 5] [--passes 5] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

CONFIGURATIONS = {  # name: (features per stage, strides, patch)
    "tiny": ((8, 16, 32, 64), (1, 2, 2, 2), (32, 64, 64)),
    "fullres": ((32, 64, 128, 256, 320, 320), (1, 2, 2, 2, 2, 2), (64, 128, 128)),
}


def build_unet(features, strides) -> nn.Module:
    """nnU-Net's default 3D U-Net (as ``get_network_from_plans`` builds it), one input channel, 2 classes."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    return PlainConvUNet(1, len(features), features, nn.Conv3d, 3, strides, 2, 2, n_conv_per_stage_decoder=2,
                         conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                         nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=False).eval()


def time_passes(network: nn.Module, tile: torch.Tensor, passes: int) -> float:
    """Median wall seconds of one forward pass (after one untimed pass)."""
    times = []
    with torch.inference_mode():
        network(tile)
        for _ in range(passes):
            start = time.perf_counter()
            network(tile)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configuration", nargs="+", choices=sorted(CONFIGURATIONS), default=["tiny", "fullres"])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are compared)")
    parser.add_argument("--passes", type=int, default=5, help="timed forward passes per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from nnunet_ts.nnunet.cpu_conv import use_onednn_for_single_patches

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, oneDNN "
          f"{'available' if torch.backends.mkldnn.is_available() else 'NOT available (no change expected)'}")
    for name in args.configuration:
        features, strides, patch = CONFIGURATIONS[name]
        torch.manual_seed(0)
        native = build_unet(features, strides)
        fast = use_onednn_for_single_patches(copy.deepcopy(native))
        tile = torch.randn(1, 1, *patch)
        with torch.inference_mode():
            difference = (native(tile) - fast(tile)).abs().max().item()
        seconds = {"native": [], "oneDNN": []}
        for r in range(args.rounds):
            order = [("native", native), ("oneDNN", fast)]
            for label, network in (order if r % 2 == 0 else order[::-1]):
                seconds[label].append(time_passes(network, tile, args.passes))
        native_s, fast_s = (statistics.median(seconds[k]) for k in ("native", "oneDNN"))
        print(f"\n{name}: features {features}, one tile {patch}, {args.rounds} rounds x {args.passes} passes")
        print(f"  PyTorch's choice        {native_s:8.3f} s / tile")
        print(f"  cpu_conv (oneDNN)       {fast_s:8.3f} s / tile")
        print(f"  speed-up {native_s / fast_s:.2f}x, largest output difference {difference:.1e}")


if __name__ == "__main__":
    main()
