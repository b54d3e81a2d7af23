"""`mnist-predict preview`: a contact sheet of what the model saw, the first thing to look at when a batch
goes wrong. Each cell shows the original as a thumbnail, the 28x28 input the model got, the top label and
its probability; rows flagged for review have an orange frame, error rows a red one and their reason.

    mnist-predict preview photos/ --model export/model.onnx --out sheet.png --limit 48
    mnist-predict preview photos/ --model export/model.onnx --out problems.png --problems
"""

import os

from PIL import Image, ImageDraw, ImageFont, ImageOps

from . import images as image_io
from .files import atomic_path

SIZE = image_io.SIZE
THUMB = 112  # the original, fitted into a square of this many pixels
ZOOM = 4  # the 28x28 input, drawn at this many pixels per pixel
PAD = 6
CAPTION = 34
COLOURS = {"ok": (40, 140, 60), "review": (230, 140, 0), "error": (200, 30, 30)}


def contact_sheet(rows, out, columns=6, invert="auto", resize="mnist"):
    """Draw the rows (from batch.predict_files) into a PNG at `out`, written atomically. Returns `out`."""
    font = ImageFont.load_default(size=12)
    cell_w = THUMB + SIZE * ZOOM + 3 * PAD
    sheet, draw, cells = _framed_cells(rows, (cell_w, THUMB + CAPTION + 2 * PAD), columns)
    for row, x, y, kind in cells:
        sheet.paste(thumbnail(row["path"]), (x + PAD, y + PAD))
        pixels, _ = image_io.decode(row["path"], invert=invert, resize=resize)
        if pixels is not None:
            model_input = Image.fromarray(pixels).resize((SIZE * ZOOM, SIZE * ZOOM), Image.Resampling.NEAREST)
            sheet.paste(model_input.convert("RGB"), (x + 2 * PAD + THUMB, y + PAD))
        name = os.path.basename(row["path"])
        if kind == "error":
            caption = f"error: {row['error']}"
        else:
            caption = f"{row['class_name']}  {row['probability']:.0%}" + ("  review" if kind == "review" else "")
        draw.text((x + PAD, y + PAD + THUMB + 2), _fit(name, font, cell_w - 2 * PAD), fill="black", font=font)
        draw.text((x + PAD, y + PAD + THUMB + 17), _fit(caption, font, cell_w - 2 * PAD), fill=COLOURS[kind],
                  font=font)
    _save_atomically(sheet, out)
    return out



READ_W, READ_H = 280, 120  # a reading's original is wide: fitted into this


def reading_sheet(rows, out, columns=3):
    """Draw `read` rows (from batch.read_files) into a PNG at `out`, written atomically: each original with
    a box around every digit, the digit as read and its probability under it, the reading and its
    confidence; "?" digits in red, review rows framed orange, error rows red with their reason."""
    font, small = ImageFont.load_default(size=13), ImageFont.load_default(size=10)
    cell_w = READ_W + 2 * PAD
    sheet, draw, cells = _framed_cells(rows, (cell_w, READ_H + CAPTION + 14 + 2 * PAD), columns)
    for row, x, y, kind in cells:
        image, scale, (dx, dy) = placed_thumbnail(row["path"], (READ_W, READ_H))
        sheet.paste(image, (x + PAD, y + PAD))
        for (label, probability), (bx, by, bw, bh) in zip(row["digits"], row["boxes"]):
            left, top = x + PAD + dx + bx * scale, y + PAD + dy + by * scale
            colour = (200, 30, 30) if label == "?" else (0, 110, 220)
            draw.rectangle([left, top, left + bw * scale, top + bh * scale], outline=colour, width=2)
            draw.text((left + 1, top + bh * scale + 1), f"{label} {probability:.0%}", fill=colour, font=small)
        name = os.path.basename(row["path"])
        if kind == "error":
            caption = f"error: {row['error']}"
        else:
            caption = f"{row['text']}  {row['confidence']:.0%}" + (f"  review: {row['review_reason']}"
                                                                    if kind == "review" else "")
        draw.text((x + PAD, y + PAD + READ_H + 14), _fit(name, font, cell_w - 2 * PAD), fill="black", font=font)
        draw.text((x + PAD, y + PAD + READ_H + 30), _fit(caption, font, cell_w - 2 * PAD), fill=COLOURS[kind],
                  font=font)
    _save_atomically(sheet, out)
    return out


def _framed_cells(rows, cell, columns):
    """(sheet, its ImageDraw, an iterator of (row, x, y, kind)): a white sheet of cells, `columns` a row, each
    cell framed in the colour of its row's kind (ok, review, error) as the iterator reaches it."""
    if not rows:
        raise ValueError("no rows to draw")
    cell_w, cell_h = cell
    columns = min(columns, len(rows))
    sheet = Image.new("RGB", (columns * cell_w, -(-len(rows) // columns) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)

    def cells():
        for index, row in enumerate(rows):
            x, y = (index % columns) * cell_w, (index // columns) * cell_h
            kind = "error" if row["status"] == "error" else "review" if row.get("review") == "yes" else "ok"
            draw.rectangle([x + 1, y + 1, x + cell_w - 2, y + cell_h - 2], outline=COLOURS[kind], width=3)
            yield row, x, y, kind

    return sheet, draw, cells()


def thumbnail(path, box=(THUMB, THUMB)):
    """The original as a person sees it, fitted into THUMB x THUMB on grey: turned by its EXIF orientation,
    transparency shown on the background the model's input composites it onto, 16-bit images scaled to 8
    bits (not clipped); a grey square when it cannot be read."""
    return placed_thumbnail(path, box)[0]


def placed_thumbnail(path, box):
    """(thumbnail, scale, (x, y) offset): a pixel (px, py) of the EXIF-turned original lands at
    (x + px * scale, y + py * scale) of the thumbnail."""
    square = Image.new("RGB", box, (200, 200, 200))
    scale, offset = 1.0, (0, 0)
    try:
        with Image.open(path) as image:
            width = image.width
            image.draft("RGB", box)  # JPEG: decode small
            image.load()
            decoded = width / image.width  # the draft's reduction, the same along both axes
            image = ImageOps.exif_transpose(image)
            full = image.width * decoded  # the width boxes are measured in: the original's, EXIF-turned
            if image_io.is_wide(image.mode):
                image = Image.fromarray(image_io.to_grayscale(image))
            elif image.mode in ("LA", "PA", "RGBA") or "transparency" in image.info:
                image = _on_background(image.convert("RGBA"))
            image = image.convert("RGB")
            image.thumbnail(box)
            offset = ((box[0] - image.width) // 2, (box[1] - image.height) // 2)
            square.paste(image, offset)
            scale = image.width / full  # from the original's pixels to the thumbnail's
    except Exception:  # the row already says why; the cell stays grey
        pass
    return square, scale, offset


def _on_background(rgba):
    """The image composited onto the background the model's input gets (images.ink_background)."""
    import numpy as np

    level = image_io.ink_background(np.asarray(rgba.convert("LA"), dtype=np.float32))
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (level, level, level, 255)), rgba)


def _fit(text, font, width):
    while text and font.getlength(text) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def _save_atomically(image, out):
    with atomic_path(out) as temporary:
        image.save(temporary, "PNG")


def pick(rows, limit, problems=False):
    """The rows to draw: the first `limit`, or the first `limit` flagged for review or failed."""
    chosen = []
    for row in rows:
        if not problems or row["status"] == "error" or row.get("review") == "yes":
            chosen.append(row)
            if len(chosen) == limit:
                break
    return chosen
