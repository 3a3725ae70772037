"""Preprocessor of audio-visual utterances: text tokenisation and video casting."""

from typing import Dict, Union

import numpy as np
from espnet2.train.preprocessor import CommonPreprocessor
from typeguard import typechecked


class AVPreprocessor(CommonPreprocessor):
    """ESPnet's CommonPreprocessor (tokenisation, optional noise/RIR) plus the video.

    Mouth ROIs are stored as uint8 ``(T, H, W)`` arrays (4x smaller than float32);
    ESPnet's dataset accepts only float and int arrays, so they are cast to float32
    here (values stay in [0, 255]; the video frontend normalises them).
    A malformed item raises a one-line error naming the utterance.

    Args:
        video_name: Name of the video input.
        kwargs: CommonPreprocessor's arguments.
    """

    def __init__(self, *args, video_name: str = "video", **kwargs):
        super().__init__(*args, **kwargs)
        self.video_name = video_name

    @typechecked
    def __call__(
        self, uid: str, data: Dict[str, Union[str, np.ndarray]]
    ) -> Dict[str, np.ndarray]:
        if self.video_name in data:
            video = data[self.video_name]
            if not isinstance(video, np.ndarray) or video.ndim != 3:
                shape = getattr(video, "shape", type(video).__name__)
                raise ValueError(
                    f"utterance {uid}: video must be a (T, H, W) array, got {shape}"
                )
            if video.shape[0] == 0:
                raise ValueError(f"utterance {uid}: video has no frames")
            data[self.video_name] = video.astype(np.float32, copy=False)
        speech = data.get(self.speech_name)
        if isinstance(speech, np.ndarray) and speech.size == 0:
            raise ValueError(f"utterance {uid}: audio has no samples")
        text = data.get(self.text_name)
        if isinstance(text, str) and not text.strip():
            raise ValueError(f"utterance {uid}: empty transcript")
        return super().__call__(uid, data)
