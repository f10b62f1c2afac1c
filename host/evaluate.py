"""How faithful a blob is to llama2.c: teacher-forced agreement and first divergences.

Definitions, used in reports and tests alike:
- teacher-forced top-1 agreement: over every greedy case in the golden cases*.json, feed
  the recorded token sequence and count, at each position after the prompt, whether the
  model's highest logit is the recorded next token (for a story that stopped at BOS, the
  BOS it stopped at counts as the last recorded token);
- first divergence: the index, in the recorded `tokens` list, of the first token the
  model's own greedy run gets wrong (None when it reproduces the whole story). Until that
  point the greedy run and the teacher-forced run see the same tokens, so it is the
  first teacher-forced miss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

BOS = 1


@dataclass
class CaseResult:
    case_id: str
    positions: int
    agree: int
    first_divergence: int | None


def greedy_cases(golden_llm: Path) -> list[dict]:
    cases = []
    for path in sorted(Path(golden_llm).glob("cases*.json")):
        for case in json.loads(path.read_text())["cases"]:
            if float(case["temperature"]) == 0.0:
                cases.append(case)
    return cases


def evaluate(forward_sequence: Callable[[list[int]], np.ndarray],
             cases: list[dict]) -> tuple[float, list[CaseResult]]:
    """Agreement over all cases and each case's result; forward_sequence gives logits."""
    results, agree, total = [], 0, 0
    for case in cases:
        tokens = list(case["tokens"])
        expected = tokens[1:] + ([BOS] if case["stop"] == "bos" else [])
        logits = forward_sequence(tokens[: len(expected)])
        first = len(case["prompt_tokens"]) - 1
        predicted = np.argmax(logits, axis=1)
        hits = predicted[first:] == np.array(expected[first:])
        misses = np.flatnonzero(~hits)
        divergence = int(misses[0]) + first + 1 if len(misses) else None
        results.append(CaseResult(case["id"], len(hits), int(hits.sum()), divergence))
        agree += int(hits.sum())
        total += len(hits)
    return agree / total, results
