"""``python tools/fuzz [netconf|cmp|all] [--inputs N] [--seed S]``: the fuzz harness.

Prints one summary line per part and exits 1 if anything crashed or answered
with an internal error, or enrolled from a forged CA answer. See README, "Fuzzing".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cmp_fuzz  # noqa: E402
import netconf_fuzz  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/fuzz", description=__doc__)
    parser.add_argument("part", nargs="?", choices=("netconf", "cmp", "all"), default="all")
    parser.add_argument("--inputs", type=int, default=2000, help="inputs per part")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    failed = False
    if args.part in ("netconf", "all"):
        nc = netconf_fuzz.run(args.inputs, args.seed)
        print(nc.report(), flush=True)
        for line in nc.internal_errors[:10]:
            print("  internal error:", line)
        failed |= bool(nc.crashes or nc.internal_errors)
    if args.part in ("cmp", "all"):
        cmp = cmp_fuzz.run(args.inputs, args.seed)
        print(cmp.report(), flush=True)
        for crash in cmp.crashes[:3]:
            print("  crash:", crash)
        for forged in cmp.accepted_mutated[:10]:
            print("  enrolled after a mutation of protected bytes (replay: run(1, seed, start)):",
                  forged)
        failed |= bool(cmp.crashes or cmp.accepted_mutated)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
