"""Small DICOM files for the image and report tests, each with a made-up patient in its header:
shared by ``test_images.py``, ``test_reports_data.py`` and ``test_report_import.py``, which check that
none of ``SECRETS`` reaches anything the workbench returns, logs, says or writes."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

# The birth date is malformed on purpose: a reader that parsed it would warn, quoting it.
PATIENT = {"PatientName": "YAMADA^TARO", "PatientID": "PID-998877", "PatientBirthDate": "1950XX01",
           "InstitutionName": "KASUMIGASEKI HOSPITAL", "AccessionNumber": "ACC-55443"}
SECRETS = ("YAMADA", "TARO", "PID-998877", "1950XX01", "KASUMIGASEKI", "ACC-55443")


def dicom_file(path: Path, pixels, *, photometric: str = "MONOCHROME2", bits_stored: int = 12,
               window: tuple[float, float] | None = None, rescale: tuple[float, float] | None = None,
               with_pixels: bool = True, view: str = "PA", syntax=ExplicitVRLittleEndian,
               pixel_bytes: bytes | None = None) -> Path:
    """A DICOM file of ``pixels`` (rows × columns, or frames × rows × columns), 16 bits allocated."""
    pixels = np.asarray(pixels, dtype=np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "2.25.1234567"
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    logger = logging.getLogger("pydicom")
    logger.disabled = True                         # pydicom warns and logs the malformed birth date on writing
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, value in PATIENT.items():
                setattr(ds, name, value)
    finally:
        logger.disabled = False
    ds.Modality, ds.ViewPosition = "DX", view
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if with_pixels:
        ds.PixelData = pixel_bytes if pixel_bytes is not None else pixels.tobytes()
        if pixel_bytes is not None:
            ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path
