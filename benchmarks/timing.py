"""Round-robin timing shared by the benchmarks.

Every contender runs once per round, in turn, so drift of the machine (other
load, frequency scaling) hits all alike; the median over rounds is reported.
"""

import statistics
import time


def median_seconds(contenders, x, rounds, warmup=2):
    """``{name: median seconds of f(x)}`` for ``contenders = {name: f}``."""
    for f in contenders.values():  # trace / allocate / warm caches
        for _ in range(warmup):
            f(x)
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, f in contenders.items():
            start = time.perf_counter()
            f(x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}
