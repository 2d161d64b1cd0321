"""Truncated and damaged videos: every decodable frame is read, and the warning gives the true
count (util/video_io.py decodes packet by packet, skips a packet that fails, flushes at the end).

The files are H.264 (libx264, yuv420p, +faststart: the moov atom is at the front, so a cut
file still opens, as a partly downloaded phone video does) written with PyAV in the test.
"""
import shutil
import subprocess

import numpy as np
import pytest

from util import video_io
from inference_core.store_io import open_frames

N, SIZE = 60, (96, 128)


@pytest.fixture(scope='module')
def h264(tmp_path_factory):
    path = tmp_path_factory.mktemp('video') / 'full.mp4'
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    with video_io.H264Writer(path, SIZE, 25) as w:        # libx264, yuv420p, +faststart
        for i in range(N):
            w.write(np.stack([(xx * 2 + i * 5) % 256, (yy * 3 + i * 7) % 256,
                              ((xx + yy) // 2 + i * 3) % 256], -1).astype(np.uint8))
    return path


def reference_count(path):
    """Frames a plain packet-by-packet decode yields (single-threaded, a packet that fails is
    skipped, the decoder flushed at the end), written independently of util.video_io; and the
    FFmpeg command line's count too when `ffmpeg` is installed."""
    import av
    n = 0
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        for packet in c.demux(st):
            try:
                n += len(st.decode(packet))
            except av.FFmpegError:
                pass
    counts = [n]
    if shutil.which('ffmpeg'):
        p = subprocess.run(['ffmpeg', '-nostdin', '-v', 'quiet', '-i', str(path), '-map', '0:v:0',
                            '-f', 'framemd5', '-'], capture_output=True, text=True)
        counts.append(sum(1 for ln in p.stdout.splitlines() if ln and not ln.startswith('#')))
    return counts


def _cut(src, dst, fraction):
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def test_truncated_h264_reads_every_decodable_frame(tmp_path, h264):
    full = {round(f.timestamp, 4): f.rgb for f in video_io.read_frames(h264)}
    assert len(full) == N
    for fraction in (0.6, 0.85):
        cut = _cut(h264, tmp_path / f'cut{fraction}.mp4', fraction)
        warnings = []
        frames = list(video_io.read_frames(cut, warnings=warnings))
        n = len(frames)
        assert 0 < n < N
        assert all(n == ref for ref in reference_count(cut)), (n, reference_count(cut))
        # the frames are the full file's (the cut-off packet's frame is the one missing)
        for f in frames:
            assert np.array_equal(f.rgb, full[round(f.timestamp, 4)])
        assert len(warnings) == 1
        assert f'declares {N} frames but {n} could be decoded' in warnings[0]
        assert video_io.count_frames(cut) == ('h264', n)
        store = open_frames(cut, resolution=-1)
        assert store.num_frames == n and len(store.load_warnings) == 1


def test_damaged_packet_mid_stream_is_skipped(tmp_path, h264):
    """Garbage inside one packet used to end the decode there (4 of 60 frames here); now the
    packet is skipped and the rest of the file is read."""
    data = bytearray(h264.read_bytes())
    k = int(len(data) * 0.3)
    data[k:k + 200] = bytes(200)
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(bytes(data))
    warnings = []
    n = sum(1 for _ in video_io.read_frames(bad, warnings=warnings))
    assert n == reference_count(bad)[0] and n >= N - 5
    assert len(warnings) == 1 and 'damaged packet' in warnings[0] and f'but {n} could' in warnings[0]


def test_clean_file_has_no_warning(h264):
    warnings = []
    assert sum(1 for _ in video_io.read_frames(h264, warnings=warnings)) == N
    assert warnings == [] and video_io.count_frames(h264) == ('h264', N)
