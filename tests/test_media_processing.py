"""Media processing on local files: recognising uploads, image renditions, video transcoding.

No database: every input is generated here, images with Pillow and videos with ffmpeg's
synthetic sources, and the outputs are checked the way a browser or an operator would see them.
"""
from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

import imageio_ffmpeg
import psutil
import pytest
from PIL import ExifTags, Image, ImageCms

from coach.media import processing
from coach.media.processing import (
    ALLOWED,
    EXTENSIONS,
    ProcessingError,
    faststart,
    matches,
    probe_video,
    process_image,
    process_video,
    sniff,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
RED, BLUE = (255, 0, 0), (0, 0, 255)


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


def describe(path: Path) -> str:
    """What ffmpeg says about a file: the raw text, for things VideoInfo does not carry."""
    return subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def lavfi_clip(path: Path, size="320x240", seconds=2, rate=25, audio=True, video=("-c:v", "libx264"),
               sound=("-c:a", "aac"), source="testsrc2", before=(), after=()) -> Path:
    inputs = ["-f", "lavfi", "-i", f"{source}{':' if '=' in source else '='}size={size}:rate={rate}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    ffmpeg(*before, *inputs, "-t", str(seconds), *video, *(sound if audio else ["-an"]), *after, str(path))
    return path


# Each clip is made once per module, and only when a test asks for it.
CLIPS = {
    "mp4": dict(name="clip.mp4", size="640x360", video=("-c:v", "libx264", "-pix_fmt", "yuv420p")),
    "mov": dict(name="clip.mov", video=("-c:v", "libx264", "-pix_fmt", "yuv420p")),
    "webm-vp9-opus": dict(name="vp9.webm", video=("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"),
                          sound=("-c:a", "libopus")),
    "webm-vp8-vorbis": dict(name="vp8.webm", video=("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"),
                            sound=("-c:a", "libvorbis")),
    "mjpeg-mov": dict(name="mjpeg.mov", video=("-c:v", "mjpeg"), sound=("-c:a", "pcm_s16le")),
    "mjpeg-avi": dict(name="mjpeg.avi", video=("-c:v", "mjpeg"), sound=("-c:a", "pcm_s16le")),
    "no-audio": dict(name="silent.mp4", audio=False),
    # testsrc2 rounds its size to even numbers; a scale after it does not.
    "odd-size": dict(name="odd.mp4", audio=False,
                     video=("-vf", "scale=321:241", "-c:v", "libx264", "-pix_fmt", "yuv444p")),
    "big": dict(name="big.mp4", size="2560x1440", rate=5, audio=False, video=("-c:v", "libx264", "-preset", "ultrafast")),
    # Long enough that no machine transcodes it within the timeout test's half second (10 frames of
    # "big" once took less than that on a fast one).
    "slow": dict(name="slow.mp4", size="2560x1440", rate=25, seconds=8, audio=False,
                 video=("-c:v", "libx264", "-preset", "ultrafast")),
    "short": dict(name="short.mp4", seconds=0.6),
    "private": dict(name="private.mov", audio=False, after=(
        "-metadata", "location=+48.8577+002.2950/", "-metadata", "title=Secret meeting",
        "-metadata:s:v:0", "handler_name=Ada's iPhone", "-f", "mov")),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    made: dict[str, Path] = {}

    def make(key: str) -> Path:
        if key not in made:
            spec = dict(CLIPS[key])
            made[key] = lavfi_clip(folder / spec.pop("name"), **spec)
        return made[key]

    return make


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory) -> Path:
    """A portrait phone video: frames stored landscape (red block top left) with a 90° clockwise display matrix."""
    folder = tmp_path_factory.mktemp("phone")
    marked = lavfi_clip(folder / "stored.mp4", size="320x240", source="color=c=blue",
                        video=("-vf", "drawbox=x=0:y=0:w=80:h=60:color=red:t=fill", "-c:v", "libx264"))
    # -90: a display matrix holds the counter-clockwise angle; phones write this for "turn 90° clockwise".
    ffmpeg("-display_rotation", "-90", "-i", str(marked), "-c", "copy", str(folder / "portrait.mp4"))
    return folder / "portrait.mp4"


# --- Recognising files ------------------------------------------------------------------------


def image_bytes(fmt: str, mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (40, 30), "red").save(out, fmt)
    return out.getvalue()


def test_every_allowed_type_has_extensions():
    assert EXTENSIONS.keys() == ALLOWED.keys()
    assert set(ALLOWED.values()) == {"image", "video", "pdf"}


@pytest.mark.parametrize("fmt, expected", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"),
                                           ("PDF", "application/pdf")])
def test_sniff_recognises_generated_images_and_pdf(fmt, expected):
    assert sniff(image_bytes(fmt)[:512]) == expected


@pytest.mark.parametrize("key, expected", [("mp4", "video/mp4"), ("no-audio", "video/mp4"), ("mov", "video/quicktime"),
                                           ("mjpeg-mov", "video/quicktime"), ("webm-vp9-opus", "video/webm"),
                                           ("webm-vp8-vorbis", "video/webm")])
def test_sniff_recognises_generated_videos(clip, key, expected):
    assert sniff(clip(key).read_bytes()[:512]) == expected


@pytest.mark.parametrize("head", [
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48,  # a Windows program
    b"",
    b"\xff\xd8",  # too short to be anything
    b"GIF89a" + b"\x00" * 40,  # an image, but not one we accept
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 8,  # an iPhone photo, not a video
    b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isommp42" + b"\x00" * 8,  # a song
    b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 24,  # RIFF, but a sound
])
def test_sniff_refuses_what_we_do_not_accept(head):
    assert sniff(head) is None


def test_sniff_recognises_old_quicktime_without_ftyp():
    # Some cameras write a bare 'wide' or 'mdat' atom first.
    assert sniff(b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat" + b"\x00" * 24) == "video/quicktime"


def test_sniff_refuses_matroska_that_is_not_webm(tmp_path):
    mkv = lavfi_clip(tmp_path / "clip.mkv", size="64x48", seconds=0.2, audio=False)
    assert mkv.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
    assert sniff(mkv.read_bytes()[:512]) is None


def test_matches_treats_mp4_and_quicktime_as_one_family(clip):
    assert matches("video/quicktime", clip("mp4").read_bytes()[:512])
    assert matches("video/mp4", clip("mov").read_bytes()[:512])


def test_matches_accepts_parameters_and_case(clip):
    assert matches("video/webm;codecs=vp9,opus", clip("webm-vp9-opus").read_bytes()[:512])
    assert matches("IMAGE/JPEG", image_bytes("JPEG"))


def test_matches_refuses_mislabelled_files(clip):
    assert not matches("image/png", image_bytes("PDF"))
    assert not matches("video/webm", clip("mp4").read_bytes()[:512])
    assert not matches("image/gif", image_bytes("GIF", "P"))  # not an allowed type at all
    assert not matches("image/jpeg", b"")


# --- Images -----------------------------------------------------------------------------------


def marked(size=(60, 40), mode="RGB") -> Image.Image:
    """Blue with a red block in the top-left corner, to see where that corner ends up."""
    im = Image.new("RGB", size, BLUE)
    im.paste(RED, (0, 0, size[0] // 4, size[1] // 4))
    return im.convert(mode)


def close_to(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def assert_no_metadata(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "WEBP"
        assert not im.getexif()
        assert not {"exif", "xmp", "icc_profile", "XML:com.adobe.xmp"} & set(im.info)


def private_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Acme Phone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
    return exif


def test_image_is_turned_upright_and_stripped_of_location(tmp_path):
    src = tmp_path / "photo.jpg"
    marked().save(src, exif=private_exif(6), xmp=b"<x:xmpmeta>private</x:xmpmeta>", comment=b"Ada's phone")
    with Image.open(src) as original:  # the test input really carries what must go
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo) and "xmp" in original.info

    result = process_image(src, tmp_path)

    assert (result.width, result.height) == (40, 60)  # orientation 6 turns the picture a quarter
    for rendition in (result.large, result.thumb):
        assert_no_metadata(rendition)
        assert b"Acme" not in rendition.read_bytes() and b"private" not in rendition.read_bytes()
    with Image.open(result.large) as large:
        assert large.size == (40, 60)
        # Turned clockwise, the stored top-left corner is shown top right.
        assert close_to(large.getpixel((35, 3)), RED)
        assert close_to(large.getpixel((3, 3)), BLUE)
        assert close_to(large.getpixel((35, 56)), BLUE)


def test_large_jpeg_is_reduced_and_keeps_its_displayed_size(tmp_path):
    src = tmp_path / "big.jpg"
    marked((3300, 1650)).save(src, exif=private_exif(8), quality=80)

    result = process_image(src, tmp_path)

    assert (result.width, result.height) == (1650, 3300)
    with Image.open(result.large) as large, Image.open(result.thumb) as thumb:
        assert large.size == (800, 1600)
        assert thumb.size == (160, 320)
        # Orientation 8 turns counter-clockwise: the stored top-left corner is shown bottom left.
        assert close_to(large.getpixel((20, 1580)), RED)
        assert close_to(large.getpixel((20, 20)), BLUE)


def test_small_image_is_not_enlarged(tmp_path):
    src = tmp_path / "small.png"
    marked((100, 80)).save(src)

    result = process_image(src, tmp_path)

    with Image.open(result.large) as large, Image.open(result.thumb) as thumb:
        assert large.size == thumb.size == (100, 80)
    assert (result.width, result.height) == (100, 80)


def test_transparent_png_keeps_its_transparency(tmp_path):
    src = tmp_path / "logo.png"
    im = marked((400, 200), "RGBA")
    im.paste((0, 0, 0, 0), (200, 0, 400, 200))
    im.save(src)

    result = process_image(src, tmp_path)

    with Image.open(result.thumb) as thumb:
        assert thumb.size == (320, 160)
        assert thumb.mode == "RGBA"
        assert thumb.getpixel((300, 100))[3] == 0
        assert thumb.getpixel((100, 100))[3] == 255


@pytest.mark.parametrize("transparent", [True, False])
def test_palette_png_keeps_colours(tmp_path, transparent):
    src = tmp_path / "palette.png"
    im = marked((60, 40)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    blue_index = im.getpixel((50, 30))
    im.save(src, transparency=blue_index) if transparent else im.save(src)

    result = process_image(src, tmp_path)

    with Image.open(result.large) as large:
        assert close_to(large.getpixel((3, 3))[:3], RED)
        if transparent:
            assert large.mode == "RGBA" and large.getpixel((50, 30))[3] == 0
        else:
            assert large.mode == "RGB" and close_to(large.getpixel((50, 30)), BLUE)


def test_cmyk_jpeg_comes_out_rgb(tmp_path):
    src = tmp_path / "print.jpg"
    marked(mode="CMYK").save(src, quality=95)

    result = process_image(src, tmp_path)

    with Image.open(result.large) as large:
        assert large.mode == "RGB"
        assert close_to(large.getpixel((3, 3)), RED, 60)
        assert close_to(large.getpixel((50, 30)), BLUE, 60)


def test_sixteen_bit_greyscale_keeps_its_tones(tmp_path):
    src = tmp_path / "scan.png"
    Image.new("I;16", (50, 50), 32768).save(src)  # mid grey in 16 bits

    result = process_image(src, tmp_path)

    with Image.open(result.large) as large:
        assert all(120 <= channel <= 136 for channel in large.convert("RGB").getpixel((25, 25)))


def test_colour_profile_is_applied_then_dropped(tmp_path):
    src = tmp_path / "profiled.jpg"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    marked().save(src, icc_profile=srgb, quality=95)

    result = process_image(src, tmp_path)

    assert_no_metadata(result.large)
    with Image.open(result.large) as large:
        assert close_to(large.getpixel((3, 3)), RED)


# libwebp checks a file is whole before it decodes anything, so a cut WebP is "not an image".
@pytest.mark.parametrize("fmt, reason", [("JPEG", processing.DAMAGED_IMAGE), ("PNG", processing.DAMAGED_IMAGE),
                                         ("WEBP", processing.NOT_AN_IMAGE)])
def test_truncated_image_is_refused(tmp_path, fmt, reason):
    src = tmp_path / "cut"
    out = io.BytesIO()
    Image.effect_noise((400, 300), 80).convert("RGB").save(out, fmt)
    src.write_bytes(out.getvalue()[: len(out.getvalue()) * 6 // 10])

    with pytest.raises(ProcessingError) as exc:
        process_image(src, tmp_path)
    assert str(exc.value) == reason


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and carries no pixels: what a decompression bomb looks like to a decoder."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(9000, 9000), (40000, 40000)])  # above our limit; above Pillow's
def test_decompression_bomb_is_refused_before_decoding(tmp_path, width, height):
    src = tmp_path / "bomb.png"
    src.write_bytes(png_header_only(width, height))

    with pytest.raises(ProcessingError) as exc:
        process_image(src, tmp_path)
    assert str(exc.value) == processing.HUGE_IMAGE
    assert not (tmp_path / "large.webp").exists()


def test_pixel_limit_can_be_lowered(tmp_path):
    src = tmp_path / "photo.png"
    marked((100, 100)).save(src)
    with pytest.raises(ProcessingError, match="too large"):
        process_image(src, tmp_path, max_pixels=5_000)


@pytest.mark.parametrize("content", [b"%PDF-1.7\n" + b"x" * 100, b"GIF89a" + b"\x00" * 100, b"\x00" * 10, b""])
def test_files_that_are_not_images_are_refused(tmp_path, content):
    src = tmp_path / "upload.png"
    src.write_bytes(content)
    with pytest.raises(ProcessingError) as exc:
        process_image(src, tmp_path)
    assert str(exc.value) == processing.NOT_AN_IMAGE


# --- Video: reading -----------------------------------------------------------------------------


@pytest.mark.parametrize("key, duration_ms, size, has_audio, codec", [
    ("mp4", 2000, (640, 360), True, "h264"),
    ("mov", 2000, (320, 240), True, "h264"),
    ("webm-vp9-opus", 2000, (320, 240), True, "vp9"),
    ("webm-vp8-vorbis", 2000, (320, 240), True, "vp8"),
    ("mjpeg-avi", 2000, (320, 240), True, "mjpeg"),
    ("no-audio", 2000, (320, 240), False, "h264"),
    ("odd-size", 2000, (321, 241), False, "h264"),
])
def test_probe_reads_length_size_and_sound(clip, key, duration_ms, size, has_audio, codec):
    info = probe_video(clip(key))
    assert abs(info.duration_ms - duration_ms) <= 60
    assert (info.width, info.height) == size
    assert info.has_audio is has_audio
    assert info.rotation == 0
    assert info.video_codec == codec


def test_probe_reports_portrait_phone_video_as_displayed(phone_clip):
    info = probe_video(phone_clip)
    assert (info.width, info.height, info.rotation) == (240, 320, 90)


@pytest.mark.parametrize("display_rotation, rotation", [(-90, 90), (180, 180), (90, 270)])
def test_probe_reads_every_quarter_turn(tmp_path, display_rotation, rotation):
    # -display_rotation takes the counter-clockwise angle a display matrix holds; VideoInfo says clockwise.
    stored = lavfi_clip(tmp_path / "stored.mp4", size="320x240", seconds=0.4, audio=False)
    ffmpeg("-display_rotation", str(display_rotation), "-i", str(stored), "-c", "copy", str(tmp_path / "turned.mp4"))

    info = probe_video(tmp_path / "turned.mp4")

    assert info.rotation == rotation
    assert (info.width, info.height) == ((240, 320) if rotation in (90, 270) else (320, 240))


def test_probe_names_codecs_and_pixel_format(clip):
    info = probe_video(clip("mp4"))
    assert (info.video_codec, info.audio_codec, info.pixel_format) == ("h264", "aac", "yuv420p")
    silent = probe_video(clip("no-audio"))
    assert (silent.has_audio, silent.audio_codec) == (False, "")
    assert probe_video(clip("webm-vp9-opus")).audio_codec == "opus"


def test_cover_art_is_not_a_video(tmp_path):
    # A song with its album cover: the cover is a one-picture "video" stream (attached pic).
    song = tmp_path / "song.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-f", "lavfi", "-i", "color=c=red:size=60x60",
           "-frames:v", "1", "-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "mjpeg",
           "-disposition:v:0", "attached_pic", str(song))
    assert "(attached pic)" in describe(song)

    with pytest.raises(ProcessingError) as exc:
        probe_video(song)
    assert str(exc.value) == processing.NOT_A_VIDEO


# --- Video: transcoding -------------------------------------------------------------------------


def assert_web_playable(result, size, has_audio) -> None:
    info = result.info
    assert (info.video_codec, info.pixel_format) == ("h264", "yuv420p")
    assert info.audio_codec == ("aac" if has_audio else "")
    assert "yuv420p(pc" not in describe(result.playback)  # full range looks washed out in browsers
    assert faststart(result.playback)
    assert (info.width, info.height) == size and info.rotation == 0
    with Image.open(result.poster) as poster:
        assert poster.format == "JPEG" and poster.size == size
    with Image.open(result.thumb) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= 320


@pytest.mark.parametrize("key", ["mp4", "mov", "webm-vp9-opus", "webm-vp8-vorbis", "mjpeg-mov", "mjpeg-avi",
                                 "no-audio"])
def test_video_becomes_web_playable_mp4(clip, tmp_path, key):
    source = probe_video(clip(key))

    result = process_video(clip(key), tmp_path)

    assert_web_playable(result, (source.width, source.height), source.has_audio)
    assert abs(result.info.duration_ms - source.duration_ms) <= 100
    assert result.playback.read_bytes()[4:8] == b"ftyp"


def test_large_video_is_reduced_to_1920(clip, tmp_path):
    result = process_video(clip("big"), tmp_path)
    assert_web_playable(result, (1920, 1080), has_audio=False)


def test_odd_sized_video_gets_even_dimensions(clip, tmp_path):
    result = process_video(clip("odd-size"), tmp_path)
    assert_web_playable(result, (320, 240), has_audio=False)


def test_anamorphic_video_gets_square_pixels(tmp_path):
    # Stored 320x240 with pixels twice as wide as tall (as DV and some broadcast files are).
    src = lavfi_clip(tmp_path / "wide.mov", seconds=1, audio=False,
                     video=("-vf", "setsar=2", "-c:v", "libx264"), after=("-f", "mov"))
    assert "SAR 2:1" in describe(src)

    result = process_video(src, tmp_path)

    assert_web_playable(result, (640, 240), has_audio=False)
    assert "SAR 1:1" in describe(result.playback)


def test_portrait_phone_video_is_turned_upright(phone_clip, tmp_path):
    result = process_video(phone_clip, tmp_path)

    assert_web_playable(result, (240, 320), has_audio=True)
    assert "rotation" not in describe(result.playback)
    with Image.open(result.poster) as poster:
        # Turned clockwise, the stored top-left corner is shown top right.
        assert close_to(poster.getpixel((230, 10)), RED)
        assert close_to(poster.getpixel((10, 10)), BLUE)


def test_clip_shorter_than_a_second_still_gets_a_poster(clip, tmp_path):
    result = process_video(clip("short"), tmp_path)
    assert_web_playable(result, (320, 240), has_audio=True)
    assert 500 <= result.info.duration_ms <= 700


def test_recording_location_and_device_are_dropped(clip, tmp_path):
    assert "+48.8577" in describe(clip("private"))
    result = process_video(clip("private"), tmp_path)
    text = describe(result.playback)
    assert "+48.8577" not in text and "Secret" not in text and "iPhone" not in text


def test_faststart_tells_where_the_index_is(clip, tmp_path):
    assert not faststart(clip("mp4"))  # ffmpeg writes the index last unless asked
    assert faststart(process_video(clip("mp4"), tmp_path).playback)


BROKEN = {
    "random bytes": processing.NOT_A_VIDEO,
    "empty": processing.NOT_A_VIDEO,
    "first 30% (index at the end)": processing.NOT_A_VIDEO,
    "first 30% (index first)": processing.INCOMPLETE_VIDEO,
    "no frames": processing.NOT_A_VIDEO,
    "sound only": processing.NOT_A_VIDEO,
    "a picture renamed": processing.NOT_A_VIDEO,
    "a playlist reading local files": processing.NOT_A_VIDEO,
    "a concat list": processing.NOT_A_VIDEO,
}


@pytest.fixture(scope="module")
def broken(clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    whole = clip("mp4").read_bytes()
    indexed_first = process_video(clip("no-audio"), folder).playback.read_bytes()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "0", "-c:v", "libx264", str(folder / "none.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine", "-t", "0.5", "-c:a", "aac", str(folder / "song.m4a"))
    return {
        "no frames": (folder / "none.mp4").read_bytes(),
        "sound only": (folder / "song.m4a").read_bytes(),
        "random bytes": bytes(range(256)) * 64,
        "empty": b"",
        "first 30% (index at the end)": whole[: len(whole) * 3 // 10],
        "first 30% (index first)": indexed_first[: len(indexed_first) * 3 // 10],
        "a picture renamed": image_bytes("PNG"),
        "a playlist reading local files": b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n/etc/passwd\n"
                                          b"#EXT-X-ENDLIST\n",
        "a concat list": b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    }


@pytest.mark.parametrize("case", BROKEN)
def test_broken_video_is_refused_with_a_readable_reason(broken, tmp_path, case):
    src = tmp_path / "upload.mp4"
    src.write_bytes(broken[case])

    with pytest.raises(ProcessingError) as exc:
        process_video(src, tmp_path)

    message = str(exc.value)
    assert message == BROKEN[case]
    assert str(tmp_path) not in message and "ffmpeg" not in message.lower() and "moov" not in message
    assert not (tmp_path / "poster.jpg").exists()


def test_video_that_takes_too_long_is_stopped(clip, tmp_path):
    with pytest.raises(ProcessingError) as exc:
        process_video(clip("slow"), tmp_path, timeout=0.5)
    assert str(exc.value) == processing.VIDEO_TOO_SLOW
    assert not [p for p in psutil.Process().children(recursive=True) if "ffmpeg" in p.name()]


def test_operators_see_why_ffmpeg_refused_a_file(clip, tmp_path, caplog):
    whole = clip("mp4").read_bytes()
    src = tmp_path / "cut.mp4"
    src.write_bytes(whole[: len(whole) // 3])

    with caplog.at_level("INFO", logger="coach.media.processing"), pytest.raises(ProcessingError):
        process_video(src, tmp_path)

    assert "moov atom not found" in caplog.text  # ffmpeg's own words, in the log only
