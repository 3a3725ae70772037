"""ESPnetAVSRModel: hybrid CTC/attention audio-visual model with SMILE's training objectives."""

import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.abs_decoder import AbsDecoder
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from typeguard import typechecked

from espnet2_smile.asr.encoder.smile_encoder import SmileEncoder
from espnet2_smile.asr.frontend.abs_video_frontend import AbsVideoFrontend
from espnet2_smile.asr.masking.abs_masking import AbsMasking
from espnet2_smile.asr.objective.abs_objective import AbsObjective
from espnet2_smile.constants import MODALITIES

MODALITY_CHOICES = ("av",) + MODALITIES
KEPT, AUDIO_DROPPED, VIDEO_DROPPED = 0, 1, 2


def drop_modality(
    audio: torch.Tensor,
    video: torch.Tensor,
    prob: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per utterance, with probability ``prob``, zero one whole stream: the audio or the
    video with equal chance (never both).

    Args:
        audio: (B, T, Da) features; video: (B, T, Dv) features.
        prob: Probability that an utterance loses a stream.
        generator: CPU generator of the draws (default: torch's global one).

    Returns:
        audio, video, and (B,) long: ``KEPT`` (0), ``AUDIO_DROPPED`` (1) or
        ``VIDEO_DROPPED`` (2) per utterance.
    """
    assert audio.shape[:2] == video.shape[:2], (audio.shape, video.shape)
    batch = audio.size(0)
    drop = torch.rand(batch, generator=generator) < prob
    which = torch.randint(AUDIO_DROPPED, VIDEO_DROPPED + 1, (batch,), generator=generator)
    dropped = torch.where(drop, which, torch.full_like(which, KEPT)).to(audio.device)
    keep_audio = (dropped != AUDIO_DROPPED).to(audio.dtype)[:, None, None]  # (B, 1, 1)
    keep_video = (dropped != VIDEO_DROPPED).to(video.dtype)[:, None, None]
    return audio * keep_audio, video * keep_video, dropped


class ESPnetAVSRModel(ESPnetASRModel):
    """Audio-visual ASR: two frontends, the SMILE encoder, CTC + attention decoder.

    Training step (the online branch)::

        speech -> audio frontend -> normalize ---\\
        video  -> video frontend ----------------+-> align lengths -> [masking] ->
        encoder (early fusion, layers, final fusion) -> CTC + decoder losses
                                      + [objective: Siamese MRM or masked prediction]

        loss = ctc_weight * L_ctc + (1 - ctc_weight) * L_att + objective loss

    Masking, modality dropout and the objective run only in training. Without a video
    frontend the model is audio-only and ignores any ``video`` input.

    Modality dropout zeroes, per utterance with probability ``modality_dropout``, the
    whole audio or the whole video stream (equal chance) of the online branch, after
    masking. Zeros, not the learned mask embedding: ``--modality audio|video`` decoding
    zeroes the other stream's features, so the dropped training inputs are exactly the
    single-modality test inputs. The Siamese targets (and masked-prediction targets)
    still come from both streams, so a dropped utterance learns to predict the
    audio-visual representation from one stream.

    Args (see ESPnetASRModel for the CTC/attention ones):
        video_frontend: Video frontend, or None for an audio-only model.
        masking: Masking of the frontend outputs in training, or None.
        objective: Auxiliary objective (needs ``masking``), or None.
        max_av_length_diff: Largest tolerated difference, in frames, between the audio
            and video lengths of an utterance before the audio is padded/trimmed to
            the video length; a larger one is an error naming the utterance.
        modality_dropout: Probability, per training utterance, of zeroing the audio or
            the video stream (0: off; needs a video stream when > 0).
        freeze_finetune_updates: Freeze-then-finetune: for this many optimizer updates
            the parameters named by :meth:`set_frozen` (the task names those set from
            an AV-HuBERT checkpoint) get no gradient, so only the new parts (adapter,
            fusion, heads, decoder, CTC) train; then everything trains (0: off). The
            count of training steps is a buffer (``num_updates``), so a resumed run
            continues it.
    """

    @typechecked
    def __init__(
        self,
        vocab_size: int,
        token_list: Union[Tuple[str, ...], List[str]],
        frontend: AbsFrontend,
        video_frontend: Optional[AbsVideoFrontend],
        normalize: Optional[AbsNormalize],
        encoder: SmileEncoder,
        decoder: Optional[AbsDecoder],
        ctc: CTC,
        masking: Optional[AbsMasking] = None,
        objective: Optional[AbsObjective] = None,
        max_av_length_diff: int = 3,
        modality_dropout: float = 0.0,
        freeze_finetune_updates: int = 0,
        ctc_weight: float = 0.3,
        ignore_id: int = -1,
        lsm_weight: float = 0.1,
        length_normalized_loss: bool = False,
        report_cer: bool = True,
        report_wer: bool = True,
        sym_space: str = "<space>",
        sym_blank: str = "<blank>",
        sym_sos: str = "<sos/eos>",
        sym_eos: str = "<sos/eos>",
        extract_feats_in_collect_stats: bool = True,
    ):
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if not 0.0 <= lsm_weight < 1.0:
            raise ValueError(f"lsm_weight must be in [0, 1), got {lsm_weight}")
        super().__init__(
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            specaug=None,
            normalize=normalize,
            preencoder=None,
            encoder=encoder,
            postencoder=None,
            decoder=decoder,
            ctc=ctc,
            joint_network=None,
            ctc_weight=ctc_weight,
            ignore_id=ignore_id,
            lsm_weight=lsm_weight,
            length_normalized_loss=length_normalized_loss,
            report_cer=report_cer,
            report_wer=report_wer,
            sym_space=sym_space,
            sym_blank=sym_blank,
            sym_sos=sym_sos,
            sym_eos=sym_eos,
            extract_feats_in_collect_stats=extract_feats_in_collect_stats,
        )
        if objective is not None and masking is None:
            raise ValueError("an objective needs masking (set masking: span)")
        if (video_frontend is None) == encoder.has_video:
            raise ValueError(
                "video frontend and encoder disagree: video_frontend is "
                f"{'absent' if video_frontend is None else 'present'}, encoder "
                f"video_input_size is {'> 0' if encoder.has_video else '0'}"
            )
        if max_av_length_diff < 0:
            raise ValueError(f"max_av_length_diff must be >= 0, got {max_av_length_diff}")
        if not 0.0 <= modality_dropout <= 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1], got {modality_dropout}")
        if modality_dropout > 0.0 and video_frontend is None:
            raise ValueError("modality_dropout needs a video stream; this model is audio-only")
        self.modality_dropout = modality_dropout
        if freeze_finetune_updates < 0:
            raise ValueError(f"freeze_finetune_updates must be >= 0, got {freeze_finetune_updates}")
        self.freeze_finetune_updates = freeze_finetune_updates
        self._frozen_names: Tuple[str, ...] = ()
        self._freeze_steps = 0
        self._frozen_now: Optional[bool] = None
        if freeze_finetune_updates > 0:
            # training forward passes so far (persistent: a resumed run continues it)
            self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.video_frontend = video_frontend
        self.masking = masking
        self.objective = objective
        self.max_av_length_diff = max_av_length_diff
        if objective is not None:
            objective.attach(encoder)

    # ------------------------------------------------------------------ freezing
    def set_frozen(self, names: Sequence[str], accum_grad: int = 1) -> None:
        """Name the parameters that ``freeze_finetune_updates`` freezes.

        Args:
            names: Parameter names (as in ``named_parameters``); others are ignored
                (buffers such as BatchNorm statistics).
            accum_grad: Forward passes per optimizer update, so the freeze lasts
                ``freeze_finetune_updates * accum_grad`` training steps.
        """
        params = dict(self.named_parameters())
        self._frozen_names = tuple(n for n in names if n in params)
        self._freeze_steps = self.freeze_finetune_updates * accum_grad
        self._frozen_now = None
        if self.freeze_finetune_updates > 0 and self._frozen_names:
            logging.info(
                f"freeze-then-finetune: {len(self._frozen_names)} parameters frozen for "
                f"{self.freeze_finetune_updates} updates ({self._freeze_steps} training steps)"
            )

    def _apply_freeze(self) -> None:
        """Called by each training ``forward``: toggles requires_grad when the phase changes."""
        if self.freeze_finetune_updates <= 0:
            return
        if not self._frozen_names:
            if self._frozen_now is None:
                logging.warning(
                    "model_conf freeze_finetune_updates is set, but no parameters are named to "
                    "freeze (no --pretrained_avhubert): everything trains"
                )
                self._frozen_now = False
            return
        frozen = int(self.num_updates) < self._freeze_steps
        if frozen != self._frozen_now:
            params = dict(self.named_parameters())
            for name in self._frozen_names:
                params[name].requires_grad_(not frozen)
            if self._frozen_now is not None or not frozen:
                logging.info(
                    f"freeze-then-finetune: step {int(self.num_updates)}, "
                    f"{'frozen' if frozen else 'all parameters train from now on'}"
                )
            self._frozen_now = frozen
        self.num_updates += 1

    # ------------------------------------------------------------------ features
    def _align(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        video_lengths: torch.Tensor,
        utt_id: Optional[Sequence[str]],
    ) -> torch.Tensor:
        """Pad/trim the audio features (B, Ta, D) to the video length (B, Tv, D)."""
        diff = (audio_lengths - video_lengths).abs()
        if bool((diff > self.max_av_length_diff).any()):
            b = int(diff.argmax())
            name = utt_id[b] if utt_id is not None else f"batch index {b}"
            raise ValueError(
                f"utterance {name}: audio has {int(audio_lengths[b])} frames and video "
                f"{int(video_lengths[b])} at 25 fps; the difference exceeds "
                f"max_av_length_diff={self.max_av_length_diff}"
            )
        time = int(video_lengths.max())
        if audio.size(1) < time:
            audio = torch.nn.functional.pad(audio, (0, 0, 0, time - audio.size(1)))
        audio = audio[:, :time]
        valid = torch.arange(time, device=audio.device)[None, :] < video_lengths[:, None]
        return audio * valid.unsqueeze(-1).to(audio.dtype)

    def extract_av_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        utt_id: Optional[Sequence[str]] = None,
        modality: str = "av",
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """Frontends, normalisation and length alignment.

        Args:
            speech: (B, L) waveforms; speech_lengths: (B,).
            video: (B, T, H, W) frames; video_lengths: (B,). Ignored by an audio-only
                model.
            utt_id: Utterance ids, for error messages.
            modality: ``av``; ``audio`` or ``video`` zero the other stream's features.

        Returns:
            audio (B, T, Da), video (B, T, Dv) or None, lengths (B,).
        """
        if modality not in MODALITY_CHOICES:
            raise ValueError(f"modality must be one of {MODALITY_CHOICES}, got {modality!r}")
        audio, audio_lengths = self._extract_feats(speech, speech_lengths)
        if self.normalize is not None:
            audio, audio_lengths = self.normalize(audio, audio_lengths)
        if self.video_frontend is None:
            if modality == "video":
                raise ValueError("modality 'video' needs a model with a video frontend")
            return audio, None, audio_lengths
        if video is None or video_lengths is None:
            raise ValueError("this model needs a 'video' input (video.scp)")
        video = video[:, : int(video_lengths.max())]
        vfeats, lengths = self.video_frontend(video, video_lengths)
        audio = self._align(audio, audio_lengths, lengths, utt_id)
        if modality == "audio":
            vfeats = torch.zeros_like(vfeats)
        elif modality == "video":
            audio = torch.zeros_like(audio)
        return audio, vfeats, lengths

    def encode(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        utt_id: Optional[Sequence[str]] = None,
        modality: str = "av",
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frontends + encoder (no masking): (B, T, D) and (B,). Used for decoding."""
        audio, vfeats, lengths = self.extract_av_feats(
            speech, speech_lengths, video, video_lengths, utt_id, modality
        )
        enc = self.encoder.forward_streams(audio, vfeats, lengths)
        return enc.out, enc.lengths

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Losses of one batch.

        Args:
            speech: (B, L); speech_lengths: (B,).
            text: (B, U) token ids padded with -1; text_lengths: (B,).
            video: (B, T, H, W); video_lengths: (B,).
            kwargs: ``utt_id`` (list of str) from the trainer.

        Returns:
            loss, stats (every loss term, acc, cer/wer in eval, fusion diagnostics),
            batch size weight.
        """
        assert text_lengths.dim() == 1, text_lengths.shape
        assert speech.shape[0] == speech_lengths.shape[0] == text.shape[0], (
            speech.shape,
            speech_lengths.shape,
            text.shape,
        )
        batch_size = speech.shape[0]
        if self.training:
            self._apply_freeze()
        text = text.clone()
        text[text == -1] = self.ignore_id
        text = text[:, : text_lengths.max()]

        audio, vfeats, lengths = self.extract_av_feats(
            speech, speech_lengths, video, video_lengths, kwargs.get("utt_id")
        )
        online_audio, online_video = audio, vfeats
        audio_mask = video_mask = None
        stats: Dict[str, Optional[torch.Tensor]] = {}
        if self.masking is not None and self.training:
            online_audio, online_video, audio_mask, video_mask = self.masking(
                audio, vfeats, lengths
            )
            n_valid = lengths.sum().clamp(min=1)
            stats["mask_rate_audio"] = audio_mask.sum() / n_valid
            if video_mask is not None:
                stats["mask_rate_video"] = video_mask.sum() / n_valid
        if self.modality_dropout > 0.0 and self.training:
            online_audio, online_video, dropped = drop_modality(
                online_audio, online_video, self.modality_dropout
            )
            stats["dropped_audio"] = (dropped == AUDIO_DROPPED).float().mean()
            stats["dropped_video"] = (dropped == VIDEO_DROPPED).float().mean()
        enc = self.encoder.forward_streams(online_audio, online_video, lengths)
        stats.update(enc.stats)

        loss_ctc = loss_att = None
        if self.ctc_weight > 0.0:
            loss_ctc, cer_ctc = self._calc_ctc_loss(enc.out, enc.lengths, text, text_lengths)
            stats["loss_ctc"] = loss_ctc.detach()
            stats["cer_ctc"] = cer_ctc
        if self.ctc_weight < 1.0:
            loss_att, acc_att, cer_att, wer_att = self._calc_att_loss(
                enc.out, enc.lengths, text, text_lengths
            )
            stats["loss_att"] = loss_att.detach()
            stats["acc"] = acc_att
            stats["cer"] = cer_att
            stats["wer"] = wer_att
        if loss_ctc is None:
            loss = loss_att
        elif loss_att is None:
            loss = loss_ctc
        else:
            loss = self.ctc_weight * loss_ctc + (1 - self.ctc_weight) * loss_att
        stats["loss_asr"] = loss.detach()

        if self.objective is not None and audio_mask is not None:
            loss_aux, aux_stats = self.objective(
                self.encoder, enc, audio, vfeats, lengths, audio_mask, video_mask
            )
            stats.update(aux_stats)
            stats["loss_aux"] = loss_aux.detach()
            loss = loss + loss_aux
        stats["loss"] = loss.detach()
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def collect_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Dict[str, torch.Tensor]:
        """Audio frontend features for the global normalisation statistics."""
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": feats_lengths}
