"""One image file in, RGB pixels out: PNG and JPEG through Pillow, DICOM through pydicom.

What a report model sees of a chest X-ray, read safely:

- **bounded**: a file over ``MAX_IMAGE_FILE_BYTES`` is refused before it is read, an image over
  ``MAX_IMAGE_PIXELS`` (or over Pillow's own ``Image.MAX_IMAGE_PIXELS``, whichever is lower) before
  it is decoded, so a decompression bomb (a few KB of PNG claiming 60,000 × 60,000 pixels) costs nothing;
- **pixels only**: a DICOM file is parsed for the pixel module and a few technical fields
  (``DICOM_INFO_FIELDS``, held to their vocabularies) and nothing else: the bytes of the patient's name,
  ID and birth date are skipped unparsed, so they are never returned, logged, warned about or put in a
  message; the returned image carries no PNG text chunks, EXIF or ICC profile either (a fresh image
  built from the pixels);
- **displayed as a radiologist sees it**: DICOM values go through the modality LUT (rescale slope and
  intercept) and then the VOI LUT or window in the header, are scaled to 8 bits, and MONOCHROME1 (where
  low values are white) is inverted; a multi-frame file gives its first frame. Without a window, and
  for 16-bit PNGs, the pixels' own minimum and maximum span 0–255;
- **one kind of error**: every problem is a UserError naming the file and what to do.

    image = load_image("assets/reports/normal_pa.png", size=512)       # 512 × 512 RGB, as JRadiEvo
    image, info = read_image("study.dcm")                               # info: Modality, ViewPosition, …
    pixel_hash(image)                                                   # the same pixels, the same hash
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pipelines.core import safe_load
from pipelines.core.errors import UserError

# A chest radiograph is 5–40 MB as uncompressed DICOM and a few MB as PNG; far more is not one image.
MAX_IMAGE_FILE_BYTES = 100_000_000
# The largest chest detectors are about 4,300 × 4,300 (18 MP); 40 MP leaves room, and decoding one
# (float64 through the LUTs) stays near 320 MB of memory.
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
# Technical DICOM fields returned with the pixels: none identifies a person.
DICOM_INFO_FIELDS = ("Modality", "ViewPosition", "PhotometricInterpretation", "Rows", "Columns", "BitsStored",
                     "NumberOfFrames")
# What decoding needs: the image pixel module (group 0028) and the pixels. Parsing only these tags is
# what leaves the patient module as skipped bytes.
_DICOM_TAGS = ["SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames",
               "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
               "WindowCenter", "WindowWidth", "VOILUTFunction", "RescaleIntercept", "RescaleSlope", "RescaleType",
               "ModalityLUTSequence", "VOILUTSequence", "PixelData", "Modality", "ViewPosition"]
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422")
# A DICOM code string (CS): capitals, digits, space, underscore, 16 at most.
_CODE_STRING = re.compile(r"[A-Z0-9 _]{0,16}")
# Returned code strings are held to what such a field says, as a sloppy writer may have put free text
# (a name, which a code string can spell: "YAMADA TARO") there: a modality is 2 to 4 capitals, a view
# position is made of these words (DICOM's defined terms and MIMIC-CXR's values).
_MODALITY = re.compile(r"[A-Z]{2,4}")
_VIEW_WORDS = {"AP", "PA", "LL", "RL", "RLD", "LLD", "RLO", "LLO", "LAO", "RAO", "LPO", "RPO", "LATERAL", "LAT",
               "AXIAL", "XTABLE", "SWIMMERS", "OBLIQUE", "LORDOTIC", "ERECT", "SUPINE", "DECUBITUS"}


def load_image(path: str | Path, *, size: int | tuple[int, int] | None = None) -> Image.Image:
    """The image at ``path`` as RGB; resized to ``size`` (an int for a square) when given."""
    return read_image(path, size=size)[0]


def read_image(path: str | Path, *, size: int | tuple[int, int] | None = None) -> tuple[Image.Image, dict]:
    """(RGB image, technical info): ``format``, the original ``width`` and ``height``, and for DICOM
    the ``DICOM_INFO_FIELDS`` present in the header."""
    target = _target_size(size)
    path = Path(path)
    data = _read_bounded(path)
    if data[128:132] == b"DICM":
        image, info = _decode_dicom(path, data)
    else:
        image, info = _decode_pillow(path, data)
    if target is not None and image.size != target:
        image = image.resize(target, Image.Resampling.BICUBIC)
    return image, info


def pixel_hash(image: Image.Image) -> str:
    """SHA-256 of the decoded pixels (mode, size and values): the same picture saved under another
    name or in another lossless format hashes the same, which is what a dev/test overlap check needs."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def file_pixel_hash(path: str | Path) -> str:
    """:func:`pixel_hash` of the file's image at its own size (as RGB)."""
    return pixel_hash(load_image(path))


def _target_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 8192 for n in pair):
        raise UserError(f"Image size {size!r} is not a width and height of 1 to 8192 pixels.",
                        "Give one number for a square (512, as JRadiEvo) or a (width, height) pair.",
                        code="image.bad_size", params={"size": str(size)})
    return pair


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, after refusing what is no regular file or is too big to be one image."""
    safe_load.regular_file(path, "image file")          # a FIFO or a device: refused before it is opened
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image file.", "Give the path of one PNG, JPEG or DICOM file.",
                        code="image.is_folder", params={"path": str(path)})
    try:
        if path.stat().st_size > MAX_IMAGE_FILE_BYTES:
            raise _too_large(path)
        with open(path, "rb") as fh:
            data = fh.read(MAX_IMAGE_FILE_BYTES + 1)    # bounded even if the file grew since it was checked
    except FileNotFoundError:
        raise UserError(f"Image file {path} does not exist.",
                        "Check the path (in a report file, images are found relative to the file's folder).",
                        code="image.missing", params={"path": str(path)}) from None
    except OSError as exc:
        raise UserError(f"Cannot read image file {path}: {exc.strerror}.", "Check the path and its permissions.",
                        code="image.unreadable", params={"path": str(path), "errno": exc.errno}) from None
    if len(data) > MAX_IMAGE_FILE_BYTES:
        raise _too_large(path)
    return data


def _too_large(path: Path) -> UserError:
    limit_mb = MAX_IMAGE_FILE_BYTES // 1_000_000
    return UserError(f"{path} is over {limit_mb} MB, more than one chest X-ray image.",
                     "Check that it is the right file; export one image (one frame) as PNG or DICOM.",
                     code="image.file_too_large", params={"path": str(path), "limit_mb": limit_mb})


def _pixel_limit() -> int:
    pillow = Image.MAX_IMAGE_PIXELS
    return MAX_IMAGE_PIXELS if pillow is None else min(MAX_IMAGE_PIXELS, int(pillow))


def _check_pixels(path: Path, width: int, height: int) -> None:
    limit = _pixel_limit()
    if width * height > limit:
        raise _too_many_pixels(path, f"{width}×{height}", limit)


def _too_many_pixels(path: Path, shown: str, limit: int) -> UserError:
    return UserError(f"{path} is an image of {shown} pixels, more than the {limit:,} this reader decodes "
                     "(a guard against decompression bombs).",
                     "Check that it is a chest X-ray; downscale a real one (to 512 × 512, say) before using it.",
                     code="image.too_many_pixels", params={"path": str(path), "pixels": shown, "limit": limit})


def _corrupt(path: Path, kind: str, detail: str = "") -> UserError:
    truncated = "truncated" in detail.lower() or "eof" in detail.lower()
    said = f" ({detail})" if detail else ""
    if truncated:
        return UserError(f"{path} is a truncated {kind} file: it ends before the image does{said}.",
                         "Copy or export the image again; the file was cut short.",
                         code="image.truncated", params={"path": str(path), "kind": kind})
    return UserError(f"{path} cannot be decoded as {kind}{said}.",
                     "Check that the file is intact (open it in an image viewer), or export it again.",
                     code="image.corrupt", params={"path": str(path), "kind": kind})


def _decode_pillow(path: Path, data: bytes) -> tuple[Image.Image, dict]:
    with warnings.catch_warnings():
        # Pillow warns between its limit and twice it; _check_pixels refuses there (our limit is the lower).
        warnings.simplefilter("ignore")
        try:
            img = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
        except Image.DecompressionBombError as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))
            raise _too_many_pixels(path, f"{int(found.group(1)):,}" if found else "too many", _pixel_limit()) from None
        except Image.UnidentifiedImageError:
            kind = "PNG" if data.startswith(b"\x89PNG") else "JPEG" if data.startswith(b"\xff\xd8") else None
            if kind:                               # the signature is there: a damaged file, not another format
                raise _corrupt(path, kind, "its header is incomplete or damaged") from None
            raise UserError(f"{path} is not a PNG, JPEG or DICOM image.",
                            "Convert it to PNG; other formats are not read. A DICOM file needs the DICOM file "
                            "header (re-save a bare data set with `dcmconv +F IN OUT`).",
                            code="image.not_an_image", params={"path": str(path)}) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _corrupt(path, "PNG or JPEG", str(exc)[:200]) from None
        _check_pixels(path, *img.size)
        info = {"format": img.format, "width": img.width, "height": img.height}
        try:
            img.load()
            img = ImageOps.exif_transpose(img)          # a phone photo of a film keeps its orientation
            rgb = _to_rgb(img)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _corrupt(path, img.format or "PNG or JPEG", str(exc)[:200]) from None
    return rgb, info


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB pixels in a fresh image (no text chunks, EXIF or ICC profile carried over)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = Image.fromarray(_to_uint8(np.asarray(img, dtype=np.float64)))
    rgb = img.convert("RGB")
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def _to_uint8(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """``values`` from [low, high] (their own minimum and maximum by default) to 0–255."""
    values = np.asarray(values, dtype=np.float64)
    low = float(values.min()) if low is None else low
    high = float(values.max()) if high is None else high
    if not high > low:                                 # a flat image: black, not a division by zero
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.clip(values, low, high) - low) * 255.0 / (high - low)
    return np.floor(scaled + 0.5).astype(np.uint8)             # halves round up: 127.5 → 128


@contextlib.contextmanager
def _quiet_pydicom():
    """No pydicom warning or log line while a file is read: such lines quote element values."""
    logger = logging.getLogger("pydicom")
    was = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = was


def _decode_dicom(path: Path, data: bytes) -> tuple[Image.Image, dict]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    with _quiet_pydicom():
        try:
            ds = pydicom.dcmread(io.BytesIO(data), specific_tags=_DICOM_TAGS)
        except MemoryError:
            raise
        except Exception:                      # pydicom's many parse errors; their text may quote the file
            raise _corrupt(path, "DICOM") from None
        if "PixelData" not in ds:
            raise UserError(f"{path} is a DICOM file without pixel data (a report, a structured "
                            "document or a header-only file).", "Give the DICOM file of the image itself.",
                            code="image.dicom_no_pixels", params={"path": str(path)})
        written = ds.get("PhotometricInterpretation")
        photometric = _code_string(written) or ("(none)" if not written else "(not a DICOM code)")
        if photometric not in _MONOCHROME + _COLOUR:
            raise UserError(f"{path} has photometric interpretation {photometric}, which this reader does not "
                            f"display (it reads {', '.join(_MONOCHROME + _COLOUR)}).",
                            "Export the image as MONOCHROME2 DICOM or as PNG.",
                            code="image.dicom_photometric", params={"path": str(path), "got": photometric})
        _check_pixels(path, _count(ds, "Columns"), _count(ds, "Rows"))
        try:
            frame = pixel_array(ds, index=0)           # a multi-frame file: its first frame only
            if photometric in _MONOCHROME:
                pixels = _grey_display(ds, frame, apply_modality_lut, apply_voi_lut, photometric)
            else:
                pixels = frame if frame.dtype == np.uint8 else _to_uint8(frame)
        except MemoryError:
            raise
        except Exception:
            syntax = ds.file_meta.get("TransferSyntaxUID")
            if syntax is not None and syntax.is_compressed:
                raise UserError(f"{path} is compressed as {syntax.name} and could not be decoded here (no decoder "
                                "for it is installed, or the data is damaged).",
                                "Save it uncompressed (e.g. `gdcmconv --raw IN OUT` or `dcmdjpeg IN OUT`), or as PNG.",
                                code="image.dicom_compressed", params={"path": str(path), "syntax": syntax.name}) from None
            raise _corrupt(path, "DICOM") from None
        info = {"format": "DICOM", "width": int(frame.shape[1]), "height": int(frame.shape[0]), **_dicom_info(ds)}
    return Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB"), info


def _grey_display(ds, frame: np.ndarray, modality_lut, voi_lut, photometric: str) -> np.ndarray:
    """Stored values → what the window shows, in 0–255 (white = dense, after MONOCHROME1's inversion)."""
    values = modality_lut(frame, ds)
    windowed = voi_lut(values, ds, index=0)
    low, high = _voi_output_range(ds, voi_lut)
    shown = _to_uint8(windowed, low, high)
    return 255 - shown if photometric == "MONOCHROME1" else shown


def _voi_output_range(ds, voi_lut) -> tuple[float | None, float | None]:
    """The range the header's VOI LUT or window maps onto (its darkest and brightest output), so the window
    the radiologist set spans 0–255; (None, None) without one: then the pixels' own range."""
    if ds.get("VOILUTSequence"):
        depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2 ** depth - 1)
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        # pydicom's own rule for the window's output range, read off by windowing the two extremes.
        low, high = voi_lut(np.array([-1e30, 1e30]), ds, index=0)
        return float(low), float(high)
    return None, None


def _count(ds, name: str) -> int:
    """A whole-number header field (Rows, Columns…), or 0 when absent or malformed (decoding then fails
    with its own message)."""
    try:
        return int(ds.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def _code_string(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text and _CODE_STRING.fullmatch(text) else None


def _dicom_info(ds) -> dict:
    """The whitelisted technical fields present in the header, as plain str and int."""
    info = {}
    for name in DICOM_INFO_FIELDS:
        value = ds.get(name)
        if value is None or value == "":
            continue
        if name in ("Rows", "Columns", "BitsStored", "NumberOfFrames"):
            if _count(ds, name):
                info[name] = _count(ds, name)
        elif (code := _code_string(value)) is None:
            continue
        elif (name == "Modality" and _MODALITY.fullmatch(code) or name == "PhotometricInterpretation"
              or name == "ViewPosition" and set(code.split()) <= _VIEW_WORDS):
            info[name] = code
    return info
