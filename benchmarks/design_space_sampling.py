"""Speed of design-space sampling with complexity filtering, against pycls's way, in one run.

    python benchmarks/design_space_sampling.py [--n 10000] [--json out.json]

For each space, times ``keras_regnet.design_space.sample(space, n, ...)`` for
``n`` distinct networks in a flops band (the paper's 360-400 MF at 224 px),
and, as the peer, pycls's way of doing the same: draw one configuration at a
time and count its flops with pycls 0.1.1's own ``AnyNet.complexity`` (its
sweep code filters each sample by complexity, one model at a time).  The
peer is timed for a fixed number of draws and reported as draws/s; the ratio
is accepted networks/s of ours over the peer's at the same acceptance rate
(the draw distribution is the same: pycls's complexity is the exact count
ours reproduces).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

BAND = (360e6, 400e6)
SPACES = ("AnyNetX_A", "AnyNetX_E", "RegNetX")


def time_ours(space: str, n: int) -> dict:
    from keras_regnet.design_space import sample

    start = time.perf_counter()
    nets = sample(space, n, seed=0, flops_range=BAND)
    seconds = time.perf_counter() - start
    return {"networks": len(nets), "seconds": seconds, "networks_per_s": len(nets) / seconds}


def time_pycls_way(space: str, draws: int) -> dict:
    """One candidate at a time, each counted by pycls's AnyNet.complexity under its global cfg."""
    import pycls.core.config as pycls_config
    import pycls.models.anynet as pycls_anynet

    from keras_regnet.design_space.spaces import draw_anynet_parameters

    cfg, rng = pycls_config.cfg, np.random.default_rng(0)
    layout = draw_anynet_parameters("AnyNetX_A" if space == "RegNetX" else space, rng, draws)
    accepted, start = 0, time.perf_counter()
    for i in range(len(layout["depths"])):
        cfg.ANYNET.STEM_TYPE, cfg.ANYNET.STEM_W, cfg.ANYNET.BLOCK_TYPE = "simple_stem_in", 32, "res_bottleneck_block"
        cfg.ANYNET.DEPTHS = [int(v) for v in layout["depths"][i]]
        cfg.ANYNET.WIDTHS = [int(v) for v in layout["widths"][i]]
        cfg.ANYNET.BOT_MULS = [float(v) for v in layout["bottleneck_ratios"][i]]
        cfg.ANYNET.GROUP_WS = [int(min(g, w * b)) for g, w, b in zip(layout["group_widths"][i], layout["widths"][i], layout["bottleneck_ratios"][i])]
        cfg.ANYNET.STRIDES, cfg.ANYNET.SE_ON = [2] * 4, False
        cx = pycls_anynet.AnyNet.complexity({"h": 224, "w": 224, "flops": 0, "params": 0, "acts": 0})
        accepted += BAND[0] <= cx["flops"] <= BAND[1]
    seconds = time.perf_counter() - start
    return {"draws": len(layout["depths"]), "accepted": accepted, "seconds": seconds, "draws_per_s": len(layout["depths"]) / seconds}


def acceptance_rate(space: str, draws: int = 200_000) -> float:
    """Share of the space's unrestricted draws that land in the band (our exact count, vectorised)."""
    from keras_regnet.architecture.complexity import NetworkSetting, layout_complexity
    from keras_regnet.design_space.spaces import compatible_arrays, draw_anynet_parameters

    layout = draw_anynet_parameters(space, np.random.default_rng(1), draws)
    layout["widths"], layout["group_widths"] = compatible_arrays(layout["widths"], layout["bottleneck_ratios"], layout["group_widths"])
    layout["strides"] = np.full(layout["widths"].shape, 2)
    flops = layout_complexity(layout, NetworkSetting())[0]
    return float(np.mean((flops >= BAND[0]) & (flops <= BAND[1])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="networks to sample per space")
    parser.add_argument("--peer-draws", type=int, default=2_000, help="candidates the peer counts one by one")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    rows = {}
    for space in SPACES:
        ours = time_ours(space, args.n)
        row = {"ours": ours}
        if space != "RegNetX":  # pycls's RegNet sampler is not in the 0.1.1 wheel
            peer = time_pycls_way(space, args.peer_draws)
            rate = acceptance_rate(space)
            peer["networks_per_s"] = peer["draws_per_s"] * rate
            row.update(peer=peer, acceptance_rate=rate, ratio=ours["networks_per_s"] / peer["networks_per_s"])
        rows[space] = row
        peer_text = (f"; pycls's way {row['peer']['draws_per_s']:,.0f} draws/s x acceptance {row['acceptance_rate']:.4f}"
                     f" = {row['peer']['networks_per_s']:,.1f} networks/s; ratio {row['ratio']:,.0f}x") if "peer" in row else ""
        print(f"{space}: {ours['networks']:,} networks in {ours['seconds']:.2f} s "
              f"({ours['networks_per_s']:,.0f}/s){peer_text}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"band": BAND, "n": args.n, "machine": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count(), "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
