"""Price paths: a list of (seconds after the start, feed answer) ticks.

Answers are integers in the feed's units (8 decimals, as the devnet's
MockAggregator and Chainlink's USD feeds); every tick is a new oracle
round, stamped `seconds` after the path starts. Times strictly increase and
prices are positive: anything else is refused in one line.

    seed       scenarios/crash.yaml's "20% in 30 seconds" (and its bounce)
    october    a multi-stage cascade in the shape of 10 October 2025: a slide,
               gaps, dead-cat bounces, a capitulation wick, a partial recovery
    squeeze    a squeeze up: +30% in two minutes with gaps (shorts pay)
    jump       a seeded jump-diffusion (Merton): Gaussian steps plus Poisson
               jumps, mostly down
    csv:FILE   a CSV of `seconds,price` rows (price in whole units, decimals
               allowed; a header row is skipped)
"""

import csv
import math
import random
from pathlib import Path

import yaml

from risk.errors import LabError

FEED_DECIMALS = 8
UNIT = 10**FEED_DECIMALS
ROOT = Path(__file__).resolve().parent.parent
SEED_SCENARIO = ROOT / "scenarios" / "crash.yaml"
BASE_PRICE = 80_000  # BTC-PERP's devnet price (config/networks.yaml)
KINDS = ("seed", "october", "squeeze", "jump")


def _check(path, label):
    if not path:
        raise LabError(f"path {label}: no ticks")
    last = -1
    for i, (t, a) in enumerate(path):
        if type(t) is not int or t <= last:
            raise LabError(f"path {label}: tick {i}: seconds {t!r} must be an integer above the previous tick's {last}")
        if type(a) is not int or a <= 0:
            raise LabError(f"path {label}: tick {i}: price must be positive, got {a / UNIT if isinstance(a, int) else a!r}")
        last = t
    return path


def seed_crash():
    """scenarios/crash.yaml's crash: [seconds, whole USD] points."""
    data = yaml.safe_load(SEED_SCENARIO.read_text())
    return _check([(int(t), int(p) * UNIT) for t, p in data["crash"]], "seed")


def october(base=BASE_PRICE):
    """A 12-minute, 300-tick cascade in stages (fractions of `base`): a slide
    of 4%, a 6% gap, a bounce, a second gap to -18%, a capitulation wick to
    -27%, and a recovery to -14% (BTC fell about 14% on 10 October 2025,
    thinner books far more; what matters here is the shape: gaps through
    bankruptcy prices faster than a keeper can act, then a bounce)."""
    f = [(0, 1.0), (90, 0.96), (91, 0.90), (150, 0.925), (240, 0.905), (241, 0.82),
         (330, 0.80), (331, 0.73), (400, 0.76), (600, 0.84), (717, 0.86)]
    return _check(_sample([(t, base * x) for t, x in f], 294, 717), "october")


def _sample(points, n, span):
    """`n` ticks evenly over `span` seconds (integer seconds), the price
    linear between points except at a gap (two points one second apart),
    where it jumps."""
    times = sorted({round(i * span / (n - 1)) for i in range(n)} | {t for t, _ in points})
    out = []
    j = 0
    for t in times:
        while j + 1 < len(points) and points[j + 1][0] <= t:
            j += 1
        if j + 1 < len(points):
            (t0, p0), (t1, p1) = points[j], points[j + 1]
            p = p0 + (p1 - p0) * (t - t0) / (t1 - t0)
        else:
            p = points[-1][1]
        out.append((t, round(p * UNIT)))
    return out


def squeeze(base=BASE_PRICE):
    """A squeeze up: +30% in 120 seconds with two gaps, then a fade."""
    f = [(0, 1.0), (30, 1.04), (31, 1.10), (60, 1.14), (61, 1.22), (120, 1.30), (180, 1.24)]
    return _check(_sample([(t, base * x) for t, x in f], 181, 180), "squeeze")


def jump(seed, ticks=300, dt=1, base=BASE_PRICE, sigma_day=0.04, jumps_per_hour=30.0, jump_mean=-0.02,
         jump_sd=0.03):
    """A seeded Merton jump-diffusion: per tick, a Gaussian step of
    volatility `sigma_day` (scaled to `dt` seconds) plus Poisson jumps
    (rate `jumps_per_hour`) of lognormal size, mean `jump_mean`. The same
    seed gives the same ticks on every machine."""
    rng = random.Random(seed)
    s = sigma_day * math.sqrt(dt / 86_400)
    lam = jumps_per_hour * dt / 3_600
    x = math.log(base)
    out = [(0, round(base * UNIT))]
    for i in range(1, ticks):
        x += -0.5 * s * s + s * rng.gauss(0.0, 1.0)
        k = 0
        u = rng.random()
        p, acc = math.exp(-lam), math.exp(-lam)
        while u > acc and k < 10:
            k += 1
            p *= lam / k
            acc += p
        for _ in range(k):
            x += rng.gauss(jump_mean, jump_sd)
        out.append((i * dt, max(1, round(math.exp(x) * UNIT))))
    return _check(out, f"jump:{seed}")


def read_csv(file):
    """`seconds,price` rows; a first row that does not parse is a header."""
    p = Path(file)
    try:
        text = p.read_text()
    except OSError as e:
        raise LabError(f"path csv {file}: cannot read: {e.strerror or e}") from None
    out = []
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise LabError(f"path csv {file}: line {n}: expected 'seconds,price', got {','.join(row)!r}")
        try:
            t, price = int(row[0]), float(row[1])
        except ValueError:
            if n == 1 and not out:
                continue  # a header
            raise LabError(f"path csv {file}: line {n}: not numbers: {','.join(row)!r}") from None
        if not math.isfinite(price) or price <= 0:
            raise LabError(f"path csv {file}: line {n}: price must be positive, got {row[1].strip()}")
        if out and t <= out[-1][0]:
            raise LabError(f"path csv {file}: line {n}: seconds {t} must be above the previous row's {out[-1][0]}")
        if t < 0:
            raise LabError(f"path csv {file}: line {n}: seconds must not be negative, got {t}")
        out.append((t, round(price * UNIT)))
    if not out:
        raise LabError(f"path csv {file}: no rows")
    return _check(out, f"csv {file}")


def make_path(name, seed=0):
    """A path by name: seed, october, squeeze, jump (seeded), csv:FILE."""
    if name == "seed":
        return seed_crash()
    if name == "october":
        return october()
    if name == "squeeze":
        return squeeze()
    if name == "jump":
        return jump(seed)
    if name.startswith("csv:"):
        return read_csv(name[4:])
    raise LabError(f"path: unknown path {name!r} (known: {', '.join(KINDS)}, csv:FILE)")
