"""Kubernetes ConfigMap volumes as the kubelet writes them, for tests of file watching."""

from __future__ import annotations

from pathlib import Path


def publish(root: Path, files: dict[str, str], version: str) -> None:
    """Publish ``files`` in ``root`` as a ConfigMap update does: the files in a new
    ``..<version>`` folder, then the ``..data`` link swapped to it by one rename; each
    file appears at the top as a link through ``..data``."""
    folder = root / f"..{version}"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    (root / "..data_tmp").symlink_to(folder.name)
    (root / "..data_tmp").rename(root / "..data")
