#!/usr/bin/env python3
"""Train an audio-visual ASR model with ESPnet's trainer.

Usage:
    python -m espnet2_smile.bin.avsr_train --print_config
    python -m espnet2_smile.bin.avsr_train --config conf/train.yaml \\
        --train_data_path_and_name_and_type dump/raw/train/wav.scp,speech,sound \\
        --train_data_path_and_name_and_type dump/raw/train/video.scp,video,kaldi_ark \\
        --train_data_path_and_name_and_type dump/raw/train/text,text,text ...
"""

from espnet2_smile.tasks.avsr import AVSRTask


def get_parser():
    return AVSRTask.get_parser()


def main(cmd=None):
    """All of ESPnet's trainer options apply (--collect_stats, --resume, --ngpu, DDP)."""
    AVSRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
