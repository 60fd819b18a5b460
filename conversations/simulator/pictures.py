"""Real pictures for the simulated image models: PNGs of the asked shape and size class.

Gemini's sizes: "1K" is about a megapixel (1024×1024 at 1:1, 1344×768 at
16:9), "2K" twice the sides, "4K" four times. A picture can be padded with
noise to a given size in bytes, to play a relay's multi-megabyte answers.
"""

from __future__ import annotations

import base64
import io
import math
import os

SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}
# Gemini's image-output tokens per picture, by size class (simulated).
OUTPUT_TOKENS = {"1K": 1290, "2K": 1680, "4K": 2520}


def picture_size(aspect_ratio: str, image_size: str) -> tuple[int, int]:
    """(width, height) of a picture of about SIDE² pixels, sides multiples of 16."""
    wide, _, high = (aspect_ratio or "1:1").partition(":")
    try:
        ratio = int(wide) / int(high)
    except (ValueError, ZeroDivisionError):
        ratio = 1.0
    area = SIDE.get(image_size, 1024) ** 2
    width = max(16, round(math.sqrt(area * ratio) / 16) * 16)
    height = max(16, round(math.sqrt(area / ratio) / 16) * 16)
    return width, height


def make_png(width: int, height: int, *, at_least: int = 0) -> bytes:
    """A PNG of a soft gradient; with `at_least`, noise rows fill it to about that many bytes."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90)
                                .resize((width, height)), Image.new("L", (width, height), 160)))
    if at_least:
        rows = min(height, math.ceil(at_least / (width * 3)))
        noise = Image.frombytes("RGB", (width, rows), os.urandom(width * rows * 3))
        image.paste(noise, (0, 0))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
