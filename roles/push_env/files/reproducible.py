"""What push-env builds byte for byte the same from the same inputs: zip archives with sorted entries and one fixed
timestamp, and wheels built with the same ``SOURCE_DATE_EPOCH``. An unchanged env so keeps its version."""
from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SOURCE_DATE_EPOCH = "315532800"  # FIXED_TIME, for build backends


def write_zip(target: Path | BinaryIO, members: Iterable[tuple[str, bytes]]) -> None:
    """A deflated zip of (name, data) members, sorted by name, each dated FIXED_TIME and readable by all."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
