"""cchet quickstart: seal a file at rest, open it again, and see tampering caught.

    make demo            # or: python examples/quickstart.py [--size-mib 256]

This demo runs on any machine: sealing needs no TEE. (Attested key release and confidential Ray tasks
grow this demo as they land.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import cchet


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=256, help="size of the demo file (default 256)")
    args = parser.parse_args()
    size = args.size_mib << 20

    key = cchet.DataKey.generate()
    print(f"cchet {cchet.__version__}: new data key {key!r} (the key bytes never print)")
    with tempfile.TemporaryDirectory(prefix="cchet-demo-") as tmp:
        plain, sealed, opened = Path(tmp, "data.bin"), Path(tmp, "data.sealed"), Path(tmp, "data.out")
        block = os.urandom(1 << 20)
        with plain.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(block)
        digest = hashlib.sha256(plain.read_bytes()).hexdigest()

        data = plain.read_bytes()
        out = bytearray(cchet.sealed_size(len(data)))
        start = time.perf_counter()
        cchet.seal_into(key, data, out, context=b"demo/data.bin")
        seal_s = time.perf_counter() - start
        sealed.write_bytes(out)
        print(
            f"sealed   {args.size_mib} MiB -> {sealed.stat().st_size} bytes in {seal_s * 1e3:.1f} ms "
            f"({size / seal_s / 1e9:.2f} GB/s on {os.cpu_count()} cores)"
        )

        back = bytearray(size)
        blob = sealed.read_bytes()
        start = time.perf_counter()
        cchet.unseal_into(key, blob, back, context=b"demo/data.bin")
        open_s = time.perf_counter() - start
        opened.write_bytes(back)
        ok = hashlib.sha256(opened.read_bytes()).hexdigest() == digest
        print(
            f"unsealed {args.size_mib} MiB in {open_s * 1e3:.1f} ms ({size / open_s / 1e9:.2f} GB/s); "
            f"sha256 matches: {ok}"
        )
        if not ok:
            raise SystemExit("round trip failed")

        tampered = bytearray(sealed.read_bytes())
        tampered[len(tampered) // 2] ^= 1
        try:
            cchet.unseal_into(key, tampered, back, context=b"demo/data.bin")
        except cchet.IntegrityError as e:
            print(
                f"one flipped bit in the middle: IntegrityError ({e}); output zeroed: {not any(back[:4096])}"
            )
        else:
            raise SystemExit("tampering went unnoticed")
        try:
            cchet.unseal(key, sealed.read_bytes(), context=b"demo/other-name")
        except cchet.IntegrityError:
            print("the same stream under another context: IntegrityError (the context is bound)")


if __name__ == "__main__":
    main()
