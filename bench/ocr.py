"""`python -m bench.ocr [--count 100] [--seed 2025]`: how many of the mock portal's image captchas the `ocr`
solver (agent.human.OcrCaptcha, ddddocr) reads right, checked the way the portal checks them.

It answers one question for the README: can `captcha = "ocr"` run unattended? A wrong answer costs a fresh
captcha, never a password attempt, and the login flow tries up to three, so a rate r leaves about (1-r)^3
logins needing a person. Real portal captchas differ from the mock's: measure them before relying on this.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from agent.human import OcrCaptcha
from fixtures.portal.captcha import CaptchaStore


async def measure(count: int, seed: int) -> tuple[int, float]:
    """(captchas read right, seconds per captcha)."""
    store, solver = CaptchaStore(seed), OcrCaptcha()
    right, started = 0, time.perf_counter()
    for _ in range(count):
        captcha_id, image = store.new()
        right += store.check(captcha_id, await solver.solve(image))
    return right, (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    right, seconds = asyncio.run(measure(args.count, args.seed))
    print(f"ocr: {right} of {args.count} mock captchas read right ({seconds * 1000:.0f} ms each); seed {args.seed}")


if __name__ == "__main__":
    main()
