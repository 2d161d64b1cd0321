"""COCO run-length encoding (own implementation, compatible with pycocotools).

A mask is flattened column-major (Fortran order); `counts` alternates run lengths of 0s and 1s,
starting with 0s (a leading 0 when the first pixel is set). The compressed string form is the
one pycocotools' rleToString produces: each count (after the first two, as the difference to the
count two places back) is written in 5-bit groups, least significant first, +48 as ASCII, bit
0x20 = more groups follow, sign taken from bit 0x10 of the last group.
"""
import numpy as np


def mask_to_counts(mask):
    """Binary (H,W) mask -> list of run lengths (column-major, starting with zeros)."""
    flat = np.asarray(mask, bool).ravel(order='F')
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return counts


def counts_to_mask(counts, height, width):
    """Inverse of mask_to_counts -> (H,W) uint8 0/1."""
    counts = np.asarray(counts, np.int64)
    if counts.sum() != height * width:
        raise ValueError(f'RLE counts sum to {int(counts.sum())}, expected {height * width}')
    vals = (np.arange(len(counts)) % 2).astype(np.uint8)
    flat = np.repeat(vals, counts)
    return flat.reshape((width, height)).T.copy()


def counts_to_string(counts):
    """pycocotools rleToString: list of counts -> compressed ASCII string."""
    out = []
    for i, x in enumerate(counts):
        x = int(x)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1f
            x >>= 5          # arithmetic shift, like C's long >> on negatives
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return ''.join(out)


def string_to_counts(s):
    """pycocotools rleFrString: compressed string -> list of counts."""
    if isinstance(s, bytes):
        s = s.decode('ascii')
    counts = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError('truncated RLE string')
            c = ord(s[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask):
    """Binary (H,W) mask -> {'size': [H, W], 'counts': str} (COCO compressed RLE)."""
    mask = np.asarray(mask)
    h, w = mask.shape
    return {'size': [int(h), int(w)], 'counts': counts_to_string(mask_to_counts(mask))}


def decode(rle):
    """COCO RLE dict (compressed string or uncompressed list counts) -> (H,W) uint8 0/1."""
    h, w = rle['size']
    counts = rle['counts']
    if not isinstance(counts, list):
        counts = string_to_counts(counts)
    return counts_to_mask(counts, int(h), int(w))


def area(rle):
    counts = rle['counts']
    if not isinstance(counts, list):
        counts = string_to_counts(counts)
    return int(sum(counts[1::2]))


def bbox(mask):
    """[x, y, w, h] of the set pixels (COCO convention), [0, 0, 0, 0] when empty."""
    ys, xs = np.nonzero(np.asarray(mask))
    if xs.size == 0:
        return [0, 0, 0, 0]
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
