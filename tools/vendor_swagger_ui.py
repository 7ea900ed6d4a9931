"""Vendor Swagger UI (npm's ``swagger-ui-dist`` 5.x, which renders OpenAPI 3.1) into the package for the
API-docs page at /_emulator/docs (``make vendor-swagger-ui``). Nothing is fetched at run time: the page
serves these files from the installed package, so it works offline and ships in the wheel.

    python tools/vendor_swagger_ui.py [--spec swagger-ui-dist@5] [--dest dcp_emulator/static/apidocs]

Runs ``npm pack`` (the npm registry's tarball, checked by npm against its integrity hash), copies only the
files the page loads plus the licences, and writes VERSION and README.md (version, integrity, sha256 of
each file). Source maps, the ES-module bundles and the standalone preset are left out to keep the wheel lean.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
# What the page needs (the bundle with its CSS and icon) and what the licences require to travel with it.
FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE",
         "swagger-ui-bundle.js.LICENSE.txt")
README = """\
# Vendored Swagger UI

`swagger-ui-dist` {version} from the npm registry, served by the emulator at
`/_emulator/docs/assets/<file>` for the API-docs page `/_emulator/docs`
(`dcp_emulator/templates/apidocs.html`, `dcp_emulator/static/apidocs/apidocs.js`).

npm tarball integrity: `{integrity}`

Copied unchanged: {files}.
Licence: Apache-2.0 (`LICENSE`, `NOTICE`; the bundled libraries' licences are in
`swagger-ui-bundle.js.LICENSE.txt`).

Refresh (needs npm and the registry): `make vendor-swagger-ui`, or
`python tools/vendor_swagger_ui.py --spec swagger-ui-dist@<version>`; then run
`pytest tests/test_apidocs.py tests/test_ui_browser.py` and commit this directory.

sha256:
{sums}
"""


def main(argv: list[str] | None = None) -> int:
    """Fetch the package with npm, copy the needed files into ``--dest`` and record their version."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="swagger-ui-dist@5", help="npm package spec (default: %(default)s)")
    parser.add_argument("--dest", default=str(ROOT / "dcp_emulator" / "static" / "apidocs"))
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print("vendor-swagger-ui: npm is not installed (apt-get install npm)", file=sys.stderr)
        return 1
    dest = pathlib.Path(args.dest)
    with tempfile.TemporaryDirectory(prefix="swagger-ui-") as tmp:
        work = pathlib.Path(tmp)
        packed = subprocess.run(["npm", "pack", "--json", args.spec], cwd=work, check=True, capture_output=True,
                                text=True)
        [info] = json.loads(packed.stdout)
        if not info["version"].startswith("5."):
            print(f"vendor-swagger-ui: {args.spec} is {info['version']}; the page is written for 5.x", file=sys.stderr)
            return 1
        with tarfile.open(work / info["filename"]) as tar:
            tar.extractall(work, filter="data")  # refuses absolute paths and links out of the directory
        dest.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(work / "package" / name, dest / name)
    sums = "\n".join(f"    {hashlib.sha256((dest / n).read_bytes()).hexdigest()}  {n}" for n in FILES)
    (dest / "VERSION").write_text(info["version"] + "\n")
    (dest / "README.md").write_text(README.format(version=info["version"], integrity=info["integrity"],
                                                  files=", ".join(f"`{n}`" for n in FILES), sums=sums))
    print(f"vendored swagger-ui-dist {info['version']} into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
