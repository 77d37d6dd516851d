"""Write a training run's packing in clamp's picture format, so that `clamp view --follow RUN`
can watch it train and `clamp record --from RUN` can film it.

Standard library and numpy only. The format (docs/follow.md):

    RUN/pictures.json  {"format": "clamp-pictures", "version": 1, "spheres": N, "dim": d,
                        "labels": [...N ints], "images": [...], "classes": [...], "writer": ...}
    RUN/pictures.bin   records of 16 + 4 N (d + 1) bytes, little-endian, one per picture:
                       b"CLPF", CRC-32 (zlib) of the rest, step u64,
                       centers f32 [N, d], radii f32 [N]

Each picture is appended with one write, so a reader never takes half of one.

    from clamp_follow import Writer
    writer = Writer("runs/resnet50", labels)           # labels: [N] ints, the held-out images' classes
    writer.write(step, centers, radii)                  # [N, d] and [N] float arrays

`centers` and `radii` are CLAMP's spheres of those N images: the mean of their m views' unit
embeddings and r_s times the views' RMS spread (`spheres(views, r_s)` computes them).
"""

import json
import os
import struct
import zlib

import numpy as np

MAGIC = b"CLPF"
FORMAT = "clamp-pictures"
VERSION = 1
HEADER_FILE = "pictures.json"
SQRT_EPS = 1e-12  # as in clamp's loss (src/loss.rs)
PICTURES_FILE = "pictures.bin"


def record_dtype(spheres, dim):
    """The numpy dtype of one record: np.fromfile(path, record_dtype(N, d)) reads them all."""
    return np.dtype(
        [
            ("magic", "S4"),
            ("crc32", "<u4"),
            ("step", "<u8"),
            ("centers", "<f4", (spheres, dim)),
            ("radii", "<f4", (spheres,)),
        ]
    )


def spheres(views, radius_scale):
    """CLAMP's spheres of [m, N, d] projector outputs, as clamp's loss builds them: each view
    normalised to the unit sphere after removing the batch's global mean; the centers are the
    views' means and the radii r_s sqrt(sum of squared distances to the center / ((m - 1)
    min(d, m)))."""
    z = np.asarray(views, dtype=np.float64)
    m, _, d = z.shape
    z = z - z.mean(axis=(0, 1), keepdims=True)
    z = z / np.maximum(np.linalg.norm(z, axis=2, keepdims=True), 1e-12)
    centers = z.mean(axis=0)
    spread = ((z - centers) ** 2).sum(axis=2).sum(axis=0)
    radii = radius_scale * np.sqrt(spread / ((m - 1) * min(d, m)) + SQRT_EPS)
    return centers.astype(np.float32), radii.astype(np.float32)


class Writer:
    """Appends pictures to RUN/pictures.bin (RUN is created; earlier pictures are replaced)."""

    def __init__(self, run_dir, labels, images=None, classes=None, writer="clamp_follow.py"):
        labels = [int(label) for label in labels]
        if len(labels) < 2:
            raise ValueError("labels: a picture needs at least 2 spheres")
        self.run_dir = run_dir
        self.spheres = len(labels)
        self.dim = None
        self.last_step = None
        self._header = {
            "format": FORMAT,
            "version": VERSION,
            "spheres": self.spheres,
            "labels": labels,
            "images": [int(i) for i in images] if images is not None else [],
            "classes": [str(c) for c in classes] if classes is not None else [],
            "writer": writer,
        }
        os.makedirs(run_dir, exist_ok=True)
        self._file = None

    def _start(self, dim):
        self.dim = dim
        header = dict(self._header, dim=dim)
        path = os.path.join(self.run_dir, PICTURES_FILE)
        # The pictures first, so the header never describes another run's pictures.
        self._file = open(path, "wb")
        temporary = os.path.join(self.run_dir, "." + HEADER_FILE + ".tmp-%d" % os.getpid())
        with open(temporary, "w") as f:
            json.dump(header, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, os.path.join(self.run_dir, HEADER_FILE))

    def write(self, step, centers, radii):
        """Appends the spheres at `step` (steps must grow): centers [N, d], radii [N]."""
        centers = np.ascontiguousarray(centers, dtype="<f4")
        radii = np.ascontiguousarray(radii, dtype="<f4")
        if centers.ndim != 2 or centers.shape[0] != self.spheres:
            raise ValueError("centers: shape %s, expected [%d, d]" % (centers.shape, self.spheres))
        if radii.shape != (self.spheres,):
            raise ValueError("radii: shape %s, expected [%d]" % (radii.shape, self.spheres))
        if self._file is None:
            self._start(centers.shape[1])
        elif centers.shape[1] != self.dim:
            raise ValueError("centers: dimension %d, the run's is %d" % (centers.shape[1], self.dim))
        step = int(step)
        if self.last_step is not None and step <= self.last_step:
            raise ValueError("step %d after step %d: steps must grow" % (step, self.last_step))
        body = struct.pack("<Q", step) + centers.tobytes() + radii.tobytes()
        record = MAGIC + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF) + body
        self._file.write(record)
        self._file.flush()
        self.last_step = step

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def read(run_dir):
    """(header, records) of a run: records is a numpy structured array of its whole pictures,
    those whose checksum holds, up to the first that does not."""
    with open(os.path.join(run_dir, HEADER_FILE)) as f:
        header = json.load(f)
    dtype = record_dtype(header["spheres"], header["dim"])
    path = os.path.join(run_dir, PICTURES_FILE)
    count = os.path.getsize(path) // dtype.itemsize
    records = np.fromfile(path, dtype=dtype, count=count)
    raw = records.view(np.uint8).reshape(count, dtype.itemsize) if count else None
    whole = 0
    for k in range(count):
        if records["magic"][k] != MAGIC or zlib.crc32(raw[k, 8:].tobytes()) != records["crc32"][k]:
            break
        whole += 1
    return header, records[:whole]
