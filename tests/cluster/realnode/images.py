"""The real node's images: built (or found in the cache) by build_images.sh, imported into
containerd's `k8s.io` namespace, where the kubelet looks for them."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_images.sh"
# A second tag of the job image: a template that switches to it is a rollout to "new code".
ROLLOUT_SUFFIX = "-rollout"


class ImagesError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    name: str  # e.g. localhost/continuable-job:1f2e...
    archive: Path

    @property
    def repository(self) -> str:
        return self.name.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.name.rpartition(":")[2]

    @property
    def rollout_name(self) -> str:
        return self.name + ROLLOUT_SUFFIX


@dataclass(frozen=True)
class Images:
    operator: Image
    job: Image
    pause: Image

    @classmethod
    def from_manifest(cls, path: Path) -> Images:
        data = json.loads(path.read_text())
        return cls(
            **{
                role: Image(data[role]["name"], Path(data[role]["archive"]))
                for role in ("operator", "job", "pause")
            }
        )


def build(timeout: float = 1800.0) -> Images:
    """Run build_images.sh: a no-op when every image is cached, a build when an input changed."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise ImagesError(
            f"{BUILD_SCRIPT} failed ({result.returncode}); `make node-images` shows why:\n"
            + "\n".join(result.stderr.splitlines()[-20:])
        )
    return Images.from_manifest(Path(result.stdout.strip().splitlines()[-1]))


def import_all(images: Images, socket: Path) -> None:
    """Import each archive with `ctr`, then tag the job image a second time for rollouts."""
    ctr = ["ctr", "--address", str(socket), "--namespace", "k8s.io"]
    for image in (images.pause, images.operator, images.job):
        _ctr([*ctr, "images", "import", str(image.archive)])
    _ctr([*ctr, "images", "tag", "--force", images.job.name, images.job.rollout_name])


def _ctr(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise ImagesError(f"{' '.join(argv)}: {result.stderr.strip()}")
