"""One image file in, RGB pixels out: PNG, JPEG and DICOM decoded as a radiologist sees them, every bad
file refused with a UserError that names it, and no DICOM patient field in anything returned or said."""
from __future__ import annotations

import io
import json
import logging
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pipelines.core.errors import UserError
from pipelines.tasks import images
from pipelines.tasks.images import file_pixel_hash, load_image, pixel_hash, read_image
from tests.pipelines.dicom_files import SECRETS, dicom_file


def grey(img: Image.Image) -> list[list[int]]:
    """The red channel (equal to green and blue for a grey image) as nested lists."""
    arr = np.asarray(img)
    assert img.mode == "RGB" and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all()
    return arr[..., 0].tolist()


def refusal(path, **kwargs) -> UserError:
    with pytest.raises(UserError) as exc:
        load_image(path, **kwargs)
    assert str(path) in exc.value.problem                      # every refusal names the file
    return exc.value


def test_png_grey_and_16_bit_become_rgb(tmp_path):
    Image.fromarray(np.array([[0, 50], [200, 255]], dtype=np.uint8)).save(tmp_path / "a.png")
    assert grey(load_image(tmp_path / "a.png")) == [[0, 50], [200, 255]]
    # 16-bit: the pixels' own range spans 0–255: 1000/4000·255 = 63.75 → 64, 2000 → 127.5 → 128.
    Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)).save(tmp_path / "b.png")
    assert grey(load_image(tmp_path / "b.png")) == [[0, 64], [128, 255]]
    image, info = read_image(tmp_path / "b.png")
    assert info == {"format": "PNG", "width": 2, "height": 2}


def test_jpeg_and_resizing(tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "a.jpg", quality=95)
    image = load_image(tmp_path / "a.jpg")
    assert image.size == (40, 30) and abs(int(np.asarray(image).mean()) - 128) <= 1
    assert load_image(tmp_path / "a.jpg", size=512).size == (512, 512)       # JRadiEvo's square
    assert load_image(tmp_path / "a.jpg", size=(20, 10)).size == (20, 10)
    for bad in (0, -5, (1, 2, 3), 9000, True):
        assert refusal_size(tmp_path / "a.jpg", bad).code == "image.bad_size"


def refusal_size(path, size) -> UserError:
    with pytest.raises(UserError) as exc:
        load_image(path, size=size)
    return exc.value


def test_png_text_chunks_do_not_come_back(tmp_path):
    text = PngImagePlugin.PngInfo()
    text.add_text("Patient", "YAMADA^TARO")
    Image.new("L", (4, 4), 9).save(tmp_path / "t.png", pnginfo=text)
    assert Image.open(tmp_path / "t.png").info["Patient"] == "YAMADA^TARO"
    assert load_image(tmp_path / "t.png").info == {}


def test_dicom_monochrome2_and_monochrome1_inverted(tmp_path):
    # No window: the pixels' own range. 100/400·255 = 63.75 → 64, 200 → 127.5 → 128.
    values = [[0, 100], [200, 400]]
    two = load_image(dicom_file(tmp_path / "m2.dcm", values))
    one = load_image(dicom_file(tmp_path / "m1.dcm", values, photometric="MONOCHROME1"))
    assert grey(two) == [[0, 64], [128, 255]]
    assert grey(one) == [[255, 191], [127, 0]]                 # low values are white in MONOCHROME1


def test_dicom_window_and_rescale_are_applied(tmp_path):
    # 8 bits stored, window 100.5/101: ≤ 50 black, > 150 white, between ((x − 100)/100 + 0.5)·255:
    # 75 → 63.75 → 64, 100 → 127.5 → 128.
    f = dicom_file(tmp_path / "w.dcm", [[0, 75], [100, 200]], bits_stored=8, window=(100.5, 101))
    assert grey(load_image(f)) == [[0, 64], [128, 255]]
    # Slope 2, intercept −100 first: stored 50, 100, 150, 200 → 0, 100, 200, 300. The window 150.5/201
    # maps onto the rescaled range −100…410 (510 wide): 0 → −100, 100 → 27.5, 200 → 282.5, 300 → 410;
    # in 8 bits: 0, 127.5/510·255 = 63.75 → 64, 382.5/510·255 = 191.25 → 191, 255.
    f = dicom_file(tmp_path / "r.dcm", [[50, 100], [150, 200]], bits_stored=8, window=(150.5, 201), rescale=(2, -100))
    assert grey(load_image(f)) == [[0, 64], [191, 255]]


def test_dicom_multi_frame_gives_its_first_frame(tmp_path):
    frames = [[[0, 10], [20, 30]], [[30, 20], [10, 0]], [[5, 5], [5, 5]]]
    image, info = read_image(dicom_file(tmp_path / "mf.dcm", frames))
    assert grey(image) == [[0, 85], [170, 255]]
    assert info["NumberOfFrames"] == 3 and info["Rows"] == 2 and info["width"] == 2


def test_dicom_patient_fields_never_come_back(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        image, info = read_image(dicom_file(tmp_path / "p.dcm", [[0, 1], [2, 3]], photometric="MONOCHROME1"))
        errors = [refusal(dicom_file(tmp_path / "np.dcm", [[0]], with_pixels=False)),
                  refusal(dicom_file(tmp_path / "pc.dcm", [[0]], photometric="PALETTE COLOR")),
                  refusal(dicom_file(tmp_path / "cut.dcm", [[0, 1], [2, 3]], pixel_bytes=b"\x00\x01"))]
    assert info == {"format": "DICOM", "width": 2, "height": 2, "Modality": "DX", "ViewPosition": "PA",
                    "PhotometricInterpretation": "MONOCHROME1", "Rows": 2, "Columns": 2, "BitsStored": 12}
    assert [e.code for e in errors] == ["image.dicom_no_pixels", "image.dicom_photometric", "image.corrupt"]
    shown = json.dumps(info) + "".join(str(e) + json.dumps(e.params) for e in errors) + caplog.text \
        + "".join(str(w.message) for w in said) + repr(image.info)
    assert not [s for s in SECRETS if s in shown], shown
    assert b"YAMADA" in (tmp_path / "p.dcm").read_bytes()     # the name was there to leak


def test_a_name_in_a_code_field_is_not_returned(tmp_path):
    _, info = read_image(dicom_file(tmp_path / "v.dcm", [[0, 1]], view="YAMADA TARO"))
    assert "ViewPosition" not in info and "YAMADA" not in json.dumps(info)
    _, info = read_image(dicom_file(tmp_path / "w.dcm", [[0, 1]], view="AP AXIAL"))
    assert info["ViewPosition"] == "AP AXIAL"


def test_compressed_dicom_that_cannot_be_decoded(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless
    f = dicom_file(tmp_path / "j2k.dcm", [[0, 1], [2, 3]], syntax=JPEG2000Lossless,
                   pixel_bytes=encapsulate([b"not a codestream"]))
    exc = refusal(f)
    assert exc.code == "image.dicom_compressed" and "JPEG 2000" in exc.problem and "gdcmconv" in exc.fix


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width × height (8-bit grey), then IEND: a bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) \
        + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch):
    for w, h in ((60_000, 60_000), (8_000, 8_000)):      # over Pillow's own limit; over ours only
        (tmp_path / "bomb.png").write_bytes(png_header_only(w, h))
        exc = refusal(tmp_path / "bomb.png")
        assert exc.code == "image.too_many_pixels" and exc.params["limit"] == images.MAX_IMAGE_PIXELS
    Image.new("L", (20, 20)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)     # Pillow's limit, set lower, is respected
    assert refusal(tmp_path / "small.png").params == {"path": str(tmp_path / "small.png"), "pixels": "20×20",
                                                       "limit": 300}
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10)
    assert refusal(dicom_file(tmp_path / "big.dcm", [[0] * 4] * 4)).code == "image.too_many_pixels"


def test_file_size_cap(tmp_path, monkeypatch):
    Image.new("L", (64, 64), 3).save(tmp_path / "a.png")
    monkeypatch.setattr(images, "MAX_IMAGE_FILE_BYTES", 50)
    assert refusal(tmp_path / "a.png").code == "image.file_too_large"


def test_truncated_and_non_image_files(tmp_path):
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 40).save(buf, "JPEG")
    for name, data in (("cut.jpg", buf.getvalue()[:600]), ("cut.png", _png_bytes()[:300])):
        (tmp_path / name).write_bytes(data)
        exc = refusal(tmp_path / name)
        assert exc.code == "image.truncated" and "again" in exc.fix
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    Image.new("L", (4, 4)).save(tmp_path / "anim.gif")
    assert refusal(tmp_path / "notes.png").code == "image.not_an_image"
    assert refusal(tmp_path / "anim.gif").code == "image.not_an_image"          # PNG, JPEG, DICOM only


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 40).save(buf, "PNG")
    return buf.getvalue()


def test_what_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")                 # opening it would block for ever
    assert refusal(tmp_path / "pipe.png").code == "files.not_regular"
    (tmp_path / "dir.png").mkdir()
    assert refusal(tmp_path / "dir.png").code == "image.is_folder"
    assert refusal(tmp_path / "gone.png").code == "image.missing"


def test_pixel_hash_follows_the_pixels_not_the_file(tmp_path):
    values = np.array([[0, 17], [200, 255]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "a.png")
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "another file, the same picture")
    Image.fromarray(values).save(tmp_path / "b.png", pnginfo=text)
    # The same values as 8-bit DICOM without a window: 0…255 already spans 0–255.
    dcm = dicom_file(tmp_path / "c.dcm", values, bits_stored=8)
    Image.fromarray(values[::-1].copy()).save(tmp_path / "d.png")
    hashes = [file_pixel_hash(tmp_path / n) for n in ("a.png", "b.png")] + [file_pixel_hash(dcm)]
    assert len(set(hashes)) == 1 and len(hashes[0]) == 64
    assert file_pixel_hash(tmp_path / "d.png") != hashes[0]
    assert pixel_hash(load_image(tmp_path / "a.png", size=4)) != hashes[0]       # resized: other pixels
