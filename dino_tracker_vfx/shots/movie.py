"""Movie files through PyAV, addressed by presentation timestamp.

On open, the packets are demuxed (no decoding) to list every frame's PTS; images are those PTS in
presentation order. Frame numbers come from the timestamps, ``round((pts - pts0) * time_base * rate)
+ first_frame``, never from a decode counter, so variable frame rate or dropped frames do not shift
later frames. ``read(i)`` seeks to the keyframe before image ``i`` and decodes until its PTS.

Damage is an error naming the frame, never a silently wrong image:

* a container header that counts more frames than the file holds (a movie cut short) fails on open,
  naming both counts and the first missing frame;
* a frame the decoder flags corrupt (damaged bytes; FFmpeg conceals them and would hand back a smeared
  image), or one decoded from a corrupt frame since the last keyframe, fails when it is read, naming
  that frame (and the damaged one it was predicted from). A shot's frames are all read by the first
  stage of every command (``Shot.load``), before any training.
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
        n_packets = 0  # every timed packet, empty ones too (AVI marks repeated frames with them)
        try:
            for pkt in self._container.demux(st):
                if pkt.pts is not None:
                    n_packets += 1
                    if pkt.size:
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
        self.span = (int(self.frame_numbers[0]), int(self.frame_numbers[-1]), len(self.frame_numbers))  # whole movie
        header = int(st.frames or 0)  # 0: the container does not say (e.g. Matroska)
        if header > n_packets:
            first_missing = int(nums[-1]) + 1
            raise ShotError(f"truncated: the header counts {header} frames, the file holds {n_packets} "
                            f"(frames {first_missing}-{first_missing + header - n_packets - 1} are missing)",
                            where=path)
        self.width, self.height = st.codec_context.width, st.codec_context.height
        sar = st.codec_context.sample_aspect_ratio
        self.pixel_aspect = float(sar) if sar else 1.0
        # SMPTE timecode of the first frame: the stream's tag (MOV tmcd / MXF), else the container's
        tc = (st.metadata or {}).get("timecode") or (self._container.metadata or {}).get("timecode")
        self.timecode: str | None = (str(tc).strip() or None) if tc else None
        self._first = first_frame
        self._damaged: int | None = None
        self._key_pts = int(self.pts[0])
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
            self._damaged = None  # frame number of a corrupt frame since the last keyframe
            self._key_pts = int(self.pts[0])
        try:
            for frame in self._decoder:
                if frame.pts is None:
                    continue
                if frame.key_frame:
                    self._damaged, self._key_pts = None, frame.pts
                if frame.is_corrupt and frame.pts >= self._key_pts:  # not a leading picture of an open GOP,
                    self._damaged = self._frame_number(frame.pts)    # whose references a seek skipped
                if frame.pts >= target:
                    idx = np.searchsorted(self.pts, frame.pts)
                    self._next = int(self.pts[idx + 1]) if idx + 1 < len(self.pts) else None
                    if frame.pts != target:
                        raise ShotError(f"frame {self.frame_numbers[i]} (pts {target}) could not be decoded",
                                        where=self.path)
                    if self._damaged is not None:
                        n = int(self.frame_numbers[i])
                        how = "is corrupt" if self._damaged == n else f"is predicted from corrupt frame {self._damaged}"
                        raise ShotError(f"frame {n} {how} (damaged data; the decoder would hide it)", where=self.path)
                    return frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
        except av.error.FFmpegError as e:
            raise ShotError(f"decode error at frame {self.frame_numbers[i]} ({e})", where=self.path) from None
        raise ShotError(f"frame {self.frame_numbers[i]} is missing (truncated file?)", where=self.path)

    def select(self, frames: list[int]) -> None:
        """Keep only the images of these frame numbers (a range); every one must be in the movie."""
        have = set(int(f) for f in self.frame_numbers)
        missing = [f for f in frames if f not in have]
        if missing:
            gaps = " or its timestamps skip it (variable frame rate)" if len(have) < self.frame_numbers[-1] - \
                self.frame_numbers[0] + 1 else ""
            raise ShotError(f"frame {missing[0]} of range {frames[0]}-{frames[-1]} is not in the movie (frames "
                            f"{self.frame_numbers[0]}-{self.frame_numbers[-1]}{gaps})"
                            f"{f'; {len(missing)} missing in all' if len(missing) > 1 else ''}", where=self.path)
        keep = np.isin(self.frame_numbers, np.asarray(frames, np.int64))
        self.pts, self.seconds, self.frame_numbers = self.pts[keep], self.seconds[keep], self.frame_numbers[keep]
        self._decoder, self._next = None, None

    def _frame_number(self, pts: int) -> int:
        """Frame number of a decoded PTS (as the index built on open numbers it)."""
        return int(round((pts - int(self.pts[0])) * float(self.time_base) * float(self.rate))) + self._first

    def close(self) -> None:
        self._container.close()
