"""Whether an image file's bytes were cut short (a download or copy stopped half-way).

OpenCV decodes a JPEG cut inside its image data into a picture with a grey bottom, and some
versions do the same for a PNG, instead of refusing it; such a file must not pass as whole.
"""

from __future__ import annotations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START, _JPEG_SCAN, _JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def cut_short(data: bytes) -> bool:
    """A PNG without an IEND chunk after its image data, or a JPEG without an end-of-image marker
    after its last scan. Bytes some tools append after the end do not count against a file."""
    if data.startswith(PNG_SIGNATURE):
        return data.rfind(b"IEND") < data.rfind(b"IDAT")
    if data.startswith(_JPEG_START):
        return data.rfind(_JPEG_END) < data.rfind(_JPEG_SCAN)
    return False
