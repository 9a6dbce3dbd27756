"""Make docs/segment_contact_sheet.png: strips with their mask overlays from a real photograph
(ETH-XGaze format, and CelebAMask-HQ with human-style annotations) and from both synthetic styles.

    python examples/segment_contact_sheet.py [--out docs/segment_contact_sheet.png] [--size 192]

The photograph is scikit-image's astronaut (tests/face_fixtures.py builds the files), so this
runs offline; it goes through the same `core.segment` calls as `gcgan segment`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import face_fixtures  # noqa: E402

from gcgan_cli.core.segment import segment  # noqa: E402
from gcgan_cli.data.atomic import write_atomic  # noqa: E402
from gcgan_cli.data.contact_sheet import contact_sheet  # noqa: E402
from gcgan_cli.data.manifest import read_manifest  # noqa: E402
from gcgan_cli.data.png import encode_png  # noqa: E402
from gcgan_cli.data.prep_dir import PrepDir  # noqa: E402
from gcgan_cli.data.sources import CelebaSource, EthxSource, SyntheticSource  # noqa: E402


def pairs(prep: PrepDir, count: int, step: int = 1):
    for name in list(read_manifest(prep.manifest))[::step][:count]:
        yield prep.read_pair(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "segment_contact_sheet.png")
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "h5").mkdir()
        face_fixtures.write_ethx_subject(tmp / "h5" / "subject0000.h5")
        face_fixtures.write_celeba(tmp / "celeba", ids=(0, 1), no_face_id=None)
        runs = {
            "ethx": EthxSource(tmp / "h5", args.size),
            "celeba": CelebaSource(tmp / "celeba", args.size, use_annotations=True),
            "studio": SyntheticSource(40, seed=1, size=args.size, style="studio"),
            "wild": SyntheticSource(40, seed=1, size=args.size, style="wild"),
        }
        preps = {}
        for name, source in runs.items():
            preps[name] = PrepDir.at(tmp / name)
            segment(source, preps[name], workers=1)
        tiles = [
            *pairs(preps["ethx"], 2),
            *pairs(preps["celeba"], 2),
            *pairs(preps["studio"], 2, 20),
            *pairs(preps["wild"], 2, 20),
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, encode_png(contact_sheet(tiles), level=9))
    print(
        f"wrote {args.out}: rows = ETH-XGaze format (real photo), CelebAMask-HQ (annotations), synthetic studio, "
        "synthetic wild"
    )


if __name__ == "__main__":
    main()
