"""Plain data: the only thing that crosses the grading sandbox's boundary.

A check's ``capture`` returns plain data: ``None``, bools, ints, floats, strings, lists,
dicts with string keys, and numeric numpy arrays. It is written as one JSON file per
exercise plus one ``.npy`` file per array (``np.save(allow_pickle=False)``); nothing is
ever pickled, and the grader reads these files as hostile input: without following
symlinks, regular files only, under size caps, with depth and element limits.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
from pathlib import Path

FORMAT = 1
ARRAY_KEY = "__ndarray__"
MAX_JSON_BYTES = 4 << 20
MAX_ARRAY_BYTES = 64 << 20
MAX_ARRAYS = 64
MAX_DEPTH = 24
MAX_STRING = 20_000
MAX_ITEMS = 200_000
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


class PlainDataError(ValueError):
    """Data that is not plain, or a capture file that cannot be trusted to be plain."""


def encode(value) -> tuple[object, list]:
    """(JSON-able structure, arrays): arrays are replaced by ``{"__ndarray__": index}``."""
    arrays: list = []
    budget = [MAX_ITEMS]
    return _encode(value, arrays, 0, budget), arrays


def _encode(value, arrays: list, depth: int, budget: list):
    if depth > MAX_DEPTH:
        raise PlainDataError("nested too deeply")
    budget[0] -= 1
    if budget[0] < 0:
        raise PlainDataError("too many items")
    kind = type(value)
    if value is None or kind in (bool, int, float):
        if kind is int and abs(value) > 2**63:
            raise PlainDataError("integer too large")
        return value
    if kind is str:
        if len(value) > MAX_STRING:
            raise PlainDataError(f"string longer than {MAX_STRING} characters")
        return value
    if kind in (list, tuple):
        return [_encode(v, arrays, depth + 1, budget) for v in value]
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise PlainDataError("dict keys must be strings")
        if ARRAY_KEY in value:
            raise PlainDataError(f"{ARRAY_KEY!r} is a reserved key")
        return {k: _encode(v, arrays, depth + 1, budget) for k, v in value.items()}
    import numpy as np

    if kind is np.ndarray:
        if value.dtype.kind not in "biuf" or value.dtype.fields is not None:
            raise PlainDataError(f"arrays must be numeric, not {value.dtype}")
        if value.nbytes > MAX_ARRAY_BYTES or len(arrays) >= MAX_ARRAYS:
            raise PlainDataError("array too large or too many arrays")
        arrays.append(np.ascontiguousarray(value))
        return {ARRAY_KEY: len(arrays) - 1}
    if (
        isinstance(value, np.generic)
        and type(value).__module__ == "numpy"
        and value.dtype.kind in "biuf"
    ):
        return _encode(value.item(), arrays, depth, budget)
    raise PlainDataError(f"not plain data: {kind.__module__}.{kind.__qualname__}")


def decode(structure, arrays: list):
    """The value ``encode`` was given, with arrays put back."""
    if isinstance(structure, list):
        return [decode(v, arrays) for v in structure]
    if isinstance(structure, dict):
        if set(structure) == {ARRAY_KEY}:
            index = structure[ARRAY_KEY]
            if type(index) is not int or not 0 <= index < len(arrays):
                raise PlainDataError("bad array reference")
            return arrays[index]
        return {k: decode(v, arrays) for k, v in structure.items()}
    return structure


def roundtrip(value):
    """``value`` after writing and reading it as plain data (what a grader would see)."""
    structure, arrays = encode(value)
    text = json.dumps(structure, allow_nan=True)
    blobs = [_array_bytes(a) for a in arrays]
    return decode(_loads(text.encode()), [_array_from_bytes(b) for b in blobs])


def dump(directory: str | Path, name: str, payload: dict) -> None:
    """Write ``payload`` (plain data) as ``directory/name.json`` and its arrays."""
    if not NAME.match(name):
        raise PlainDataError(f"bad capture name {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    structure, arrays = encode(payload)
    for index, array in enumerate(arrays):
        _write(directory / f"{name}.{index}.npy", _array_bytes(array))
    text = json.dumps(
        {"format": FORMAT, "arrays": len(arrays), "payload": structure}, allow_nan=True
    )
    _write(directory / f"{name}.json", text.encode())


def load(directory: str | Path, name: str) -> dict | None:
    """The payload ``dump`` wrote, or ``None`` if there is none; ``PlainDataError`` if the
    files are not what ``dump`` writes (symlinks, special files, too big, not plain)."""
    if not NAME.match(name):
        raise PlainDataError(f"bad capture name {name!r}")
    directory = Path(directory)
    try:
        raw = safe_read(directory / f"{name}.json", MAX_JSON_BYTES)
    except FileNotFoundError:
        return None
    document = _loads(raw)
    if not (
        isinstance(document, dict)
        and document.get("format") == FORMAT
        and type(document.get("arrays")) is int
        and 0 <= document["arrays"] <= MAX_ARRAYS
        and isinstance(document.get("payload"), dict)
    ):
        raise PlainDataError("not a capture file")
    arrays = [
        _array_from_bytes(safe_read(directory / f"{name}.{i}.npy", MAX_ARRAY_BYTES + 4096))
        for i in range(document["arrays"])
    ]
    payload = decode(document["payload"], arrays)
    _check_depth(payload)
    return payload


def safe_read(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file, at most ``limit``: symlinks are not followed, FIFOs and
    devices are refused without blocking, bigger files raise ``PlainDataError``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", -1) or (os.path.islink(path)):
            raise PlainDataError(f"{Path(path).name}: a symlink, not followed") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlainDataError(f"{Path(path).name}: not a regular file")
        if info.st_size > limit:
            raise PlainDataError(f"{Path(path).name}: {info.st_size} bytes, over the {limit} cap")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise PlainDataError(f"{Path(path).name}: grew over the {limit} byte cap")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _loads(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_constant)
    except RecursionError:
        raise PlainDataError("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise PlainDataError(f"invalid JSON: {exc}") from None


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def _check_depth(value, depth: int = 0) -> None:
    if depth > MAX_DEPTH + 2:
        raise PlainDataError("nested too deeply")
    if isinstance(value, list):
        for v in value:
            _check_depth(v, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            _check_depth(v, depth + 1)


def _array_bytes(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array_from_bytes(blob: bytes):
    import numpy as np

    try:
        array = np.load(io.BytesIO(blob), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise PlainDataError(f"not a numeric .npy array: {exc}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf" or array.dtype.fields:
        raise PlainDataError("arrays must be numeric")
    if array.ndim > 8:
        raise PlainDataError("array has too many dimensions")
    return array


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
