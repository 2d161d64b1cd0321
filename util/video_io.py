"""Video files on PyAV (FFmpeg): frame-accurate decoding with timestamps, and H.264 writing.

OpenCV stays for image processing; it is not used for video containers because it cannot report
a reliable frame count (a truncated file silently loses frames) and drops the presentation
timestamps (a variable-frame-rate phone video would not line up with its exports).

    info = probe(path)                       # VideoInfo: size, declared frame count, fps, codec
    for frame in read_frames(path, info):    # DecodedFrame: rgb (H, W, 3) uint8, timestamp (s)
        ...
    with H264Writer(path, (h, w), fps) as w: # yuv420p, +faststart: plays in web browsers
        w.write(rgb, timestamp=None)
"""
import fractions
import logging
import os
from dataclasses import dataclass

import numpy as np

from util.errors import UserError

log = logging.getLogger(__name__)

# Timestamps are written in this time base (the MPEG 90 kHz clock): exact for every common
# frame rate and fine enough for variable-rate phone videos.
WRITE_TIME_BASE = fractions.Fraction(1, 90000)


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a core requirement
        raise UserError('video files need PyAV: pip install av') from None
    return av


@dataclass
class VideoInfo:
    path: str
    width: int                 # displayed size (after the rotation in the file's metadata)
    height: int
    declared_frames: int       # frame count the container states (0 when it does not say)
    fps: float | None          # average frame rate (None when unknown)
    codec: str                 # e.g. 'h264', 'mpeg4'
    rotation: int              # degrees counter-clockwise applied to decoded frames (0/90/180/270)


@dataclass
class DecodedFrame:
    rgb: np.ndarray            # (H, W, 3) uint8, displayed orientation
    timestamp: float | None    # presentation time in seconds from the stream start (None if unknown)


def _open_error(path, e):
    if isinstance(e, PermissionError):
        return UserError(f'cannot read video (permission denied): {path}')
    if isinstance(e, FileNotFoundError):
        return UserError(f'video not found: {path}')
    return UserError(f'cannot open video (unsupported or corrupt): {path}')


def _open(path):
    av = _av()
    try:
        container = av.open(os.fspath(path), 'r')
    except (av.FFmpegError, OSError, UnicodeError, ValueError) as e:
        raise _open_error(path, e) from None
    if not container.streams.video:
        container.close()
        raise UserError(f'no video stream in file: {path}')
    return container


def _rotation(frame):
    r = int(round(getattr(frame, 'rotation', 0) or 0)) % 360
    return r if r in (90, 180, 270) else 0


def probe(path):
    """VideoInfo of the first video stream (decodes the first frame for size and rotation).
    Raises UserError when the file cannot be opened or holds no decodable frame."""
    path = os.fspath(path)
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        first = None
        try:
            for first in container.decode(stream):
                break
        except (av.FFmpegError, OSError):
            first = None
        if first is None:
            raise UserError(f'cannot decode any frame of video (corrupt or unsupported): {path}')
        rot = _rotation(first)
        w, h = first.width, first.height
        if rot in (90, 270):
            w, h = h, w
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate and 0 < float(rate) < 1000 else None
        return VideoInfo(path=path, width=int(w), height=int(h),
                         declared_frames=int(stream.frames or 0), fps=fps,
                         codec=stream.codec_context.name, rotation=rot)
    finally:
        container.close()


def decode_packets(container, stream, damaged=None):
    """Yield the decoded frames of `stream`, demuxing packet by packet.

    A packet that fails to decode (a damaged or cut-off packet) is skipped and counted in
    `damaged` (a one-element list) instead of ending the decode, and the decoder is flushed at
    the end, so the frames still inside it (B-frame reordering delay) come out too. Frame
    threading is not used: with it FFmpeg reports no error for a truncated H.264 stream and
    silently drops the frames in flight (measured: a 60-frame file cut at 60% of its bytes gives
    21 frames with frame threads, 23 packet by packet without, the count FFmpeg's own
    single-threaded decode gives). An error reading the container itself ends the decode (raised)."""
    av = _av()
    stream.thread_type = 'SLICE'
    for packet in container.demux(stream):
        try:
            # demux() ends with an empty packet per stream: decoding it flushes the decoder
            frames = stream.decode(packet)
        except (av.FFmpegError, OSError):
            if damaged is not None:
                damaged[0] += 1
            continue
        yield from frames
    try:
        yield from stream.decode(None)        # flush (a no-op when the empty packet did)
    except (av.FFmpegError, OSError, ValueError):
        pass


def read_frames(path, info=None, warnings=None):
    """Yield every frame as a DecodedFrame, in presentation order.

    Frames that share a timestamp are not dropped and none are duplicated: what the decoder
    outputs is what the tool sees. A frame size change mid-stream is a UserError. Packets that
    fail to decode are skipped and decoding goes on (decode_packets), so a truncated file gives
    every frame that can be decoded. When packets were skipped, the decoded count differs from
    the count the container declares, or reading stops on an error, one warning line with the
    true count is logged and appended to `warnings` (a list) when given."""
    path = os.fspath(path)
    av = _av()
    info = info or probe(path)
    container = _open(path)
    n, damaged, stopped = 0, [0], None
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        start = stream.start_time
        try:
            for frame in decode_packets(container, stream, damaged):
                rgb = frame.to_ndarray(format='rgb24')
                if info.rotation:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=info.rotation // 90))
                if rgb.shape[:2] != (info.height, info.width):
                    raise UserError(f'video changes frame size mid-stream (frame {n}): {path}')
                ts = None
                if frame.pts is not None and tb is not None:
                    ts = float((frame.pts - (start or 0)) * tb)
                yield DecodedFrame(rgb, ts)
                n += 1
        except (av.FFmpegError, OSError) as e:
            stopped = e.__class__.__name__
    finally:
        container.close()
    msg = _damage_note(os.path.basename(path), n, info.declared_frames, damaged[0], stopped)
    if msg:
        _warn(warnings, msg)


def _damage_note(name, n, declared, damaged, stopped):
    """One line on a file that did not decode cleanly (None when it did)."""
    skipped = f'{damaged} damaged packet{"s" if damaged != 1 else ""} skipped' if damaged else ''
    if stopped:
        extra = f', {skipped}' if skipped else ''
        return (f'{name}: decoding stopped after {n} frames ({stopped}{extra}); the rest of the '
                f'file is damaged')
    if declared and n != declared:
        extra = f'{skipped}; ' if skipped else ''
        return (f'{name}: the file declares {declared} frames but {n} could be decoded '
                f'({extra}truncated or damaged file?)')
    if damaged:
        return f'{name}: {skipped}, {n} frames decoded (damaged file?)'
    return None


def _warn(warnings, msg):
    if warnings is not None:
        warnings.append(msg)
    else:
        log.warning(msg)


def count_frames(path):
    """(codec name, decoded frame count) of the first video stream: decodes every frame
    (packet by packet, as read_frames)."""
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        n = 0
        try:
            for _ in decode_packets(container, stream):
                n += 1
        except (av.FFmpegError, OSError):
            pass
        return stream.codec_context.name, n
    finally:
        container.close()


class H264Writer:
    """Write RGB frames to an MP4 as H.264 (libx264, yuv420p, moov atom first), the format
    web browsers and chat apps play. Odd sizes are padded by one replicated row/column
    (yuv420p needs even sizes). Frames carry `timestamp` (seconds) when given, so a
    variable-frame-rate source keeps its timing; otherwise frame i is shown at i / fps."""

    def __init__(self, path, size, fps, crf=20):
        av = _av()
        self.path = os.fspath(path)
        self.h, self.w = int(size[0]), int(size[1])
        self.vh, self.vw = self.h + self.h % 2, self.w + self.w % 2
        self.fps = float(fps) if fps and fps > 0 else 24.0
        rate = fractions.Fraction(self.fps).limit_denominator(1001)
        try:
            self._container = av.open(self.path, 'w', format='mp4',
                                      options={'movflags': '+faststart'})
        except (av.FFmpegError, OSError) as e:
            raise UserError(f'cannot write video {self.path}: {getattr(e, "strerror", None) or e}') from None
        try:
            self._stream = self._container.add_stream('libx264', rate=rate)
        except (av.FFmpegError, ValueError) as e:
            self._container.close()
            raise UserError(f'the H.264 encoder (libx264) is unavailable in this PyAV build: {e}') from None
        s = self._stream
        s.width, s.height, s.pix_fmt = self.vw, self.vh, 'yuv420p'
        s.time_base = WRITE_TIME_BASE
        s.codec_context.time_base = WRITE_TIME_BASE
        s.options = {'crf': str(int(crf)), 'preset': 'veryfast'}
        self._last_pts = None
        self.frames_written = 0

    def write(self, rgb, timestamp=None):
        av = _av()
        rgb = np.asarray(rgb, dtype=np.uint8)
        if rgb.shape != (self.h, self.w, 3):
            raise ValueError(f'frame is {rgb.shape}, the video is {(self.h, self.w, 3)}')
        if (self.vh, self.vw) != (self.h, self.w):
            rgb = np.pad(rgb, ((0, self.vh - self.h), (0, self.vw - self.w), (0, 0)), mode='edge')
        if timestamp is None:
            pts = int(round(self.frames_written / self.fps / WRITE_TIME_BASE))
        else:
            pts = int(round(float(timestamp) / WRITE_TIME_BASE))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1     # timestamps must increase strictly
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame.pts, frame.time_base = pts, WRITE_TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self):
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            c, self._container = self._container, None
            c.close()

    def abort(self):
        if self._container is not None:
            c, self._container = self._container, None
            try:
                c.close()
            except Exception:  # closing a broken file: the caller removes it anyway
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()
