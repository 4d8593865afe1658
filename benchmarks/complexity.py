"""Configs/s of the analytic counter against ptflops on the same random BNext specs, in one run.

    python benchmarks/complexity.py [--specs 1000] [--ptflops-specs 20] [--resolution 32]

The analytic counter reads the spec's layer sites (no model, no forward pass). ptflops needs the
model built and run, so it gets the first ``--ptflops-specs`` of the same specs; both rates are
configs per second of wall time, and the ratio is printed. Target: analytic >= 1000 configs/s.
"""

from __future__ import annotations

import argparse
import random
import time

from bnextbench.complexity import ptflops_count
from bnextbench.models import BNext
from bnextbench.models.spec import random_spec
from bnextbench.profiling import profile_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--ptflops-specs", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    specs = [random_spec(rng) for _ in range(args.specs)]

    start = time.perf_counter()
    reports = [profile_spec(spec, args.resolution) for spec in specs]
    analytic_rate = len(specs) / (time.perf_counter() - start)

    sample = specs[: args.ptflops_specs]
    start = time.perf_counter()
    for spec, report in zip(sample, reports):
        float_macs, binary_macs = ptflops_count(BNext(spec), args.resolution)
        assert binary_macs == report.bops, "ptflops and the analytic counter disagree on BOPs"
    ptflops_rate = len(sample) / (time.perf_counter() - start)

    print(f"random BNext specs at {args.resolution}x{args.resolution} (seed {args.seed})")
    print(f"analytic counter: {len(specs)} specs, {analytic_rate:,.0f} configs/s")
    print(f"ptflops (build + forward): {len(sample)} of the same specs, {ptflops_rate:,.2f} configs/s")
    print(f"ratio analytic / ptflops: {analytic_rate / ptflops_rate:,.0f}x")
    print(f"target >= 1000 configs/s: {'met' if analytic_rate >= 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
