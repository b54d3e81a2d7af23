"""Deterministic mutation fuzzing of image files for the predictor (tests/test_fuzz.py runs it in CI).

A small seed set, generated here (never downloaded): glyph digits in every supported format and several
modes, at 28x28 and as dark-on-light 64x48 scans. Each mutant is one seed with one mutation:

    bitflip     1-16 random bits flipped anywhere
    truncate    cut at a random length
    header      4 bytes in the first 64 set to an extreme (0, 0xFF.., 0x7F.., 0x80..): sizes, counts, offsets
    duplicate   a random slice copied into another place (a repeated chunk or marker)
    insert      random bytes inserted at a random place
    zero        a random run of bytes zeroed

    python tests/fuzz.py OUT_DIR 5000        # writes the files and prints what it made
"""

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MUTATIONS = ("bitflip", "truncate", "header", "duplicate", "insert", "zero")
EXTREMES = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00")


def glyph(digit, size=28):
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).text((size / 2, size / 2), str(digit), fill=255,
                                font=ImageFont.load_default(size * 0.8), anchor="mm")
    return canvas


def seeds():
    """{name: bytes}: every format, in several modes and two sizes."""
    out = {}
    for k, digit in enumerate(range(10)):
        small = glyph(digit)
        scan = Image.eval(glyph(digit, 48), lambda v: 255 - v).resize((64, 48))
        colour = Image.merge("RGB", [small, small.point(lambda v: v * 0.7), small.point(lambda v: v * 0.4)])
        variants = {
            "png-L": (small, "PNG", {}), "png-RGBA": (colour.convert("RGBA"), "PNG", {}),
            "png-P": (colour.quantize(16), "PNG", {}), "png-1": (small.convert("1"), "PNG", {}),
            "png-I16": (Image.fromarray(np.asarray(small, np.uint16) * 257), "PNG", {}),
            "jpeg-L": (scan, "JPEG", {"quality": 85}), "jpeg-RGB": (colour, "JPEG", {"quality": 90}),
            "bmp-RGB": (colour, "BMP", {}), "bmp-P": (colour.quantize(8), "BMP", {}),
            "gif-P": (scan.convert("P"), "GIF", {}),
            "tiff-L": (scan, "TIFF", {"compression": "tiff_lzw"}), "tiff-RGB": (colour, "TIFF", {}),
            "webp-RGB": (colour, "WEBP", {"quality": 80}), "webp-RGBA": (colour.convert("RGBA"), "WEBP", {"lossless": True}),
        }
        for name, (image, fmt, options) in variants.items():
            buffer = io.BytesIO()
            image.save(buffer, fmt, **options)
            out[f"{name}-{digit}.{fmt.lower().replace('jpeg', 'jpg')}"] = buffer.getvalue()
        if k == 0:  # an animated GIF: only its first frame is ever decoded
            buffer = io.BytesIO()
            glyph(1).convert("P").save(buffer, "GIF", save_all=True, append_images=[glyph(2).convert("P")] * 3)
            out["gif-animated-1.gif"] = buffer.getvalue()
    return out


def mutate(data, kind, rng):
    data = bytearray(data)
    n = len(data)
    if kind == "bitflip":
        for _ in range(int(rng.integers(1, 17))):
            data[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        data = data[: int(rng.integers(1, n))]
    elif kind == "header":
        at = int(rng.integers(0, max(1, min(64, n) - 4)))
        data[at:at + 4] = EXTREMES[int(rng.integers(len(EXTREMES)))]
    elif kind == "duplicate":
        start = int(rng.integers(n))
        piece = data[start:start + int(rng.integers(1, 256))]
        at = int(rng.integers(n))
        data[at:at] = piece
    elif kind == "insert":
        at = int(rng.integers(n))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    else:
        start = int(rng.integers(n))
        data[start:start + int(rng.integers(1, 128))] = bytes(min(128, n - start))
    return bytes(data)


def write(folder, count, seed=0):
    """The seeds (as good-*) and `count` mutants (as <mutation>-*) in `folder`. Returns the counts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    originals = seeds()
    for name, data in originals.items():
        (folder / f"good-{name}").write_bytes(data)
    names = sorted(originals)
    made = {kind: 0 for kind in MUTATIONS}
    for i in range(count):
        source = names[i % len(names)]
        kind = MUTATIONS[(i // len(names)) % len(MUTATIONS)]
        (folder / f"{kind}-{i:05d}-{source}").write_bytes(mutate(originals[source], kind, rng))
        made[kind] += 1
    formats = sorted({name.split("-")[0] for name in names})
    return {"seeds": len(originals), "mutants": count, "mutations": made, "formats": formats,
            "modes": sorted({name.rsplit("-", 1)[0] for name in names})}


if __name__ == "__main__":
    print(write(sys.argv[1], int(sys.argv[2])))
