"""Each example ships a ContinuableJob the API accepts, running the script beside it."""

from __future__ import annotations

import pytest

from continuable.api import ContinuableJob

from .conftest import EXAMPLES, NAMES, ROOT, manifest


@pytest.mark.parametrize("name", NAMES)
def test_manifest_is_a_valid_continuable_job(name: str) -> None:
    job = ContinuableJob.model_validate(manifest(name))
    assert job.metadata["name"] == name
    assert job.spec.checkpoint.interval_seconds == 1


@pytest.mark.parametrize("name", NAMES)
def test_manifest_runs_the_script_beside_it_from_the_repo_root(name: str) -> None:
    container = manifest(name)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", f"examples/{name}/job.py"]
    assert (ROOT / container["command"][1]).is_file()
    assert container["image"].startswith("ghcr.io/example/continuable-examples:")


@pytest.mark.parametrize("name", NAMES)
def test_each_example_has_a_readme(name: str) -> None:
    readme = (EXAMPLES / name / "README.md").read_text()
    assert f"examples/{name}/job.py" in readme
    assert f"examples/{name}/" in readme
