"""A second reader of numbers: a model that reads a whole line of ink at once (CTC), beside the digit-by-digit
search of numbers.py.

    image, place = lines.line_image(stretched, labels, line, height)   # numbers.layout_of: one per line
    reader = lines.LineReader(Path("export/lines.onnx"))
    text, confidence, spans = lines.decode(reader.run([image])[0])

The search reads each digit alone, so digits that touch or cross must first be cut apart, and where strokes
interleave no cut is right. A line model needs no cuts: a stack of convolutions turns the line into one
column of class probabilities every 4 px (blank, or a digit), and the best path through them, repeats merged
and blanks dropped, is the text (connectionist temporal classification, as handwriting and scene-text
readers do). numbers.with_line_reading weighs its reading against the search's.

The model is mnist-job's: `mnist-job train-lines` trains it on lines made by line_image itself, and
`mnist-job export` writes it as export/lines.onnx (docs/artifacts.md): one float32 input `line`
(N, HEIGHT, W), W any multiple of STRIDE, white ink on black, 0-255; one output `probabilities`
(N, W / STRIDE, 12), a softmax over blank, the digits 0-9 and "?", a letter or symbol standing in the line
(an export from before the "?" has 11: blank and the digits, and is read as such).
"""

import numpy as np
from PIL import Image

from . import images as image_io
from . import resampling

HEIGHT = 32  # a line image's height, px
DIGIT_HEIGHT = 24  # a digit's height in it: the line's height (numbers.line_height) is scaled to this
PAD = 4  # paper left and right of the ink
STRIDE = 4  # px of line image per output column
# paper added on either side of a line image as the model reads it: most of what a column's output sees (about
# 33 px either way) is then paper, as in training, where lines lay anywhere in 256 px of paper, and not the
# convolutions' zero padding
MARGIN = 16
BLANK = 0  # output column 0 is CTC's blank; column k + 1 is CLASSES[k]
CLASSES = "0123456789?"  # "?": ink that is not a digit (a letter, a symbol), as the digit search writes it
FILE = "lines.onnx"  # its file beside model.onnx in an export folder


def line_image(stretched, labels, line, height):
    """The line's ink (its pieces only, with the stretched image's soft edges) scaled so that a digit is
    DIGIT_HEIGHT px tall (or the whole line fits HEIGHT), centred in a HEIGHT px high uint8 image with PAD
    px either side: (image, (x0, y0, scale)), where the image's column c and row r are the working copy's
    x0 + c / scale and y0 + r / scale."""
    top, bottom = min(p["top"] for p in line), max(p["bottom"] for p in line)
    left, right = min(p["left"] for p in line), max(p["right"] for p in line)
    mine = np.isin(labels[top:bottom, left:right], [p["label"] for p in line])
    grown = image_io.rank_filter(mine, 5, np.maximum)
    ink = np.where(grown, stretched[top:bottom, left:right], 0)
    scale = min(DIGIT_HEIGHT / height, (HEIGHT - 2) / (bottom - top))
    width, rows = max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale))
    # Pillow's resize, as resampling.lanczos computes it exactly: at a line's size that one's matrix products
    # go to a multi-threaded BLAS, whose threads fight the other decode workers' for the cores
    fitted = np.asarray(image_io.resize(Image.fromarray(np.clip(ink, 0, 255).round().astype(np.uint8)), (width, rows),
                                        Image.Resampling.LANCZOS, resampling.REDUCING_GAP))
    image = np.zeros((HEIGHT, width + 2 * PAD), np.uint8)
    y = (HEIGHT - rows) // 2
    image[y:y + rows, PAD:PAD + width] = fitted
    return image, (left - PAD / scale, top - y / scale, scale)


class LineReader:
    """lines.onnx in onnxruntime."""

    calibration = None  # manifest.json's reading_calibration (mnist_predict.reading_confidence), set by Predictor

    def __init__(self, path, threads=1):
        from .runtimes import ModelError, onnx_session

        self.session = onnx_session(path, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 3 or inputs[0].shape[1] != HEIGHT:
            raise ModelError(f"{path.name}: a line model's input must be (N, {HEIGHT}, W)")
        if len(outputs) != 1 or len(outputs[0].shape) != 3 or outputs[0].shape[2] not in (11, 12):
            raise ModelError(f"{path.name}: a line model's output must be (N, W / {STRIDE}, 12), or 11 without "
                             "the \"?\" class")

    def run(self, images):
        """Per image (HEIGHT, W) uint8, its (ceil(W / STRIDE), classes) probabilities. Each image runs alone
        (padded), so that its reading never depends on the other images of a batch: near the end of its input
        a convolution sees its zero padding, not paper."""
        return [cropped(self.session.run(None, {"line": padded(image)})[0][0], image) for image in images]


def padded(image):
    """The model's input for a line image: (1, HEIGHT, W') float32, MARGIN px more paper on either side, W' a
    multiple of STRIDE."""
    width = columns(image) * STRIDE + 2 * MARGIN
    batch = np.zeros((1, HEIGHT, width), np.float32)
    batch[0, :, MARGIN:MARGIN + image.shape[1]] = image
    return batch


def cropped(output, image):
    """The columns of the model's (W' / STRIDE, classes) output for padded(image) that cover the image itself."""
    return output[MARGIN // STRIDE:][:columns(image)]


def columns(image):
    """The output columns that cover the image."""
    return -(-image.shape[1] // STRIDE)


def label(char):
    """The output column of a character of a text: a digit, or "?"."""
    return CLASSES.index(char) + 1


def decode(probabilities):
    """The best path's text, its probability (the product of each column's largest probability: a lower bound
    on the text's), and per character the span of columns [first, last] it was read in."""
    probabilities = np.asarray(probabilities, np.float64)
    best = probabilities.argmax(axis=1)
    text, spans, previous = [], [], BLANK
    for column, top in enumerate(best.tolist()):
        if top != BLANK and top == previous:
            spans[-1][1] = column
        elif top != BLANK:
            text.append(CLASSES[top - 1])
            spans.append([column, column])
        previous = top
    confidence = float(np.exp(np.log(np.maximum(probabilities.max(axis=1), 1e-30)).sum()))
    return "".join(text), confidence, [tuple(span) for span in spans]


def text_probability(probabilities, text):
    """P(text) under the CTC model: the sum over every path that reads it (the forward algorithm, over the
    text's labels with a blank before, between and after them)."""
    logs = np.log(np.maximum(np.asarray(probabilities, np.float64), 1e-30))
    labels = np.full(2 * len(text) + 1, BLANK)
    labels[1::2] = [label(char) for char in text]
    # a path may skip the blank between two different digits, never between two the same
    skip = np.zeros(len(labels), bool)
    skip[2:] = (labels[2:] != BLANK) & (labels[2:] != labels[:-2])
    alpha = np.full(len(labels), -np.inf)
    alpha[:2] = logs[0, labels[:2]]
    for column in range(1, len(logs)):
        stay = alpha
        step = np.concatenate([[-np.inf], alpha[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]])[:len(labels)], -np.inf)
        alpha = np.logaddexp(np.logaddexp(stay, step), jump) + logs[column, labels]
    return float(np.exp(np.logaddexp.reduce(alpha[-2:]) if len(labels) > 1 else alpha[-1]))
