"""The float32 check mode reproduces llama2.c's run exactly: every greedy and seeded
golden case, stdout byte for byte."""

from __future__ import annotations

import json

from micro_llm import simulator

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


def test_f32_mode_prints_what_run_c_prints(f32_blob, golden_llm_cases):
    # Two MicroPython processes, one per core, each telling half of the cases.
    cases = [_seeded(c) for c in golden_llm_cases]
    halves = [cases[0::2], cases[1::2]]
    runs = [simulator.start(_RUN_ALL, heap_bytes=64 << 20,
                            args=[str(f32_blob), json.dumps(half)]) for half in halves]
    got = {}
    for half, run in zip(halves, runs):
        out, err = run.communicate(timeout=1800)
        assert run.returncode == 0, err.decode(errors="replace")
        for case, line in zip(half, out.decode().splitlines()):
            got[case["id"]] = json.loads(line)
    mismatched = [c["id"] for c in cases if got.get(c["id"]) != c["expected_stdout"]]
    assert len(got) == len(cases) and mismatched == []
