"""LRS3 reader and the built-in synthetic audio-visual corpus.

Reader (for real LRS3 and the synthetic corpus alike)::

    from espnet2_smile.corpus import read_txt, list_clips, read_valid_ids

Synthetic corpus::

    from espnet2_smile.corpus import generate_corpus, mouth_roi_box, MOUTH_CENTER_XY
    generate_corpus("data/synth", size="tiny", seed=1, nj=2)
    x0, y0, x1, y1 = mouth_roi_box(96)   # fixed mouth crop of the 224x224 frames

Generation needs ffmpeg and libespeak-ng; importing the reader does not.
"""

from espnet2_smile.corpus.lrs3 import (
    LRS3Transcript,
    WordAlignment,
    list_clips,
    normalize_text,
    parse_txt,
    read_txt,
    read_valid_ids,
    utterance_id,
)

_LAZY = {
    # render (geometry of the frames)
    "FRAME_SIZE": "render", "MOUTH_CENTER_XY": "render", "ROI_SIZE": "render",
    "MAX_HEAD_SHIFT_PX": "render", "mouth_roi_box": "render", "crop_mouth": "render",
    # generation
    "generate_corpus": "generate", "SIZES": "generate", "SPLITS": "generate",
    "NOISE_KINDS": "generate", "VALID_LIST": "generate", "MANIFEST": "generate",
    "CORPUS_VERSION": "generate", "load_manifest": "generate", "summary_lines": "generate",
    "plan": "generate",
    "synthesize_clip": "clip", "DEFAULT_LEAD_MS": "clip", "format_lrs3_txt": "clip",
    "GRAMMARS": "grammar", "vocabulary": "grammar", "sample_sentence": "grammar",
    "make_speaker": "speakers",
    "decode_video": "media", "decode_audio": "media", "probe": "media",
}


def __getattr__(name: str):
    """Import the generator modules (numpy, scipy, OpenCV) only when used."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"espnet2_smile.corpus.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'espnet2_smile.corpus' has no attribute {name!r}")


__all__ = [
    "LRS3Transcript", "WordAlignment", "list_clips", "normalize_text", "parse_txt",
    "read_txt", "read_valid_ids", "utterance_id", *sorted(_LAZY),
]
