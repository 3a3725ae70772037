"""Installation script of espnet2_smile, the SMILE audio-visual speech recognition plugin for ESPnet2."""

from pathlib import Path

from setuptools import find_packages, setup

requirements = [
    "torch==2.9.1",
    "torchaudio==2.9.1",
    "espnet==202511",
    "sentencepiece==0.2.0",
    "kaldiio>=2.18",
    "humanfriendly>=10.0",
    "opencv-python>=4.8",
    "matplotlib",
    "tensorboard",
]

# mediapipe (--roi_method mediapipe) is no extra: it needs numpy<2 and lives in its own
# environment (`make mediapipe-env`, see README.md).
extras = {
    "test": ["pytest>=7", "scikit-image>=0.22"],
}

setup(
    name="espnet2_smile",
    version="0.1.0",
    description=(
        "SMILE: audio-visual speech recognition with Siamese masked interaction "
        "learning, as an ESPnet2 plugin and recipe"
    ),
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["espnet2_smile", "espnet2_smile.*"]),
    package_data={"espnet2_smile": ["resources/nltk_data/*/*.zip"]},
    install_requires=requirements,
    extras_require=extras,
)
