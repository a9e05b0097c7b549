"""Model inputs from files: ``.npy`` arrays and PNG/BMP/JPEG images.

``.npy``: the array must have exactly the dtype and shape of the model input (no casting,
no added batch dimension).

Images (``.png``, ``.bmp``, ``.jpg``/``.jpeg``, ``.gif``, ``.tif``/``.tiff``, ``.ppm``/``.pgm``)
are turned into the model input by one fixed rule:

1. The model input must be ``[1, H, W, C]`` (NHWC) or ``[1, C, H, W]`` (NCHW) with C = 1 or 3;
   NHWC is assumed when the last dimension is 1 or 3, otherwise NCHW.
2. The image is converted with Pillow to grayscale (``"L"``: L = R*299/1000 + G*587/1000 +
   B*114/1000) when C = 1, else to RGB (an alpha channel is dropped).
3. If its size is not W x H it is resized to exactly W x H with Pillow's ``Image.resize(...,
   Image.Resampling.BILINEAR)`` (aspect ratio not kept, no crop; when shrinking Pillow's
   bilinear filter averages over the whole footprint).
4. Each 8-bit pixel p (0..255) becomes an input value by the image mode:

   * ``real`` (default): the pixel is the real value r = p / 255 in [0, 1], quantized with
     the input's scale and zero point: q = clamp(round(r / scale) + zero_point) to the input
     type's range, round half away from zero, computed in float64. A float32 input gets r.
   * ``raw``: q = p - 128 for an int8 input, q = p for uint8 (scale and zero point ignored).
   * ``bytes``: the byte copied as it is: q = p if p < 128 else p - 256 for int8 (what
     tflite-micro's person_detection test does), q = p for uint8.
"""
from __future__ import annotations

import os
import tokenize

import numpy as np

from .arith import round_half_away
from .ir import InputError

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_MODES = ("real", "raw", "bytes")

_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
           np.dtype(np.int16): (-32768, 32767), np.dtype(np.int32): (-2**31, 2**31 - 1)}


def _describe(info, k: int | None = None) -> str:
    label = f"input {k} " if k is not None else "input "
    return f"the model's {label}'{info.name}' ({np.dtype(info.dtype)} {list(info.shape)})"


def load_input(path: str | os.PathLike, info, image_mode: str = "real",
               k: int | None = None) -> np.ndarray:
    """Read one model input from ``path`` for the input tensor ``info`` (a TensorInfo)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        return load_npy(path, info, k)
    if ext in IMAGE_EXTENSIONS:
        return load_image(path, info, image_mode, k)
    raise InputError(f"{path}: unknown input format '{ext or '(no extension)'}' (expected .npy "
                     f"or an image: {', '.join(IMAGE_EXTENSIONS)})")


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not an input file")


def read_npy(path: str, mmap: bool = False) -> np.ndarray:
    """The array in the ``.npy`` file ``path``, after checking its header against the file.

    Nothing is allocated before the header's shape and dtype are shown to match the file's
    size, so a 100-byte file claiming shape (100000, 100000, 100000) is refused at once.
    Object arrays (pickled Python objects) are refused: hwsim never unpickles. ``mmap`` maps
    the data read-only instead of reading it.
    """
    _check_file(path)
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InputError(f"{path}: empty file (not a .npy array; write one with "
                                 f"numpy.save)")
            try:
                version = fmt.read_magic(f)
            except ValueError:
                raise InputError(f"{path}: not a numpy .npy array file (no NumPy header; write "
                                 f"arrays with numpy.save)") from None
            if version not in ((1, 0), (2, 0)):
                raise InputError(f"{path}: not a numpy .npy array file (format version "
                                 f"{version[0]}.{version[1]}; numpy.save writes 1.0)")
            try:
                shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                         else fmt.read_array_header_2_0(f))
            except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as e:
                # numpy parses the header dict with tokenize + ast.literal_eval
                raise InputError(f"{path}: corrupt .npy header "
                                 f"({' '.join(str(e).split())[:80]})") from None
            data_bytes = size - f.tell()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if dtype.hasobject:
        raise InputError(f"{path}: holds Python objects (dtype {dtype}), which hwsim does not "
                         f"unpickle; save a numeric array")
    need = dtype.itemsize
    for d in shape:
        need *= int(d)
    if need != data_bytes:
        raise InputError(f"{path}: the header declares shape {tuple(int(d) for d in shape)} of "
                         f"{dtype} ({need:,} bytes) but the file holds {data_bytes:,} bytes of "
                         f"data (truncated or corrupt)")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"{path}: not a numpy .npy array file "
                         f"({' '.join(str(e).split())[:80]})") from None


def load_npy(path: str, info, k: int | None = None) -> np.ndarray:
    x = read_npy(path)
    want_dtype, want_shape = np.dtype(info.dtype), tuple(info.shape)
    if x.dtype != want_dtype:
        raise InputError(f"{path}: dtype {x.dtype}, but {_describe(info, k)} needs {want_dtype}")
    if tuple(x.shape) != want_shape:
        raise InputError(f"{path}: shape {list(x.shape)}, but {_describe(info, k)} needs "
                         f"{list(want_shape)}")
    return np.ascontiguousarray(x)


def image_layout(info, path: str = "image") -> tuple[str, int, int, int]:
    """('NHWC' | 'NCHW', H, W, C) for an image-fed input, else InputError."""
    shape = tuple(info.shape)
    if len(shape) == 4 and shape[0] == 1:
        if shape[3] in (1, 3):
            return "NHWC", shape[1], shape[2], shape[3]
        if shape[1] in (1, 3):
            return "NCHW", shape[2], shape[3], shape[1]
    raise InputError(f"{path}: an image can only feed a [1, H, W, 1|3] (NHWC) or [1, 1|3, H, W] "
                     f"(NCHW) input; {_describe(info)} is not one: give a .npy file")


def load_image(path: str, info, image_mode: str = "real", k: int | None = None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    _check_file(path)
    layout, h, w, c = image_layout(info, path)
    _check_mode(path, info, image_mode, k)
    try:
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the image ({e.strerror or e})") from None
    return pixels_to_input(pixels, info, image_mode, path, k)


def _check_mode(path: str, info, image_mode: str, k: int | None) -> None:
    if image_mode not in IMAGE_MODES:
        raise InputError(f"unknown image mode {image_mode!r}; one of {', '.join(IMAGE_MODES)}")
    dt = np.dtype(info.dtype)
    if image_mode in ("raw", "bytes") and dt not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise InputError(f"{path}: image mode '{image_mode}' needs an int8 or uint8 input, "
                         f"{_describe(info, k)} is not; use --image-mode real")
    if image_mode == "real" and dt != np.dtype(np.float32):
        if dt not in _RANGES:
            raise InputError(f"{path}: cannot feed an image to {_describe(info, k)}")
        if len(info.scales) == 0:
            raise InputError(f"{path}: {_describe(info, k)} has no quantization scale, so image "
                             f"mode 'real' cannot map pixels to it; use --image-mode raw or "
                             f"bytes")
        if len(info.scales) > 1:
            raise InputError(f"{path}: {_describe(info, k)} is quantized per channel; image "
                             f"mode 'real' needs one scale")


def pixels_to_input(pixels: np.ndarray, info, image_mode: str = "real", path: str = "image",
                    k: int | None = None) -> np.ndarray:
    """uint8 pixels [H, W] or [H, W, C] (already W x H of the input) -> the model input array."""
    _check_mode(path, info, image_mode, k)
    layout, h, w, c = image_layout(info, path)
    p = np.asarray(pixels, dtype=np.uint8)
    if p.ndim == 2:
        p = p[:, :, None]
    if p.shape != (h, w, c):
        raise InputError(f"{path}: pixels of shape {list(p.shape)}, expected {[h, w, c]}")
    dt = np.dtype(info.dtype)
    if image_mode == "real":
        r = p.astype(np.float64) / 255.0
        if dt == np.dtype(np.float32):
            x = r.astype(np.float32)
        else:
            scale, zp = float(info.scales[0]), int(info.zero_points[0])
            v = r / scale
            q = round_half_away(v) + zp
            lo, hi = _RANGES[dt]
            x = np.clip(q, lo, hi).astype(dt)
    elif image_mode == "raw":
        x = (p.astype(np.int16) - 128).astype(np.int8) if dt == np.dtype(np.int8) else p.copy()
    else:  # bytes
        x = p.view(np.int8).copy() if dt == np.dtype(np.int8) else p.copy()
    if layout == "NCHW":
        x = np.transpose(x, (2, 0, 1))
    return np.ascontiguousarray(x.reshape(info.shape))


def random_input(info, seed: int = 0, k: int = 0) -> np.ndarray:
    """Seeded uniform random integers over input ``k``'s whole type range (floats: N(0, 1)).

    The generator is ``numpy.random.default_rng([seed, k])``.
    """
    if int(seed) < 0:
        raise InputError(f"--random-input {seed}: the seed must be 0 or more")
    rng = np.random.default_rng([int(seed), int(k)])
    dt = np.dtype(info.dtype)
    if dt in _RANGES:
        lo, hi = _RANGES[dt]
        return rng.integers(lo, hi, size=info.shape, endpoint=True, dtype=np.int64).astype(dt)
    if dt.kind == "f":
        return rng.standard_normal(info.shape).astype(dt)
    raise InputError(f"cannot make a random value for {_describe(info)}")
