"""Media processing on local files: recognise uploads, make image renditions, transcode video.

Pure functions: no Flask, no database, no storage. The worker downloads an upload into a
temporary folder, calls these functions and uploads the files they write into ``workdir``.

Every failure a person can cause (a damaged, truncated, huge or mislabelled file) raises
:class:`ProcessingError` whose text can be shown to them as is; details for operators go to
the log, never into the message.
"""
from __future__ import annotations

import io
import logging
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import imageio_ffmpeg
from PIL import Image, ImageCms, ImageOps

log = logging.getLogger(__name__)

ALLOWED: dict[str, str] = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "application/pdf": "pdf",
}

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "video/mp4": (".mp4", ".m4v"),
    "video/quicktime": (".mov",),
    "video/webm": (".webm",),
    "application/pdf": (".pdf",),
}

THUMB_SIZE = 320  # long side, pixels
LARGE_SIZE = 1600
VIDEO_SIZE = 1920
MAX_PIXELS = 80_000_000  # 80 MP: above any phone camera, below what would exhaust a worker
PROBE_TIMEOUT = 60.0  # seconds; reading a header never takes long unless something is wrong

NOT_AN_IMAGE = "This file is not an image we can open. Please upload a JPEG, PNG or WebP picture."
DAMAGED_IMAGE = "This image is damaged or incomplete. Please try uploading it again."
HUGE_IMAGE = "This image is too large to process. Please upload a picture under 80 megapixels."
NOT_A_VIDEO = "This file is not a video we can play. Please upload an MP4, MOV or WebM video."
EMPTY_VIDEO = "This video is empty: it has no length."
INCOMPLETE_VIDEO = "This video seems to be incomplete. The upload may have been cut off; please try again."
VIDEO_TOO_SLOW = "This video took too long to process. Please try a shorter clip."
VIDEO_FAILED = "We could not convert this video. It may be damaged; please export it again and re-upload."


class ProcessingError(Exception):
    """A file we cannot process; ``str(exc)`` is a reason a person can read."""


# --- Recognising files ------------------------------------------------------------------------

# ISO BMFF major brands of stills and audio (HEIC/AVIF photos, M4A songs): same box structure
# as MP4, but not a video anyone meant to upload as one.
_NOT_VIDEO_BRANDS = {
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
    b"avif", b"avis", b"jp2 ", b"jpx ", b"crx ", b"M4A ", b"M4B ", b"M4P ",
}
# Old QuickTime files (some cameras) start with a bare atom instead of 'ftyp'.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
# Phones and browsers label the same files video/mp4 or video/quicktime at random.
_FAMILY = {"video/quicktime": "video/mp4"}


def sniff(head: bytes) -> str | None:
    """The allowed content type the first bytes of a file show, or None.

    :param head: the start of the file (at least 32 bytes; 512 is plenty).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if _ebml_doctype(head) == b"webm" else None
    return _sniff_iso_bmff(head)


def _sniff_iso_bmff(head: bytes) -> str | None:
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if len(brand) < 4 or brand in _NOT_VIDEO_BRANDS:
            return None
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if box in _QUICKTIME_ATOMS:
        size = struct.unpack(">I", head[:4])[0]
        # 0 = "to the end of the file", 1 = "64-bit size follows"; anything else is at least a header.
        return "video/quicktime" if size in (0, 1) or size >= 8 else None
    return None


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType ('webm', 'matroska') in an EBML header, which sits in the first few dozen bytes."""
    at = head.find(b"\x42\x82", 4)
    if at < 0 or at + 3 > len(head):
        return None
    first = head[at + 2]
    # EBML sizes are variable-length integers: the position of the first set bit gives the length.
    length = 9 - first.bit_length()
    if not 1 <= length <= 8 or at + 2 + length > len(head):
        return None
    size = first & ((1 << (8 - length)) - 1)
    for byte in head[at + 3 : at + 2 + length]:
        size = (size << 8) | byte
    start = at + 2 + length
    return head[start : start + size].rstrip(b"\x00")


def matches(declared: str, head: bytes) -> bool:
    """Whether the bytes fit the declared content type (``video/webm;codecs=vp9`` counts as ``video/webm``)."""
    declared = declared.split(";", 1)[0].strip().lower()
    found = sniff(head)
    if found is None or declared not in ALLOWED:
        return False
    return _FAMILY.get(found, found) == _FAMILY.get(declared, declared)


# --- Images -----------------------------------------------------------------------------------

# Only the decoders of the types we accept: Pillow reads dozens of formats, and each decoder
# is attack surface. (Camera JPEGs carrying a second picture open through JPEG as "MPO".)
_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")
_ORIENTATION = 0x0112
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass
class ImageResult:
    width: int  # as displayed, after EXIF orientation
    height: int
    thumb: Path  # WebP, long side ≤ 320, no metadata
    large: Path  # WebP, long side ≤ 1600 (never upscaled), no metadata


def process_image(src: Path, workdir: Path, *, max_pixels: int = MAX_PIXELS) -> ImageResult:
    """Write an upright, metadata-free thumbnail and large rendition of the picture at ``src``.

    Metadata: EXIF (with GPS), XMP and comments are dropped. Colours are converted from the
    embedded ICC profile to sRGB and the profile itself is dropped, so a Display P3 photo looks
    the same in every browser and the file carries nothing about the device.

    :param max_pixels: refuse larger pictures (Pillow's own bomb limit still applies above it).
    :raises ProcessingError: not an image, damaged or truncated, or too large.
    """
    with _open_image(src, max_pixels) as im:
        upright, (width, height) = _decode_upright(im)
        picture = _to_srgb(upright)
    large = _fit(picture, LARGE_SIZE)
    large.save(workdir / "large.webp", "WEBP", quality=82, method=4)
    # From the large rendition: far fewer pixels to resample. WebP writes only the metadata
    # it is handed (exif=, xmp=, icc_profile=), and we hand it none.
    _fit(large, THUMB_SIZE).save(workdir / "thumb.webp", "WEBP", quality=75, method=4)
    return ImageResult(width, height, thumb=workdir / "thumb.webp", large=workdir / "large.webp")


def _open_image(src: Path, max_pixels: int) -> Image.Image:
    """Read the header only, and refuse what we will not decode before a pixel is in memory."""
    try:
        im = Image.open(src, formats=_IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise ProcessingError(HUGE_IMAGE) from None
    except Exception:
        log.info("unreadable image %s", src, exc_info=True)
        raise ProcessingError(NOT_AN_IMAGE) from None
    if im.width * im.height > max_pixels:
        im.close()
        raise ProcessingError(HUGE_IMAGE)
    return im


def _decode_upright(im: Image.Image) -> tuple[Image.Image, tuple[int, int]]:
    """The pixels turned as EXIF says, and the picture's full size as displayed."""
    stored = im.size
    # A JPEG can decode straight at 1/2, 1/4 or 1/8 scale; draft() picks the smallest that still
    # covers the large rendition, so a 48 MP photo never sits in memory at full size.
    scale = LARGE_SIZE / max(stored)
    if scale < 1:
        im.draft(im.mode, (max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    try:
        im.load()  # Pillow refuses truncated files here unless told otherwise, which we don't.
        # Orientations 5-8 turn the picture a quarter: the stored width is the displayed height.
        turned = im.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:
        log.info("damaged image", exc_info=True)
        raise ProcessingError(DAMAGED_IMAGE) from None
    return im, (stored[::-1] if turned else stored)


def _to_srgb(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the picture has transparency, in sRGB and without any metadata."""
    if im.mode.startswith("I"):
        # 16-bit greyscale: convert() would clip every value above 255 to white; scale instead.
        im = im.point(lambda v: v / 256).convert("L")
    target = "RGBA" if im.has_transparency_data else "RGB"
    icc = im.info.get("icc_profile")
    if icc and im.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(im, source, _SRGB, outputMode=target)
        except Exception:
            # A broken profile is common enough (hand-edited files); the plain conversion is close.
            log.info("ignoring unusable ICC profile", exc_info=True)
    out = im.convert(target) if im.mode != target else im.copy()
    out.info.clear()
    return out


def _fit(im: Image.Image, long_side: int) -> Image.Image:
    """The picture with its long side at most ``long_side``; never enlarged."""
    scale = long_side / max(im.size)
    if scale >= 1:
        return im
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# --- Video ------------------------------------------------------------------------------------

# Demuxers ffmpeg and the PyAV probe may use. Without this list FFmpeg guesses from content, and
# a playlist (HLS, concat) disguised as .mp4 would make it read other local files into the output.
_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi"
_SAFE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", _DEMUXERS]


@dataclass
class VideoInfo:
    duration_ms: int
    width: int  # as displayed: already swapped when the video is turned a quarter
    height: int
    has_audio: bool
    rotation: int  # degrees clockwise a player turns the stored frames: 0, 90, 180 or 270
    video_codec: str = ""  # FFmpeg's codec names, e.g. "h264", "vp9", "mjpeg"
    audio_codec: str = ""  # "" when there is no audio
    pixel_format: str = ""  # e.g. "yuv420p"


@dataclass
class VideoResult:
    info: VideoInfo  # of the playback file
    playback: Path  # H.264 yuv420p + AAC in MP4, moov first
    poster: Path  # JPEG, same size as the playback
    thumb: Path  # WebP, long side ≤ 320


def _ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _url(path: Path) -> str:
    # 'file:' keeps ffmpeg from reading "a:b.mp4" as protocol "a" or "-x.mp4" as an option.
    return f"file:{Path(path).resolve()}"


def probe_video(src: Path, timeout: float = PROBE_TIMEOUT) -> VideoInfo:
    """Duration, displayed size, codecs, audio and rotation of a video, read with PyAV.

    PyAV opens the file with the FFmpeg libraries its wheel bundles, in this process: the same
    demuxers (and only those) that the transcode may use, the local file and nothing it names.
    The first frame is decoded to read the rotation, which FFmpeg hands over as frame side data.

    :param timeout: seconds PyAV may wait on opening or on one read before giving up.
    :raises ProcessingError: the file cannot be read or has no video stream.
    """
    with _libav_errors() as messages:
        try:
            container = av.open(_url(src), options=_SAFE_OPTIONS, timeout=timeout)
        except av.error.ExitError:  # the interrupt callback ran out of time
            raise ProcessingError(VIDEO_TOO_SLOW) from None
        except (av.error.FFmpegError, OSError) as exc:
            # FFmpeg's own words ("moov atom not found") are for operators, never for the message.
            log.info("cannot read %s as a video: %s", src, _libav_tail(messages) or exc)
            raise ProcessingError(NOT_A_VIDEO) from None
        with container:
            info = _describe(container)
        if info is None:
            log.info("%s has no video stream: %s", src, _libav_tail(messages))
            raise ProcessingError(NOT_A_VIDEO)
    return info


_SAFE_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": _DEMUXERS}
_FIRST_FRAME_PACKETS = 64  # a decoder that has shown nothing by then will not show the rotation either


def _describe(container: av.container.InputContainer) -> VideoInfo | None:
    """A :class:`VideoInfo` of an open container, or None when it holds no real video stream."""
    # Cover art in a song file is a one-picture "video" stream; it is not a video.
    video = next((s for s in container.streams.video
                  if not s.disposition & av.stream.Disposition.attached_pic), None)
    if video is None:
        return None
    audio = next(iter(container.streams.audio), None)
    codec = video.codec_context
    width, height = codec.width, codec.height
    rotation = _rotation(container, video)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(_duration_ms(container, video), width, height, audio is not None, rotation,
                     video_codec=_codec_name(video), audio_codec=_codec_name(audio) if audio else "",
                     pixel_format=codec.pix_fmt or "")


def _codec_name(stream: av.stream.Stream) -> str:
    # The codec's own name ("h264", "vp9", "av1"), not that of the decoder PyAV picked ("libdav1d").
    return stream.codec_context.codec.canonical_name


def _duration_ms(container: av.container.InputContainer, video: av.stream.Stream) -> int:
    if container.duration and container.duration > 0:  # in AV_TIME_BASE units (microseconds)
        return round(container.duration / 1000)
    if video.duration and video.time_base:
        return max(0, round(video.duration * video.time_base * 1000))
    return 0


def _rotation(container: av.container.InputContainer, video: av.stream.Stream) -> int:
    """Degrees clockwise a player turns the stored frames: from the display matrix, else the old tag."""
    counter_clockwise = 0
    video.codec_context.thread_count = 1  # one frame: threads would only add start-up and delay
    try:
        for n, packet in enumerate(container.demux(video)):
            frames = packet.decode()
            if frames or n >= _FIRST_FRAME_PACKETS:
                counter_clockwise = frames[0].rotation if frames else 0
                break
    except av.error.ExitError:  # the interrupt callback ran out of time
        raise ProcessingError(VIDEO_TOO_SLOW) from None
    except av.error.FFmpegError:
        # A damaged first frame: the transcode decides whether the file is usable.
        log.info("cannot decode the first frame of %s", container.name, exc_info=True)
    if counter_clockwise:
        return round(-counter_clockwise / 90) * 90 % 360
    try:
        return round(int(video.metadata.get("rotate", "0")) / 90) * 90 % 360  # the old tag, clockwise
    except ValueError:
        return 0


@contextmanager
def _libav_errors() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's error messages during the block, for the log ("moov atom not found", ...).

    PyAV drops FFmpeg's log unless a level is set; errors are enough here, and are captured for
    this thread only, so they reach our log line rather than loggers of their own.
    """
    before = av.logging.get_level()
    if before is None:
        av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as messages:
            yield messages
    finally:
        if before is None:
            av.logging.set_level(None)


def _libav_tail(messages: list[tuple[int, str, str]], lines: int = 15) -> str:
    return "\n".join(f"[{name}] {text.strip()}" if name else text.strip() for _, name, text in messages[-lines:])


def process_video(src: Path, workdir: Path, timeout: float = 3600) -> VideoResult:
    """Transcode ``src`` into a web-playable MP4 with a poster frame and a thumbnail.

    H.264 (yuv420p, even size, long side ≤ 1920, never enlarged) + AAC, metadata such as the
    recording location dropped, turned upright (the player need not honour rotation).

    :param timeout: seconds for the whole job; ffmpeg is killed when it runs out.
    :raises ProcessingError: not a video, empty, incomplete, damaged, or too slow.
    """
    deadline = time.monotonic() + timeout
    source = probe_video(src, timeout=min(PROBE_TIMEOUT, timeout))
    playback = workdir / "playback.mp4"
    _run_ffmpeg(_transcode_args(src, playback, source.has_audio), deadline)
    info = probe_video(playback, timeout=_remaining(deadline))
    _check_output(source, info, playback)
    poster = _extract_poster(playback, workdir / "poster.jpg", info.duration_ms, deadline)
    with Image.open(poster) as frame:
        _fit(frame.convert("RGB"), THUMB_SIZE).save(workdir / "thumb.webp", "WEBP", quality=75, method=4)
    return VideoResult(info, playback, poster, workdir / "thumb.webp")


def _transcode_args(src: Path, out: Path, has_audio: bool) -> list[str]:
    # Scale by the display aspect (iw*sar) so anamorphic sources come out with square pixels;
    # round down to even sizes, which yuv420p requires (the 0.001 absorbs float error, so
    # 1079.9999 is 1080). out_range=tv: MJPEG (and some phone) sources are full-range, which
    # H.264 players show washed out. ffmpeg turns rotated video upright before this filter runs.
    fit = f"min(1,{VIDEO_SIZE}/max(iw*sar,ih))"
    scale = f"scale=w='{_even(f'iw*sar*{fit}')}':h='{_even(f'ih*{fit}')}':out_range=tv"
    audio = ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k"] if has_audio else ["-an"]
    return [
        *_SAFE_INPUT, "-i", _url(src),
        "-map", "0:v:0", "-vf", f"{scale},setsar=1,format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        *audio, "-sn", "-dn",
        # The recording's location and device are in the container metadata; it stays private.
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", "-f", "mp4", _url(out),
    ]


def _even(expr: str) -> str:
    return f"max(2,trunc({expr}/2+0.001)*2)"


def _check_output(source: VideoInfo, out: VideoInfo, playback: Path) -> None:
    if out.duration_ms <= 0:
        raise ProcessingError(EMPTY_VIDEO)
    # A file cut off mid-upload still decodes up to the cut when its index comes first; ffmpeg
    # then succeeds with a fraction of the length the header promised.
    if source.duration_ms and out.duration_ms < source.duration_ms / 2:
        log.info("video shorter than its header says: %s ms of %s ms", out.duration_ms, source.duration_ms)
        raise ProcessingError(INCOMPLETE_VIDEO)
    if not faststart(playback):
        log.error("playback %s has its index after the media despite +faststart", playback)
        raise ProcessingError(VIDEO_FAILED)


def _extract_poster(playback: Path, poster: Path, duration_ms: int, deadline: float) -> Path:
    # A second in skips fade-ins and black first frames; short clips use their first frame.
    for at in (1.0, 0.0) if duration_ms >= 1500 else (0.0,):
        poster.unlink(missing_ok=True)
        _run_ffmpeg([*_SAFE_INPUT, "-ss", f"{at}", "-i", _url(playback), "-frames:v", "1",
                     "-q:v", "3", "-update", "1", "-f", "image2", _url(poster)], deadline)
        if poster.exists() and poster.stat().st_size:
            return poster
    raise ProcessingError(VIDEO_FAILED)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProcessingError(VIDEO_TOO_SLOW)
    return left


def _run_ffmpeg(args: list[str], deadline: float) -> None:
    """Run ffmpeg with stderr in a temporary file (a pipe could fill up and stall it)."""
    cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-nostats", "-loglevel", "warning", *args]
    with tempfile.TemporaryFile() as err:
        try:
            # run() kills ffmpeg when the time is up, and waits for it, before raising.
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, timeout=_remaining(deadline))
        except subprocess.TimeoutExpired:
            log.warning("ffmpeg timed out and was killed: %s", _tail(_read(err)))
            raise ProcessingError(VIDEO_TOO_SLOW) from None
        if done.returncode != 0:
            log.warning("ffmpeg failed (exit %s): %s", done.returncode, _tail(_read(err)))
            raise ProcessingError(VIDEO_FAILED)


def _read(f, limit: int = 16_384) -> str:
    # A damaged hour-long file can make ffmpeg warn on every frame; only the end matters.
    f.seek(max(0, f.seek(0, io.SEEK_END) - limit))
    return f.read().decode("utf-8", "replace")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def faststart(path: Path) -> bool:
    """Whether the MP4's index (moov) comes before its media (mdat), so playback can start at once."""
    with open(path, "rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                return False
            size, box = struct.unpack(">I4s", header)
            if box == b"moov":
                return True
            if box == b"mdat":
                return False
            if size == 1:  # a 64-bit size follows the type
                large = f.read(8)
                if len(large) < 8:
                    return False
                size = struct.unpack(">Q", large)[0] - 8
            elif size == 0:  # the box runs to the end of the file
                return False
            if size < 8:
                return False
            f.seek(size - 8, io.SEEK_CUR)
    return False
