"""CPU of the PAC client alone: the sandbox PAC in its own process, one ``FelDriver`` shared
by ``--threads`` threads, each invoice stamped and its acuse fetched.

    python bench/bench_pac_client.py [--n 300] [--threads 32]

Prints the client process's CPU (user + sys) per invoice and the connections its pool opened
(keep-alive: one per thread at most).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_daemon import Sandbox  # noqa: E402
from bench_pac import load_csd, sealed_invoices  # noqa: E402

from connector.pac.fel import FelDriver  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=32)
    args = ap.parse_args()
    csd = load_csd()
    with tempfile.TemporaryDirectory() as tmp:
        sb = Sandbox(Path(tmp), 0.0)
        try:
            d = FelDriver("demo", "demo", timbrado_url=sb.url, pool_size=args.threads)
            xmls = sealed_invoices(csd, args.n, f"C{int(time.time())}")

            def one(i: int) -> None:
                r = d.stamp(xmls[i], f"c{i}-{time.time()}")
                d.acuse_envio(r.uuid)

            t0 = os.times()
            with ThreadPoolExecutor(args.threads) as ex:
                list(ex.map(one, range(args.n)))
            t1 = os.times()
            user = (t1.user - t0.user) * 1000 / args.n
            system = (t1.system - t0.system) * 1000 / args.n
            print(
                f"threads={args.threads} n={args.n}: client CPU {user + system:.2f} ms/invoice "
                f"(user {user:.2f}, sys {system:.2f})"
            )
            d.close()
        finally:
            sb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
