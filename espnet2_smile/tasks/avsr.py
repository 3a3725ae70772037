"""AVSRTask: ESPnet's ASR task with a video input and SMILE's components.

Importing this module registers the components under ESPnet's own ClassChoices
names (``frontend: stacked_fbank``, ``encoder: smile``, ``model: avsr``,
``preprocessor: av``) and adds four groups: ``video_frontend``, ``fusion``,
``masking`` and ``objective``; each gives ``--<group>`` and ``--<group>_conf``.
``--pretrained_avhubert PATH`` (config key ``pretrained_avhubert``) initialises the
built model's video frontend and encoder from a fairseq AV-HuBERT checkpoint
(:mod:`espnet2_smile.asr.pretrained.avhubert`).
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
from espnet2.utils.types import str_or_none

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
from espnet2_smile.asr.pretrained.avhubert import init_from_avhubert
from espnet2_smile.train.preprocessor import AVPreprocessor
from espnet2_smile.train.trainer import AVSRTrainer
from espnet2_smile.utils.checkpoint import load_checkpoint, weights_only_loads

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


# Value ranges of component options, checked before anything is built so that a bad
# value is one error naming the option (some of these classes would fail later, with
# a tensor-shape message, or not at all). Options of our own components not listed
# here are checked by their constructors.
POSITIVE_INT_KEYS = {
    "frontend": ("n_mels", "stack", "n_fft", "win_length", "hop_length"),
    "video_frontend": ("channels", "crop_size", "downsample"),
    "encoder": ("output_size", "attention_heads", "linear_units", "num_blocks",
                "conv_pos_kernel", "conv_pos_groups"),
    "decoder": ("attention_heads", "linear_units", "num_blocks"),
    "objective": ("head_units",),
    "fusion": ("num_groups",),
}
NON_NEGATIVE_INT_KEYS = {"encoder": ("adapter_units",), "model": ("max_av_length_diff",)}
PROBABILITY_KEYS = {  # in [0, 1]
    "encoder": ("dropout_rate", "attention_dropout_rate"),
    "decoder": ("dropout_rate", "positional_dropout_rate", "self_attention_dropout_rate",
                "src_attention_dropout_rate"),
    "model": ("ctc_weight", "modality_dropout"),
}


def check_component_options(args: argparse.Namespace) -> None:
    """Ranges of the ``--<component>_conf`` options and the sizes that must agree.

    Raises:
        ValueError: naming the first bad option and its value.
    """
    def conf(group: str) -> Dict[str, Any]:
        return getattr(args, f"{group}_conf", None) or {}

    def bad(group: str, key: str, value: Any, rule: str) -> ValueError:
        return ValueError(f"--{group}_conf {key}={value!r}: must be {rule}")

    for group, keys in POSITIVE_INT_KEYS.items():
        for key in keys:
            value = conf(group).get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise bad(group, key, value, "a positive integer")
    for group, keys in NON_NEGATIVE_INT_KEYS.items():
        for key in keys:
            value = conf(group).get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise bad(group, key, value, ">= 0")
    for group, keys in PROBABILITY_KEYS.items():
        for key in keys:
            value = conf(group).get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value <= 1:
                raise bad(group, key, value, "in [0, 1]")
    lsm = conf("model").get("lsm_weight")
    if isinstance(lsm, (int, float)) and not 0 <= lsm < 1:
        raise bad("model", "lsm_weight", lsm, "in [0, 1)")
    # the decoder attends over encoder outputs: its heads split the encoder size
    enc_size = conf("encoder").get("output_size", 256)
    dec_heads = conf("decoder").get("attention_heads")
    if getattr(args, "decoder", None) is not None and isinstance(dec_heads, int) and enc_size % dec_heads:
        raise ValueError(
            f"--decoder_conf attention_heads={dec_heads} must divide --encoder_conf "
            f"output_size={enc_size}"
        )


def _build(choices: ClassChoices, name: Optional[str], conf: Dict[str, Any], **given):
    """Instantiate a registered class; a bad name, key or value becomes a one-line error.

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
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        # unknown key, wrong type (typeguard), a value the class refuses
        reason = str(e).splitlines()[0] if str(e) else f"{type(e).__name__} in {cls.__name__}"
        raise ValueError(f"--{choices.name} {name} --{choices.name}_conf {conf}: {reason}") from e


class AVSRTask(ASRTask):
    """Audio-visual speech recognition: inputs ``speech`` (wav.scp), ``video``
    (mouth ROIs, kaldi_ark) and ``text``."""

    num_optimizers: int = 1
    trainer = AVSRTrainer

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
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        super().add_task_arguments(parser)
        group = parser.add_argument_group(description="Pretrained model related")
        group.add_argument(
            "--pretrained_avhubert",
            type=str_or_none,
            default=None,
            help="A fairseq AV-HuBERT checkpoint (.pt, pretrained or fine-tuned) to "
            "initialise the video frontend and the encoder from, after --init "
            "(not in collect_stats mode; --init_param and resumed checkpoints load "
            "after it)",
        )

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
    def main(cls, args: Optional[argparse.Namespace] = None, cmd=None):
        """ESPnet's entry point, with every checkpoint load weights-only
        (:func:`espnet2_smile.utils.checkpoint.weights_only_loads`): resume,
        ``--init_param`` and model averaging never unpickle code."""
        with weights_only_loads():
            super().main(args=args, cmd=cmd)

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
        check_component_options(args)

        # 1. frontends
        frontend = _build(frontend_choices, args.frontend, args.frontend_conf)
        video_frontend = _build(
            video_frontend_choices, args.video_frontend, args.video_frontend_conf
        )
        audio_size = frontend.output_size()
        video_size = video_frontend.output_size() if video_frontend is not None else 0

        # 2. normalisation of the audio features
        normalize = _build(normalize_choices, args.normalize, args.normalize_conf)
        mean = getattr(normalize, "mean", None)  # global_mvn: statistics from a file
        if isinstance(mean, torch.Tensor) and mean.numel() != audio_size:
            raise ValueError(
                f"--normalize_conf stats_file={args.normalize_conf.get('stats_file')}: statistics "
                f"of {mean.numel()} features, the audio frontend gives {audio_size} "
                "(collect the statistics again with this frontend)"
            )

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
        try:
            ctc = CTC(odim=vocab_size, encoder_output_size=encoder.output_size(), **args.ctc_conf)
        except TypeError as e:
            raise ValueError(f"--ctc_conf {args.ctc_conf}: {e}") from e

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
        pretrained = getattr(args, "pretrained_avhubert", None)
        if pretrained is not None and not getattr(args, "collect_stats", False):
            report = init_from_avhubert(model, pretrained)
            # freeze-then-finetune (model_conf freeze_finetune_updates) holds what came from AV-HuBERT
            model.set_frozen(list(report.sources), accum_grad=getattr(args, "accum_grad", 1))
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
        if model_file is not None:
            # every weight comes from model_file: the AV-HuBERT file is not read again
            args.pretrained_avhubert = None
        model = cls.build_model(args)
        model.to(device)
        if model_file is not None:
            state = load_checkpoint(model_file, map_location=device)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(
                    f"{model_file}: checkpoint does not match {config_file}: "
                    f"missing keys {list(missing)[:10]}{' ...' if len(missing) > 10 else ''}, "
                    f"unexpected keys {list(unexpected)[:10]}"
                    f"{' ...' if len(unexpected) > 10 else ''}"
                )
        return model, args
