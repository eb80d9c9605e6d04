#!/usr/bin/python3
"""key_vectors.py - an independent check of docs/KEY_FORMAT.md's test vectors.

Rebuilds every byte string of the doc's definition in Python, hashes it with
python3-xxhash (xxh3_128: no seed, no secret), and compares the result with
the key the doc's vector table states. Shares no code with tiers/block_key.c:
if the C code, this script or the doc drifts, one of block_key (the C test,
which reads the same table) or this check fails.

Usage: key_vectors.py DOC              check the table; exit 1 on a mismatch
       key_vectors.py --selftest DOC   a copy of DOC with one digit of one
                                       vector altered must fail the check
       key_vectors.py --emit DOC       print the table's rows, keys computed

Needs Debian's python3-xxhash, which only /usr/bin/python3 sees (a pyenv
python3 first on PATH does not): tests/CMakeLists.txt runs it with that one.
"""
import os
import re
import struct
import sys
import tempfile

try:
    import xxhash
except ImportError:
    sys.exit(f"key_vectors: {sys.executable} has no xxhash module: install Debian's "
             "python3-xxhash (tools/install-deps.sh) and run /usr/bin/python3")

BEGIN, END = "<!-- key-vectors:begin -->", "<!-- key-vectors:end -->"
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|\s*$")
DTYPES = {"f32": 0, "f16": 1, "bf16": 2}  # tkv_dtype values (include/tierkv.h)


def h(data: bytes) -> bytes:
    """H: XXH3-128 of data, as its 16 canonical (big-endian hi, lo) bytes."""
    return xxhash.xxh3_128_digest(data)


def le32(v: int) -> bytes:
    return struct.pack("<I", v)


def le64(v: int) -> bytes:
    return struct.pack("<Q", v)


def namespace(model: str, layers, kv_heads, head_dim, dtype, block_tokens) -> bytes:
    mid = model.encode("utf-8")
    return h(b"tierkv/ns/v1" + le64(len(mid)) + mid + le32(layers) + le32(kv_heads)
             + le32(head_dim) + le32(dtype) + le32(block_tokens))


def tokens_bytes(tokens) -> bytes:
    return b"".join(le32(t) for t in tokens)


def key_first(ns: bytes, salt: bytes, tokens) -> bytes:
    return h(b"tierkv/k0/v1" + ns + le64(len(salt)) + salt + tokens_bytes(tokens))


def key_next(prev: bytes, tokens) -> bytes:
    return h(b"tierkv/kn/v1" + prev + tokens_bytes(tokens))


def parse_int(s: str) -> int:
    v = int(s, 0)
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"{s} is not a u32")
    return v


def parse_tokens(spec: str):
    """'A..B' (inclusive, either direction) or 'A,B,C'; decimal or 0x hex."""
    if ".." in spec:
        a, b = (parse_int(x) for x in spec.split(".."))
        step = 1 if b >= a else -1
        return list(range(a, b + step, step))
    return [parse_int(x) for x in spec.split(",")]


def parse_args(words):
    args = {}
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or k in args:
            raise ValueError(f"bad or repeated argument '{w}'")
        args[k] = v
    return args


def compute(op: str, args: dict, namespaces: dict):
    """The key of one row, and for an ns row its block_tokens."""
    if op == "ns":
        want = {"model", "layers", "kv_heads", "head_dim", "dtype", "block_tokens"}
        if set(args) != want:
            raise ValueError(f"ns needs exactly {sorted(want)}")
        bt = parse_int(args["block_tokens"])
        return namespace(args["model"], parse_int(args["layers"]), parse_int(args["kv_heads"]),
                         parse_int(args["head_dim"]), DTYPES[args["dtype"]], bt), bt
    if op == "chain":
        if not {"ns", "tokens", "block"} <= set(args) <= {"ns", "salt", "tokens", "block"}:
            raise ValueError("chain needs ns, tokens, block and optionally salt")
        ns, bt = namespaces[args["ns"]]
        tokens, block = parse_tokens(args["tokens"]), int(args["block"])
        if bt == 0 or len(tokens) % bt or not 0 <= block < len(tokens) // bt:
            raise ValueError(f"{len(tokens)} tokens are not whole blocks of {bt} up to {block}")
        key = key_first(ns, args.get("salt", "").encode("utf-8"), tokens[:bt])
        for i in range(1, block + 1):
            key = key_next(key, tokens[i * bt:(i + 1) * bt])
        return key, None
    raise ValueError(f"unknown op '{op}'")


def rows(doc: str):
    """(line number, name, inputs, stated key) of each table row."""
    text = open(doc, encoding="utf-8").read().splitlines()
    try:
        first, last = text.index(BEGIN), text.index(END)
    except ValueError:
        sys.exit(f"key_vectors: {doc}: no '{BEGIN}' ... '{END}' section")
    for n in range(first + 1, last):
        m = ROW.match(text[n])
        if m:
            yield n + 1, m.group(1), m.group(2), m.group(3)


def check(doc: str, emit: bool):
    """(vectors, mismatches) of the doc's table; prints each mismatch."""
    namespaces, bad, count = {}, 0, 0
    for line, name, inputs, stated in rows(doc):
        words = inputs.split()
        try:
            key, bt = compute(words[0], parse_args(words[1:]), namespaces)
        except (ValueError, KeyError, IndexError) as e:
            print(f"key_vectors: {doc}:{line}: {name}: {e!r}")
            bad += 1
            continue
        if bt is not None:
            namespaces[name] = (key, bt)
        count += 1
        if emit:
            print(f"| `{name}` | `{inputs}` | `{key.hex()}` |")
        elif key.hex() != stated:
            print(f"key_vectors: {doc}:{line}: {name}: the doc says {stated}, "
                  f"the definition gives {key.hex()}")
            bad += 1
    if count == 0:
        sys.exit(f"key_vectors: {doc}: no vectors found")
    return count, bad


def selftest(doc: str) -> int:
    """Alters the last digit of the first vector's key in a copy of doc."""
    text = open(doc, encoding="utf-8").read()
    start = text.index(BEGIN)
    m = next(m for m in (ROW.match(l) for l in text[start:].splitlines()) if m and m.group(3))
    row = m.group(0)
    assert row.endswith("` |")  # the key's last digit is row[-4]
    digit = "1" if row[-4] == "0" else "0"
    altered = text[:start] + text[start:].replace(row, row[:-4] + digit + row[-3:], 1)
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write(altered)
    try:
        count, bad = check(f.name, emit=False)
    finally:
        os.unlink(f.name)
    print(f"key_vectors: selftest: '{m.group(1)}' altered, {bad} of {count} vectors caught")
    return 0 if bad == 1 else 1


def main(argv):
    mode = argv[1] if len(argv) == 3 else None
    if len(argv) not in (2, 3) or mode not in (None, "--emit", "--selftest"):
        sys.exit(__doc__)
    doc = argv[-1]
    # H itself, against the doc's anchors (the empty input's value is the one
    # in xxHash's own tests), and the doc's hex convention: the 16 canonical
    # bytes are the 128-bit integer big-endian, hi then lo.
    probe = struct.pack("<4I", 1, 2, 3, 4)
    assert h(b"").hex() == "99aa06d3014798d86001c324468d497f"
    assert h(probe).hex() == "903ce79ac359c3eb2de5421794dd19f0"
    assert h(probe).hex() == "%032x" % xxhash.xxh3_128_intdigest(probe)
    if mode == "--selftest":
        return selftest(doc)
    count, bad = check(doc, emit=mode == "--emit")
    if mode is None:
        print(f"key_vectors: {count} vectors, {bad} mismatches (xxhash module "
              f"{xxhash.VERSION}, libxxhash {xxhash.XXHASH_VERSION})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
