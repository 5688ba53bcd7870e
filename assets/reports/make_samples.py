"""Makes the synthetic chest X-ray samples in this folder: no patient, no scanner, only geometry.

    python assets/reports/make_samples.py [OUT_DIR]        # default: this folder

Each image is drawn the same way every time (no random numbers): a dark background, the soft tissue
of the chest, two air-filled lung fields above the diaphragm domes, the spine and mediastinum, a heart
shadow, rib arcs, clavicles and a few vessel lines, blurred like a radiograph. Shown as radiographs
are: the patient's right on the image's left. Variants change one thing each:

    normal_pa.png                       heart 160 px of a 352 px chest (cardiothoracic ratio 0.45)
    cardiomegaly_pa.png                 heart 220 px (ratio 0.63)
    effusion_left_pa.png                fluid in the left (image right) base: a meniscus, the angle blunted
    consolidation_right_lower_pa.png    a patchy opacity in the right lower lung field
    rib_fracture_right_pa.png           the right 6th rib broken, its lateral part stepped down
    normal_pa_tiny.dcm                  the normal image at 128 × 128, 12-bit MONOCHROME1 DICOM whose header
                                        holds a made-up patient (YAMADA^TARO): the tests prove it never leaks

``sample_ja.jsonl`` holds the findings written for each (Japanese and English).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SIZE = 512
Y, X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
CHEST_LEFT, CHEST_RIGHT = 80, 432               # inner edges of the rib cage: 352 px across


def _ellipse(cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((X - cx) / ax) ** 2 + ((Y - cy) / ay) ** 2 <= 1.0


def _lungs() -> tuple[np.ndarray, np.ndarray]:
    """(right lung, left lung) masks: upper ellipses cut by the diaphragm domes (the right one higher)."""
    right = _ellipse(168, 255, 88, 175) & (Y < 400 - 55 * (1 - ((X - 175) / 95) ** 2))
    left = _ellipse(344, 262, 88, 175) & (Y < 410 - 50 * (1 - ((X - 337) / 95) ** 2))
    return right & (X > CHEST_LEFT), left & (X < CHEST_RIGHT)


def _ribs(broken: bool) -> np.ndarray:
    """Posterior rib arcs (the upper half of wide ellipses centred on the spine), 5 px thick."""
    ribs = np.zeros((SIZE, SIZE), dtype=bool)
    for i in range(9):
        cy = 150 + 30 * i
        for side in (-1, 1):
            arc_y = cy - 70 * np.sqrt(np.clip(1 - ((X - 256) / 190) ** 2, 0, 1))
            band = (np.abs(Y - arc_y) < 2.5) & ((X - 256) * side > 12) & (np.abs(X - 256) < 186)
            if broken and i == 5 and side == -1:       # the right 6th rib: a gap, the lateral part stepped down
                stepped = (np.abs(Y - arc_y - 7) < 2.5) & (X < 124) & (X > 70)
                band = (band & (X > 134)) | stepped
            ribs |= band
    return ribs


def _clavicles() -> np.ndarray:
    out = np.zeros((SIZE, SIZE), dtype=bool)
    for x0, y0, x1, y1 in ((110, 95, 238, 128), (402, 95, 274, 128)):
        t = np.clip(((X - x0) * (x1 - x0) + (Y - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
        out |= np.hypot(X - (x0 + t * (x1 - x0)), Y - (y0 + t * (y1 - y0))) < 5
    return out


def _vessels() -> np.ndarray:
    """Faint lines fanning out from each hilum."""
    out = np.zeros((SIZE, SIZE), dtype=bool)
    for hx, direction in ((215, -1), (297, 1)):
        for angle in np.linspace(-1.1, 1.1, 7):
            dx, dy = direction * np.cos(angle), np.sin(angle)
            t = np.clip((X - hx) * dx + (Y - 265) * dy, 0, 110)
            out |= np.hypot(X - (hx + t * dx), Y - (265 + t * dy)) < 1.5
    return out


def chest(*, heart_width: int = 160, effusion: bool = False, consolidation: bool = False,
          broken_rib: bool = False) -> Image.Image:
    """One synthetic PA chest radiograph, 512 × 512 grey (white = dense)."""
    image = np.full((SIZE, SIZE), 14.0)
    image[_ellipse(256, 300, 236, 262)] = 92.0                     # soft tissue of the chest wall
    right, left = _lungs()
    image[right | left] = 38.0
    image[_vessels() & (right | left)] += 14.0
    heart_cx = 190 + heart_width / 2                               # the heart's right border stays put
    image[_ellipse(heart_cx, 345, heart_width / 2, 72 + (heart_width - 160) / 6)] = 128.0
    image[(np.abs(X - 256) < 17) & (Y > 60)] = 150.0               # spine through the mediastinum
    if effusion:                                                   # a meniscus rising to the lateral wall
        rise = np.clip((X - 290) / 140, 0, 1) ** 2
        image[left & (Y > 392 - 95 * rise)] = 92.0
    if consolidation:                                              # a patchy opacity: a lobed blob, textured
        blob = np.exp(-(((X - 158) / 44) ** 2 + ((Y - 318) / 34) ** 2))
        texture = 0.75 + 0.25 * np.sin(X / 6.0) * np.sin(Y / 7.0)
        image += (62.0 * blob * texture) * right
    image[_ribs(broken_rib) & (_ellipse(256, 300, 236, 262))] += 34.0
    image[_clavicles()] += 45.0
    grey = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    return grey.filter(ImageFilter.GaussianBlur(2.2))


VARIANTS = {
    "normal_pa.png": {},
    "cardiomegaly_pa.png": {"heart_width": 220},
    "effusion_left_pa.png": {"effusion": True},
    "consolidation_right_lower_pa.png": {"consolidation": True},
    "rib_fracture_right_pa.png": {"broken_rib": True},
}


def tiny_dicom(image: Image.Image, path: Path) -> None:
    """The image at 128 × 128 as 12-bit MONOCHROME1 (low values white) DICOM with a made-up patient."""
    from pydicom.dataset import FileMetaDataset, Dataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

    grey = np.asarray(image.resize((128, 128), Image.Resampling.BICUBIC), dtype=np.uint16)
    stored = (4095 - grey * 16).astype(np.uint16)                # MONOCHROME1: dense (white) is low
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "2.25.302208470137040930186406733513851420001"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "2.25.302208470137040930186406733513851420002"
    ds.SeriesInstanceUID = "2.25.302208470137040930186406733513851420003"
    # A made-up patient: the tests check that none of this reaches anything the workbench returns or writes.
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "YAMADA^TARO", "FAKE-0001", "19500101", "M"
    ds.InstitutionName, ds.StudyDate, ds.AccessionNumber = "SYNTHETIC HOSPITAL", "20240101", "FAKEACC01"
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "DX", "PA", "CHEST"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 128, 128, 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = 0, 1, 2048, 4096
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def main(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, options in VARIANTS.items():
        chest(**options).save(out / name, optimize=True)
        written.append(out / name)
    tiny_dicom(chest(), out / "normal_pa_tiny.dcm")
    written.append(out / "normal_pa_tiny.dcm")
    return written


if __name__ == "__main__":
    for p in main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent):
        print(f"{p}  {p.stat().st_size:,} bytes")
