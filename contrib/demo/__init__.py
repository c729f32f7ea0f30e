"""The bundled sample app of ``rpahub demo``."""

import io
import zipfile
from pathlib import Path

SAMPLE = Path(__file__).parent / "sample"


def sample_package() -> bytes:
    """The sample Robot Framework app as the zip an executor downloads."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(SAMPLE.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(SAMPLE).as_posix())
    return buf.getvalue()
