"""SMILE audio-visual speech recognition as an ESPnet2 plugin.

Importing the package makes ESPnet's import-time ``nltk`` downloads offline-safe:
``g2p_en`` (imported by every ``espnet2.tasks`` module) asks nltk for two data
packages and downloads them when they are missing. The package ships valid, empty
stand-ins for both and appends their folder to the *end* of nltk's search path, so
real nltk data installed by a user is still found first, and nothing is downloaded
otherwise. Only ``g2p=g2p_en`` phoneme tokenisation needs the real data.
"""

from pathlib import Path

__version__ = "0.1.0"

NLTK_STUB_DIR = Path(__file__).resolve().parent / "resources" / "nltk_data"


def _make_nltk_offline_safe() -> None:
    try:
        import nltk.data
    except ImportError:  # nltk absent: nothing will try to download
        return
    stub = str(NLTK_STUB_DIR)
    if stub not in nltk.data.path:
        nltk.data.path.append(stub)


_make_nltk_offline_safe()
