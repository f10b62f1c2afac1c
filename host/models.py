"""Known models: find a checkpoint and its tokenizer, download them, build the blob.

    paths = resolve("stories260K")          # ModelFiles(checkpoint, tokenizer)
    blob = blob_for("stories260K", "int8")  # built on first use, then cached

Lookup order for a named model: the folder in $MICRO_LLM_MODELS, then the cache, then a
download into the cache (progress shown, sha256 verified, written atomically). A file
whose sha256 does not match the pinned one is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import UserError
from .firmware_link import blobfmt

log = logging.getLogger(__name__)

DEFAULT_MODEL = "stories260K"
_CHUNK = 1 << 16


@dataclass
class ModelFiles:
    name: str
    checkpoint: Path
    tokenizer: Path


def known_models() -> dict[str, dict]:
    out = {}
    for path in sorted(paths.MODELS_DIR.glob("*.json")):
        entry = json.loads(path.read_text())
        out[entry["name"]] = entry
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(path: Path, spec: dict, where: str) -> Path:
    digest = sha256_of(path)
    if digest != spec["sha256"]:
        raise UserError(
            f"{path} ({where}) has sha256 {digest}, not the pinned {spec['sha256']}: refusing "
            "it; delete it, or point MICRO_LLM_MODELS at the right file")
    return path


def download(url: str, dest: Path, sha256: str, size: int | None = None,
             progress=None) -> Path:
    """Fetch url into dest: streamed to a temporary file, checked, then renamed.

    Progress goes to `progress` (default: stderr)."""
    progress = progress or sys.stderr
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or size or 0)
                done = 0
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    _progress(progress, dest.name, done, total)
            out.flush()
            os.fsync(out.fileno())
        if progress:
            progress.write("\n")
        if h.hexdigest() != sha256:
            raise UserError(f"download of {url} has sha256 {h.hexdigest()}, not the pinned "
                            f"{sha256}: refused (nothing was saved)")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _progress(stream, name: str, done: int, total: int) -> None:
    if not stream:
        return
    if total:
        filled = int(30 * done / total)
        stream.write(f"\rdownloading {name} [{'#' * filled}{'.' * (30 - filled)}] "
                     f"{done:,}/{total:,} bytes")
    else:
        stream.write(f"\rdownloading {name} {done:,} bytes")
    stream.flush()


def _find(entry: dict, part: str) -> Path:
    spec = entry[part]
    env = paths.models_env_dir()
    if env is not None and (env / spec["file"]).is_file():
        return _verified(env / spec["file"], spec, "from MICRO_LLM_MODELS")
    cached = paths.cache_dir() / "models" / spec["file"]
    if cached.is_file():
        return _verified(cached, spec, "in the cache")
    source = os.environ.get("MICRO_LLM_MIRROR") or entry["source"]
    url = source.rstrip("/") + "/" + spec["path"]
    try:
        return download(url, cached, spec["sha256"], spec.get("bytes"))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        where = f"MICRO_LLM_MODELS={env}" if env is not None else "MICRO_LLM_MODELS (unset)"
        raise UserError(
            f"{spec['file']} for {entry['name']} is not in {where} nor in the cache, and the "
            f"download from {url} failed ({getattr(e, 'reason', e)}): download it yourself "
            "and set MICRO_LLM_MODELS to its folder") from None


def resolve(name: str) -> ModelFiles:
    """The checkpoint and tokenizer of a known model, found or downloaded."""
    models = known_models()
    if name not in models:
        raise UserError(f"unknown model {name!r}: known models are "
                        f"{', '.join(sorted(models))}, or give a path to a checkpoint or blob")
    entry = models[name]
    return ModelFiles(name, _find(entry, "checkpoint"), _find(entry, "tokenizer"))


def is_blob(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == blobfmt.MAGIC


def _tokenizer_for(checkpoint: Path, tokenizer: Path | None) -> Path:
    if tokenizer is not None:
        return tokenizer
    digest = sha256_of(checkpoint)
    for entry in known_models().values():
        if entry["checkpoint"]["sha256"] == digest:
            return _find(entry, "tokenizer")
    raise UserError(f"{checkpoint} is not a known model, so its tokenizer is unknown: give "
                    "it with --tokenizer PATH")


def blob_for(model: str, dtype: str = "int8", tokenizer: str | Path | None = None) -> Path:
    """The blob for a model name, a checkpoint path or a blob path; built and cached."""
    from . import quantize
    from .blobio import read_blob
    from .checkpoint import read_checkpoint, read_tokenizer

    path = Path(model)
    if path.exists() and not path.is_file():
        raise UserError(f"{model} is not a file: give a model name, a checkpoint or a blob")
    if tokenizer and not Path(tokenizer).is_file():
        raise UserError(f"no such tokenizer file: {tokenizer}")
    if path.is_file():
        if is_blob(path):
            return path
        files = ModelFiles(path.stem, path, _tokenizer_for(path, Path(tokenizer) if tokenizer
                                                           else None))
    elif os.sep in model or model.endswith((".bin", ".mlb")):
        raise UserError(f"no such file: {model}")
    else:
        files = resolve(model)
        if tokenizer:
            files.tokenizer = Path(tokenizer)

    key = hashlib.sha256()
    for part in (files.checkpoint, files.tokenizer):
        key.update(sha256_of(part).encode())
    key.update(f"{dtype}/{quantize.QUANTIZER_VERSION}/{blobfmt.VERSION}".encode())
    out = paths.cache_dir() / "blobs" / f"{files.name}-{dtype}-{key.hexdigest()[:16]}.mlb"
    if out.is_file():
        try:
            read_blob(out)
            return out
        except UserError as e:
            print(f"rebuilding {out}: the cached blob is damaged ({e})", file=sys.stderr)

    ckpt = read_checkpoint(files.checkpoint)
    tok = read_tokenizer(files.tokenizer, ckpt.config.vocab_size)
    print(f"building the {dtype} blob of {files.name} (first use; cached in {out.parent})",
          file=sys.stderr)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize.build(ckpt, tok, out, dtype)
    except OSError as e:
        raise UserError(f"cannot write the blob to {out.parent}: {e.strerror or e}; set "
                        "MICRO_LLM_CACHE to a folder you can write") from None
    return out
