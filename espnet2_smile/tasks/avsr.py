"""AVSRTask: ESPnet's ASR task with a video input and SMILE's components.

Importing this module registers the components under ESPnet's own ClassChoices
names (``frontend: stacked_fbank``, ``encoder: smile``, ``model: avsr``,
``preprocessor: av``) and adds four groups: ``video_frontend``, ``fusion``,
``masking`` and ``objective``; each gives ``--<group>`` and ``--<group>_conf``.
"""

import argparse
import inspect
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import yaml
from typeguard import typechecked

import espnet2_smile  # noqa: F401  (offline-safe nltk before ESPnet's tasks import g2p_en)
import espnet2.tasks.asr as asr_task
from espnet2.asr.ctc import CTC
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.tasks.asr import ASRTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.class_choices import ClassChoices
from espnet2.train.preprocessor import AbsPreprocessor

from espnet2_smile.asr.encoder.smile_encoder import SmileEncoder
from espnet2_smile.asr.espnet_model import ESPnetAVSRModel
from espnet2_smile.asr.frontend.abs_video_frontend import AbsVideoFrontend
from espnet2_smile.asr.frontend.resnet_video import ResNetVideoFrontend
from espnet2_smile.asr.frontend.stacked_fbank import StackedFbankFrontend
from espnet2_smile.asr.fusion.abs_fusion import AbsFusion
from espnet2_smile.asr.fusion.adaptive import AdaptiveDynamicFusion
from espnet2_smile.asr.fusion.concat import ConcatFusion
from espnet2_smile.asr.fusion.last_layer import LastLayerFusion
from espnet2_smile.asr.masking.abs_masking import AbsMasking
from espnet2_smile.asr.masking.span_masking import SpanMasking
from espnet2_smile.asr.objective.abs_objective import AbsObjective
from espnet2_smile.asr.objective.masked_prediction import MaskedPredictionObjective
from espnet2_smile.asr.objective.siamese import SiameseObjective
from espnet2_smile.train.preprocessor import AVPreprocessor

# Names in ESPnet's own registries (so ASRTask and its tools resolve them too).
asr_task.frontend_choices.classes["stacked_fbank"] = StackedFbankFrontend
asr_task.encoder_choices.classes["smile"] = SmileEncoder
asr_task.model_choices.classes["avsr"] = ESPnetAVSRModel
asr_task.preprocessor_choices.classes["av"] = AVPreprocessor

frontend_choices = ClassChoices(
    "frontend",
    classes=dict(stacked_fbank=StackedFbankFrontend),
    type_check=AbsFrontend,
    default="stacked_fbank",
)
video_frontend_choices = ClassChoices(
    "video_frontend",
    classes=dict(resnet=ResNetVideoFrontend),
    type_check=AbsVideoFrontend,
    default="resnet",
    optional=True,  # none: an audio-only model
)
normalize_choices = asr_task.normalize_choices
encoder_choices = ClassChoices(
    "encoder", classes=dict(smile=SmileEncoder), type_check=SmileEncoder, default="smile"
)
fusion_choices = ClassChoices(
    "fusion",
    classes=dict(adaptive=AdaptiveDynamicFusion, concat=ConcatFusion, last=LastLayerFusion),
    type_check=AbsFusion,
    default="adaptive",
)
masking_choices = ClassChoices(
    "masking", classes=dict(span=SpanMasking), type_check=AbsMasking, default=None, optional=True
)
objective_choices = ClassChoices(
    "objective",
    classes=dict(siamese=SiameseObjective, mlm=MaskedPredictionObjective),
    type_check=AbsObjective,
    default=None,
    optional=True,
)
decoder_choices = asr_task.decoder_choices
model_choices = ClassChoices(
    "model", classes=dict(avsr=ESPnetAVSRModel), type_check=AbsESPnetModel, default="avsr"
)
preprocessor_choices = ClassChoices(
    "preprocessor",
    classes=dict(av=AVPreprocessor),
    type_check=AbsPreprocessor,
    default="av",
)


def _build(choices: ClassChoices, name: Optional[str], conf: Dict[str, Any], **given):
    """Instantiate a registered class; a bad name or key becomes a one-line error.

    ``given`` are the values the task derives (sizes); they are passed only when the
    class's constructor takes them, and may not be set in the ``_conf`` dict.
    """
    cls = choices.get_class(name)
    if cls is None:
        return None
    params = inspect.signature(cls.__init__).parameters
    clash = sorted(set(given) & set(conf))
    if clash:
        raise ValueError(
            f"--{choices.name}_conf must not set {clash}: they are derived from the other "
            "components"
        )
    kwargs = {k: v for k, v in given.items() if k in params}
    try:
        return cls(**kwargs, **conf)
    except TypeError as e:  # unknown key, wrong type (typeguard)
        raise ValueError(f"--{choices.name} {name} --{choices.name}_conf {conf}: {e}") from e


class AVSRTask(ASRTask):
    """Audio-visual speech recognition: inputs ``speech`` (wav.scp), ``video``
    (mouth ROIs, kaldi_ark) and ``text``."""

    num_optimizers: int = 1

    class_choices_list = [
        frontend_choices,
        video_frontend_choices,
        normalize_choices,
        encoder_choices,
        fusion_choices,
        masking_choices,
        objective_choices,
        decoder_choices,
        model_choices,
        preprocessor_choices,
    ]

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        if not inference:
            return ("speech", "video", "text")
        return ("speech", "video")

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ()

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> ESPnetAVSRModel:
        if isinstance(args.token_list, str):
            with open(args.token_list, encoding="utf-8") as f:
                token_list = [line.rstrip() for line in f]
            # stored back into args so that config.yaml is self-contained
            args.token_list = list(token_list)
        elif isinstance(args.token_list, (tuple, list)):
            token_list = list(args.token_list)
        else:
            raise RuntimeError("token_list must be a file name or a list")
        vocab_size = len(token_list)
        logging.info(f"Vocabulary size: {vocab_size}")
        if getattr(args, "input_size", None) is not None:
            raise ValueError("--input_size is not supported: features are computed in the model")

        # 1. frontends
        frontend = _build(frontend_choices, args.frontend, args.frontend_conf)
        video_frontend = _build(
            video_frontend_choices, args.video_frontend, args.video_frontend_conf
        )
        audio_size = frontend.output_size()
        video_size = video_frontend.output_size() if video_frontend is not None else 0

        # 2. normalisation of the audio features
        normalize = _build(normalize_choices, args.normalize, args.normalize_conf)

        # 3. encoder and its final fusion
        encoder = _build(
            encoder_choices,
            args.encoder,
            args.encoder_conf,
            input_size=audio_size,
            video_input_size=video_size,
        )
        fusion = _build(
            fusion_choices,
            args.fusion,
            args.fusion_conf,
            size=encoder.output_size(),
            num_layers=encoder.num_blocks,
            num_streams=encoder.num_streams,
        )
        encoder.set_fusion(fusion)

        # 4. training-only parts
        masking = _build(
            masking_choices,
            getattr(args, "masking", None),
            getattr(args, "masking_conf", {}),
            audio_size=audio_size,
            video_size=video_size,
        )
        objective = _build(
            objective_choices,
            getattr(args, "objective", None),
            getattr(args, "objective_conf", {}),
            size=encoder.output_size(),
            audio_size=audio_size,
            video_size=video_size,
        )

        # 5. decoder and CTC
        decoder = _build(
            decoder_choices,
            args.decoder,
            args.decoder_conf,
            vocab_size=vocab_size,
            encoder_output_size=encoder.output_size(),
        )
        ctc = CTC(odim=vocab_size, encoder_output_size=encoder.output_size(), **args.ctc_conf)

        # 6. the model
        model = _build(
            model_choices,
            args.model,
            args.model_conf,
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            video_frontend=video_frontend,
            normalize=normalize,
            encoder=encoder,
            decoder=decoder,
            ctc=ctc,
            masking=masking,
            objective=objective,
        )
        if args.init is not None:
            initialize(model, args.init)
        return model

    @classmethod
    def build_model_from_file(
        cls,
        config_file: Union[Path, str, None] = None,
        model_file: Union[Path, str, None] = None,
        device: str = "cpu",
    ) -> Tuple[AbsESPnetModel, argparse.Namespace]:
        """Build the model from config.yaml and load the weights strictly.

        ESPnet's loader uses ``strict=False``, which silently leaves missing weights
        (e.g. the whole video frontend) at their random initialisation; here any
        missing or unexpected key is an error naming the checkpoint and the keys.
        """
        if config_file is None:
            if model_file is None:
                raise ValueError("give config_file or model_file")
            config_file = Path(model_file).parent / "config.yaml"
        with Path(config_file).open("r", encoding="utf-8") as f:
            args = argparse.Namespace(**yaml.safe_load(f))
        model = cls.build_model(args)
        model.to(device)
        if model_file is not None:
            state = torch.load(model_file, map_location=device, weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(
                    f"{model_file}: checkpoint does not match {config_file}: "
                    f"missing keys {list(missing)[:10]}{' ...' if len(missing) > 10 else ''}, "
                    f"unexpected keys {list(unexpected)[:10]}"
                    f"{' ...' if len(unexpected) > 10 else ''}"
                )
        return model, args
