"""Repro files: everything needed to re-run one failure, bit for bit.

A repro is a JSON object (format version FORMAT_VERSION):

    {"format": "vringfuzz-repro", "version": 1,
     "engine": "pct" | "random" | "explore" | "stateful" | "fuzz",
     "scenario": "net", "params": {...},          # scheduled engines
     "target": "desc_chain", "input": "<base64>", # fuzz engine
     "ops": [...],                                # stateful engine
     "driver": "reference", "device": "reference", "memory_model": "sc",
     "bug": null, "seed": 7, "schedule": {"version": 1, "choices": [...]},
     "signature": {"oracle": "lost-interrupt", "message": "..."}}

Files are written atomically (temp file + rename) so a killed campaign never
leaves half a repro, and named after the signature so the same failure found
twice lands in the same file.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path

FORMAT = "vringfuzz-repro"
FORMAT_VERSION = 1
ENGINES = ("pct", "random", "explore", "stateful", "fuzz")


class ReproError(Exception):
    """A repro file that cannot be used; the message is one line for the user."""


def make_doc(engine: str, *, signature: dict, target=None, input_bytes: bytes | None = None,
             scenario=None, params=None, seed=None, schedule=None, ops=None,
             memory_model: str = "sc", driver: str = "reference", device: str = "reference",
             bug=None) -> dict:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "engine": engine,
           "driver": driver, "device": device, "memory_model": memory_model,
           "bug": bug, "seed": seed, "signature": dict(signature)}
    if scenario is not None:
        doc["scenario"] = scenario
    if params is not None:
        doc["params"] = params
    if target is not None:
        doc["target"] = target
    if input_bytes is not None:
        doc["input"] = base64.b64encode(bytes(input_bytes)).decode("ascii")
    if schedule is not None:
        doc["schedule"] = schedule.to_json() if hasattr(schedule, "to_json") else schedule
    if ops is not None:
        doc["ops"] = ops
    return doc


def input_bytes(doc: dict) -> bytes:
    try:
        return base64.b64decode(doc["input"], validate=True)
    except (KeyError, ValueError) as e:
        raise ReproError(f"repro has no valid base64 'input' ({e})") from None


def file_name(doc: dict) -> str:
    sig = doc.get("signature", {})
    key = json.dumps([doc["engine"], doc.get("scenario"), doc.get("target"), doc.get("bug"),
                      sig.get("oracle"), sig.get("message")], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    oracle = str(sig.get("oracle", "failure")).replace(":", "-").replace("/", "-")
    return f"{doc['engine']}-{oracle}-{digest}.json"


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def save(doc: dict, out_dir, name: str | None = None) -> Path:
    """Write doc atomically into out_dir; returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name or file_name(doc))
    # Not mkstemp: its 0600 would stay on the file, and a repro is made to be
    # shared; O_EXCL with a unique name is as safe, and the umask applies.
    tmp = str(out / f".repro-{os.getpid()}-{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path) -> dict:
    """Read and validate a repro file; ReproError says what is wrong in one line."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ReproError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReproError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ReproError(f"{path}: not a vringfuzz repro (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != FORMAT_VERSION:
        raise ReproError(f"{path}: repro format version {doc.get('version')!r}; "
                         f"this vringfuzz reads version {FORMAT_VERSION}")
    if doc.get("engine") not in ENGINES:
        raise ReproError(f"{path}: unknown engine {doc.get('engine')!r}")
    if not isinstance(doc.get("signature"), dict) or "oracle" not in doc["signature"]:
        raise ReproError(f"{path}: missing failure signature")
    return doc
