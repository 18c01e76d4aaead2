"""Load an image as a model input, with the preprocessing the shared models expect.

uint8 models get raw RGB pixels resized (bilinear) to the input size; int8 models get
``pixel - 128``. One-channel inputs get the luminance. (See ``shared/models/MANIFEST.md``.)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

from .tflite import ModelError


def load_image(path: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if len(shape) != 4:
        raise ModelError(f"an image needs an NHWC input, this one has shape {list(shape)}")
    _, h, w, c = shape
    try:
        img = Image.open(path)
        img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
    except (OSError, UnidentifiedImageError) as e:
        raise ModelError(f"cannot read image {path}: {e}") from None
    pixels = np.asarray(img, dtype=np.int16).reshape(1, h, w, c)
    if np.dtype(dtype) == np.int8:
        return (pixels - 128).astype(np.int8)
    if np.dtype(dtype) == np.uint8:
        return pixels.astype(np.uint8)
    raise ModelError(f"cannot feed an image to a {np.dtype(dtype)} input")
