"""False-positive rate of acct ablate's verdict on simulated A/A studies, against the pooled McNemar test.

Each simulated study has two arms with no true difference on average: on seed s the true difference
is N(0, tau) (training variance), the reference's accuracy is 0.6 + N(0, 0.05), and each arm answers
QUESTIONS questions per seed independently at its accuracy. The seed-level test is the one
`acct ablate` reports (`acct.study.replicates.primary_test`); the pooled test is the exact McNemar test on
all seeds' questions at once, which acct used before seeds became the replicate.

    python benchmarks/aa_calibration.py [--studies 2000] [--questions 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from acct.study import replicates
from acct.study.stats import mcnemar_exact


def studies(n_seeds: int, tau: float, count: int, questions: int, rng: np.random.Generator):
    for _ in range(count):
        ref, arm = [], []
        for _ in range(n_seeds):
            level = 0.6 + rng.normal(0, 0.05)
            delta = rng.normal(0, tau)
            ref.append((rng.random(questions) < np.clip(level, 0.01, 0.99)).tolist())
            arm.append((rng.random(questions) < np.clip(level + delta, 0.01, 0.99)).tolist())
        yield ref, arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    print(f"A/A studies: {args.studies} per cell, {args.questions} questions per seed, alpha 0.05")
    print(f"{'seeds':>5} {'tau (pts)':>9} {'seed-level t':>13} {'pooled McNemar':>15}")
    for n_seeds in (2, 3, 5, 10):
        for tau in (0.0, 0.05, 0.10, 0.20):
            rng = np.random.default_rng(n_seeds * 100 + int(tau * 100))
            seed_level = pooled = 0
            for ref, arm in studies(n_seeds, tau, args.studies, args.questions, rng):
                _, test = replicates.primary_test(ref, arm)
                seed_level += test.p is not None and test.p < 0.05
                pooled += mcnemar_exact([x for a in ref for x in a], [x for b in arm for x in b]) < 0.05
            print(f"{n_seeds:>5} {100 * tau:>9.0f} {seed_level / args.studies:>13.3f} {pooled / args.studies:>15.3f}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
