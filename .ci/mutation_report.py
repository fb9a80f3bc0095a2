"""Score each mutated module from ``mutmut results --all true`` against the documented list of
equivalent mutants; exit 1 when the list and the results disagree or a score is below 95 %."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

THRESHOLD = 95.0
# "    relay.intake.payload.x__decode__mutmut_9: survived"; methods read "xǁClassǁname".
RESULT = re.compile(r"^\s*(?P<name>(?P<module>[\w.]+?)\.x[_ǁ]\S*__mutmut_\d+): (?P<status>.+)$")
# In docs/testing.md, "## Mutation testing": a table row starting with the mutant's name.
LISTED = re.compile(r"^\|\s*`(?P<name>[\w.ǁ]+__mutmut_\d+)`\s*\|", re.MULTILINE)
DETECTED = {"killed", "timeout"}


def main(results_path: str, doc_path: str) -> int:
    equivalent = set(LISTED.findall(Path(doc_path).read_text(encoding="utf-8")))
    totals: Counter[str] = Counter()
    detected: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    unexplained: list[str] = []
    stale = set(equivalent)
    for line in Path(results_path).read_text(encoding="utf-8").splitlines():
        found = RESULT.match(line)
        if found is None:
            continue
        name, module, status = found["name"], found["module"], found["status"].strip()
        totals[module] += 1
        if status in DETECTED:
            detected[module] += 1
            continue
        if name in equivalent:
            stale.discard(name)
            excluded[module] += 1
        else:
            unexplained.append(f"{name}: {status}")
    if not totals:
        print(f"no mutants in {results_path}: did mutmut run?")
        return 1
    print(f"{'module':<26}{'mutants':>8}{'killed':>8}{'equiv.':>8}{'other':>7}{'score':>9}")
    low = []
    for module in sorted(totals):
        counted = totals[module] - excluded[module]
        score = 100.0 * detected[module] / counted if counted else 100.0
        other = counted - detected[module]
        print(
            f"{module:<26}{totals[module]:>8}{detected[module]:>8}{excluded[module]:>8}"
            f"{other:>7}{score:>8.1f}%"
        )
        if score < THRESHOLD:
            low.append(module)
    for item in unexplained:
        print(f"not killed and not listed as equivalent in {doc_path}: {item}")
    for name in sorted(stale):
        print(f"listed as equivalent in {doc_path} but not a survivor of this run: {name}")
    for module in low:
        print(f"{module}: below {THRESHOLD:.0f} % of non-equivalent mutants killed")
    return 1 if unexplained or stale or low else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
