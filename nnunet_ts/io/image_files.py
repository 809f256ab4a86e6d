"""Whole-file checks of image files, because SimpleITK reads some damaged files without error.

SimpleITK (ITK 5) fills the missing voxels of a truncated ``.nii`` or ``.nii.gz`` with zeros and
reads a compressed ``.mha`` whose data fail to decompress as zeros too, with no exception: a CT cut
short by an interrupted copy would silently become a scan of air. Before an image is read, its file
is checked against its own header:

=========================== ===========================================================================
NIfTI ``.nii``              file size >= ``vox_offset`` + voxels x bytes per voxel (header read by nibabel)
gzip (``.nii.gz``, NRRD     the stream is decompressed to its end: a cut stream, a bad CRC-32 or length
``encoding: gzip``)         field fail; the decompressed bytes must hold every voxel
MetaImage ``.mha``/``.mhd`` raw data: bytes after the header (or of the ``ElementDataFile``) >= voxels x
                            bytes; ``CompressedData``: the zlib stream decompresses completely (Adler-32)
                            to exactly voxels x bytes
NRRD ``.nrrd``/``.nhdr``    raw data: bytes after the header (or of the ``data file``) >= voxels x bytes;
                            gzip / bzip2 data: decompressed to the end as above
=========================== ===========================================================================

Uncompressed data carry no checksum: a byte changed in place (same size) cannot be detected there.
Other formats are left to SimpleITK. Cost: one extra decompression of compressed files (see
docs/robustness.md for the measured time on a 512 x 512 x 300 CT), once per file and process: a file
verified before with the same path, inode, size and modification time is not decompressed again.
"""
from __future__ import annotations

import bz2
import time
from collections.abc import Callable
from pathlib import Path

from isal import isal_zlib  # ISA-L: zlib's streams and checksums, about twice as fast

from nnunet_ts.errors import InputError

_CHUNK = 1 << 20  # compressed bytes read at a time
_OUT_CHUNK = 1 << 22  # decompressed bytes at a time (bounds memory whatever the ratio)
_GZIP_MAGIC = b"\x1f\x8b"


class _Damaged(Exception):
    """The file does not hold what its header says (message: what is wrong)."""


def image_information(path: Path, what: str = "image"):
    """SimpleITK's ``ImageFileReader`` with the header read (size, spacing, pixel type).

    Raises:
        InputError: the header cannot be read.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputError(f"{what} {path} cannot be read ({first}); the file is corrupt or not an image "
                         f"format SimpleITK reads (use NIfTI .nii.gz)") from None
    return reader


_VERIFIED: dict[tuple, None] = {}  # files verified whole by this process, by _stamp (oldest first)
_REMEMBERED = 4096
_SETTLED_NS = 2_000_000_000


def _stamp(path: Path) -> tuple:
    """What identifies a file's bytes without reading them: path, device, inode, size, modification time
    (ns). Rewriting or replacing the file changes it."""
    st = path.stat()
    return str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def verify_image_file(path: str | Path, what: str = "image") -> None:
    """Check that an image file holds every voxel its header declares (see the module docstring).

    Raises:
        InputError: truncated or corrupt file, naming it and the fix.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        stamp = _stamp(path)
        if stamp in _VERIFIED:  # this process verified these very bytes already (e.g. checks, then reading)
            return
        if name.endswith((".nii", ".nii.gz")):
            _verify_nifti(path)
        elif name.endswith((".mha", ".mhd")):
            _verify_metaimage(path, _payload_bytes(path, what))
        elif name.endswith((".nrrd", ".nhdr")):
            _verify_nrrd(path, _payload_bytes(path, what))
        # remembered only when the file is older than the clock's coarsest tick: a file changed again
        # within the same tick could keep its modification time (git's "racily clean" files)
        if time.time_ns() - stamp[-1] > _SETTLED_NS:
            if len(_VERIFIED) >= _REMEMBERED:
                _VERIFIED.pop(next(iter(_VERIFIED)))
            _VERIFIED[stamp] = None
    except _Damaged as exc:
        raise InputError(f"{what} {path} is truncated or corrupt ({exc}); the file is damaged or "
                         f"incomplete (an interrupted copy or download?): copy or export it again") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def _payload_bytes(path: Path, what: str) -> int:
    """Voxels x components x bytes per component, from SimpleITK's reading of the header."""
    import SimpleITK as sitk

    info = image_information(path, what)
    voxels = 1
    for n in info.GetSize():
        voxels *= n
    pixel_id = info.GetPixelID()
    component = sitk.Image([1] * info.GetDimension(), pixel_id, info.GetNumberOfComponents())
    return voxels * info.GetNumberOfComponents() * component.GetSizeOfPixelComponent()


def _inflate_length(f, wbits: int, limit: int | None = None) -> int:
    """Bytes a zlib (``wbits`` 15) or gzip (31) stream read from ``f`` decompresses to, read to its
    end, which verifies its checksum (Adler-32; gzip: CRC-32 and length) and consecutive gzip members.

    ISA-L's zlib-compatible inflater (``isal``), 1 MiB in and at most 4 MiB out at a time: about half
    the time of Python's ``zlib`` on a clinical CT (``scripts/benchmarks/image_check.py``).
    """
    left = limit

    def read() -> bytes:
        nonlocal left
        data = f.read(_CHUNK if left is None else min(_CHUNK, left))
        if left is not None:
            left -= len(data)
        return data

    inflater, total, data = isal_zlib.decompressobj(wbits), 0, b""
    try:
        while True:
            if not data:
                data = read()
                if not data:
                    break
            total += len(inflater.decompress(data, _OUT_CHUNK))
            data = inflater.unconsumed_tail
            if inflater.eof:
                data = inflater.unused_data or (read() if wbits == 31 else b"")
                if wbits != 31 or not data.strip(b"\0"):
                    return total  # the end (gzip allows zero padding after the last member)
                inflater = isal_zlib.decompressobj(wbits)  # the next gzip member
        total += len(inflater.flush())
    except isal_zlib.error as exc:
        raise _Damaged(f"bad compressed data: {exc}") from None
    if not inflater.eof:
        raise _Damaged(f"the {'gzip' if wbits == 31 else 'zlib'} stream ends early")
    return total


def _stream_length(stream, what: str) -> int:
    """Bytes in a decompressing stream (bz2), read to its end (which checks its checksum)."""
    buffer = bytearray(_OUT_CHUNK)
    total = 0
    try:
        while n := stream.readinto(buffer):
            total += n
    except EOFError:
        raise _Damaged(f"the {what} stream ends early") from None
    except OSError as exc:
        raise _Damaged(f"bad {what} data: {exc}") from None
    return total


def _check_length(have: int, need: int, where: str) -> None:
    if have < need:
        raise _Damaged(f"{where} holds {have} bytes of the {need} its header declares")


def _verify_nifti(path: Path) -> None:
    import nibabel as nib

    try:
        proxy = nib.load(str(path)).dataobj  # header only: the voxels stay on disk
        offset, shape, itemsize = int(proxy.offset), proxy.shape, proxy.dtype.itemsize
    except Exception as exc:  # nibabel raises many types for damaged headers
        raise _Damaged(f"the NIfTI header cannot be read: {exc}") from None
    voxels = 1
    for n in shape:
        voxels *= int(n)
    need = offset + voxels * itemsize
    with path.open("rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    if compressed:
        with path.open("rb") as f:
            _check_length(_inflate_length(f, 31), need, "the decompressed file")
    else:
        _check_length(path.stat().st_size, need, "the file")


def _text_header(path: Path, last: Callable[[str, dict], bool]) -> tuple[dict[str, str], int]:
    """(fields, offset of the data) of a text header whose final line satisfies ``last``."""
    fields: dict[str, str] = {}
    with path.open("rb") as f:
        for _ in range(10_000):
            line = f.readline()
            if not line:
                raise _Damaged("the header has no end (no data section)")
            text = line.decode("latin-1").strip()
            if last(text, fields):
                return fields, f.tell()
            for sep in ("=", ":="):
                if sep in text:
                    key, value = text.split(sep, 1)
                    fields.setdefault(key.strip().lower(), value.strip())
                    break
            else:
                if ":" in text:
                    key, value = text.split(":", 1)
                    fields.setdefault(key.strip().lower(), value.strip())
    raise _Damaged("the header is too long")


def _data_file(path: Path, name: str) -> Path | None:
    """The detached data file of a header, None for lists and patterns (left to SimpleITK)."""
    if " " in name or "%" in name or name.upper() == "LIST":
        return None
    data = path.parent / name
    if not data.is_file():
        raise _Damaged(f"its data file {data} is missing")
    return data


def _verify_metaimage(path: Path, need: int) -> None:
    def last(text, fields):
        if text.lower().startswith("elementdatafile"):
            fields["elementdatafile"] = text.split("=", 1)[1].strip()
            return True
        return False

    fields, offset = _text_header(path, last)
    source = fields["elementdatafile"]
    data, start = path, offset
    if source.upper() != "LOCAL":
        data, start = _data_file(path, source), max(int(fields.get("headersize", 0) or 0), 0)
        if data is None:
            return
    compressed = fields.get("compresseddata", "false").lower() == "true"
    available = data.stat().st_size - start
    if not compressed:
        _check_length(available, need, "the data")
        return
    declared = int(fields.get("compresseddatasize", available) or available)
    _check_length(available, declared, "the compressed data")
    with data.open("rb") as f:
        f.seek(start)
        total = _inflate_length(f, 15, declared)
    if total != need:
        raise _Damaged(f"the data decompress to {total} bytes, not the {need} its header declares")


def _verify_nrrd(path: Path, need: int) -> None:
    fields, offset = _text_header(path, lambda text, fields: text == "" and bool(fields))
    encoding = fields.get("encoding", "raw").lower()
    data, start = path, offset
    source = fields.get("data file", fields.get("datafile"))
    if source is not None:
        data, start = _data_file(path, source), 0
        if data is None:
            return
    byte_skip = int(fields.get("byte skip", fields.get("byteskip", 0)) or 0)
    if encoding == "raw":
        _check_length(data.stat().st_size - start - max(byte_skip, 0), need, "the data")
        return
    if encoding not in ("gzip", "gz", "bzip2", "bz2"):  # text encodings: SimpleITK reports short data
        return
    with data.open("rb") as f:
        f.seek(start)
        if encoding in ("gzip", "gz"):
            total = _inflate_length(f, 31)
        else:
            with bz2.BZ2File(f, mode="rb") as stream:
                total = _stream_length(stream, encoding)
    _check_length(total, need, "the decompressed data")
