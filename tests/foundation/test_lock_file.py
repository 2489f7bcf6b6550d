"""requirements.lock holds every runtime pin of requirements.txt, at the same version, with hashes."""

import re
from pathlib import Path

BASE = Path(__file__).resolve().parents[2]


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#\\]+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_every_runtime_pin_is_locked_at_the_same_version_with_hashes():
    wanted = pins((BASE / "requirements.txt").read_text())
    lock = (BASE / "requirements.lock").read_text()
    locked = pins(lock)
    assert wanted, "requirements.txt has pins"
    mismatched = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert mismatched == {}, f"run `make lock`: {mismatched}"
    body = "\n".join(line for line in lock.splitlines() if not line.startswith("#"))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", body)
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    assert "file://" not in lock and "/opt/" not in lock  # no machine-local index in the lock


def test_the_image_installs_from_the_lock_with_hashes_required():
    dockerfile = (BASE / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    assert "-r requirements.txt" not in dockerfile
