"""The float32 check mode reproduces llama2.c's run exactly: every greedy and seeded
golden case, stdout byte for byte."""

from __future__ import annotations

import json

import pytest

from conftest import run_firmware

_RUN_ALL = """
import sys, json, llm
cases = json.loads(sys.argv[2])
model = llm.load(sys.argv[1], steps=max(int(c["steps"]) for c in cases))

class Capture:
    def __init__(self):
        self.parts = []
    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

for c in cases:
    out = Capture()
    seed = int(c.get("rng_seed_effective") or 0) or 1
    llm.generate(model, c["prompt"], steps=int(c["steps"]),
                 temperature=float(c["temperature"]), topp=float(c["topp"]),
                 seed=seed, out=out)
    print(json.dumps(b"".join(out.parts).decode()))
"""


def _seeded(case):
    if case["seed"] in (None, "None"):
        return case
    case = dict(case)
    case.setdefault("rng_seed_effective", case["seed"])
    return case


@pytest.mark.parametrize("half", [0, 1])
def test_f32_mode_prints_what_run_c_prints(f32_blob, golden_llm_cases, half):
    cases = [_seeded(c) for c in golden_llm_cases][half::2]
    out = run_firmware(_RUN_ALL, str(f32_blob), json.dumps(cases), heap=64 << 20,
                       timeout=1800)
    got = [json.loads(line) for line in out.splitlines()]
    mismatched = [c["id"] for c, text in zip(cases, got) if text != c["expected_stdout"]]
    assert len(got) == len(cases) and mismatched == []
