"""Movie files through PyAV, addressed by presentation timestamp.

On open, the packets are demuxed (no decoding) to list every frame's PTS; images are those PTS in
presentation order. Frame numbers come from the timestamps, ``round((pts - pts0) * time_base * rate)
+ first_frame``, never from a decode counter, so variable frame rate or dropped frames do not shift
later frames. ``read(i)`` seeks to the keyframe before image ``i`` and decodes until its PTS.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..errors import ShotError

MOVIE_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".mxf", ".webm", ".mpg", ".mpeg", ".gif", ".wmv"}


class Movie:
    def __init__(self, path: str, first_frame: int = 1):
        try:
            import av
        except ImportError:  # pragma: no cover - av is a hard dependency; the GPU box may lack it
            raise ShotError("reading movies needs PyAV: pip install av", where=path) from None
        self.path = path
        try:
            self._container = av.open(path)
        except (av.error.FFmpegError, OSError) as e:
            raise ShotError(f"cannot open movie ({e})", where=path) from None
        if not self._container.streams.video:
            raise ShotError("no video stream", where=path)
        st = self._container.streams.video[0]
        self._stream = st
        self.time_base: Fraction = st.time_base
        # nominal rate: r_frame_rate (base_rate) represents every timestamp; average_rate is skewed by VFR
        self.rate: Fraction = st.base_rate or st.guessed_rate or st.average_rate or Fraction(24)
        pts = []
        try:
            for pkt in self._container.demux(st):
                if pkt.pts is not None and pkt.size:
                    pts.append(int(pkt.pts))
        except av.error.FFmpegError as e:
            raise ShotError(f"corrupt movie ({e})", where=path) from None
        if not pts:
            raise ShotError("movie has no frames", where=path)
        self.pts = np.array(sorted(set(pts)), np.int64)
        secs = (self.pts - self.pts[0]) * float(self.time_base)
        nums = np.round(secs * float(self.rate)).astype(np.int64) + first_frame
        keep = np.concatenate([[True], np.diff(nums) > 0])
        self.pts, self.seconds, self.frame_numbers = self.pts[keep], secs[keep], nums[keep]
        self.width, self.height = st.codec_context.width, st.codec_context.height
        sar = st.codec_context.sample_aspect_ratio
        self.pixel_aspect = float(sar) if sar else 1.0
        # SMPTE timecode of the first frame: the stream's tag (MOV tmcd / MXF), else the container's
        tc = (st.metadata or {}).get("timecode") or (self._container.metadata or {}).get("timecode")
        self.timecode: str | None = (str(tc).strip() or None) if tc else None
        self._next = None  # PTS we expect the decoder to yield next (sequential fast path)
        self._decoder = None

    def __len__(self) -> int:
        return len(self.pts)

    def read(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 [H, W, 3] sRGB 0..1."""
        import av

        target = int(self.pts[i])
        if self._decoder is None or self._next is None or target < self._next:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            self._decoder = self._container.decode(self._stream)
        try:
            for frame in self._decoder:
                if frame.pts is None:
                    continue
                if frame.pts >= target:
                    idx = np.searchsorted(self.pts, frame.pts)
                    self._next = int(self.pts[idx + 1]) if idx + 1 < len(self.pts) else None
                    if frame.pts != target:
                        raise ShotError(f"frame {self.frame_numbers[i]} (pts {target}) could not be decoded",
                                        where=self.path)
                    return frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
        except av.error.FFmpegError as e:
            raise ShotError(f"decode error at frame {self.frame_numbers[i]} ({e})", where=self.path) from None
        raise ShotError(f"frame {self.frame_numbers[i]} is missing (truncated file?)", where=self.path)

    def close(self) -> None:
        self._container.close()
