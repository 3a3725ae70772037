"""Joint CTC/attention beam search over several utterances at once.

ESPnet's ``BatchBeamSearch`` vectorises the W hypotheses of *one* utterance, so a test
set is decoded one utterance at a time. :class:`BatchUttBeamSearch` runs the same
search on B utterances x W hypotheses in every step, and gives the same n-best lists
(up to float rounding), so it can replace the stock search for test-set decoding.

Design:

- **Encoder**: run once by the caller on the padded batch (``model.encode`` with the
  modality handling); the per-utterance outputs do not depend on the padding.
- **Rows**: every running utterance holds exactly W rows (1 in the first step). A
  hypothesis that ends (``<eos>``) leaves a *dead* row whose score is ``-inf``: it is
  never selected again. This equals ``BatchBeamSearch``, which removes ended
  hypotheses and takes the W best expansions of the remaining ones.
- **Decoder**: ESPnet's Transformer decoders' ``forward_one_step`` on all rows with
  the self-attention caches of all rows. It is the call ``batch_score`` makes, plus
  the memory mask: ``batch_score`` passes none, so padded encoder frames would enter
  the source attention of the shorter utterances. The source-attention keys and
  values (``linear_k``/``linear_v`` of the encoder output) are computed once per
  utterance and layer when the running batch changes, not for every hypothesis in
  every step as ``batch_score`` does; each ``MultiHeadedAttention`` then projects
  only the queries (its ``forward_qkv`` is replaced during the call). This is most
  of the speed-up on CPU: the projections dominate a decoder step.
- **Other full scorers** (length bonus ``penalty``, LM): their ``batch_score`` on all
  rows (they do not read the encoder output).
- **CTC**: ESPnet's vectorised prefix scorer ``CTCPrefixScoreTH`` on the batch of
  utterances with their own lengths, scoring only the pre-beam: the
  ``int(1.5 * W)`` best tokens of each row by the weighted full scores, as
  ``BeamSearch(pre_beam_score_key="full")`` does (the whole vocabulary when that is
  not smaller than the vocabulary, or with ``ctc_weight`` 1, where there is no full
  scorer to pre-select with).
- **Selection**: per utterance, the W best of its ``W x V`` expansions.
- **Ended hypotheses and lengths**, as ``BeamSearch.forward``: ``maxlen`` is the
  encoder length when ``maxlenratio`` is 0, ``-maxlenratio`` when negative,
  ``max(1, int(maxlenratio * T))`` otherwise; ``minlen`` likewise from
  ``minlenratio``; in the last step ``<eos>`` is appended to every running
  hypothesis; a hypothesis ending before ``minlen`` is dropped; with ``maxlenratio``
  0 an utterance also stops when ESPnet's ``end_detect`` says so; an utterance with
  no ended hypothesis is searched again with ``minlenratio - 0.1`` while
  ``minlenratio >= 0.1``. The n-best list is sorted by score (or by score per token
  with ``normalize_length``).
- **Finished utterances** leave the running batch: their rows, decoder caches, LM
  states and CTC states are dropped, and the encoder memory and CTC posteriors are
  trimmed to the longest remaining utterance.

Only Transformer-family decoders (``BaseTransformerDecoder``), the length bonus,
ESPnet2 LMs (``AbsLM``) and CTC are supported; anything else (an n-gram LM, an RNN
decoder, a hypothesis primer) is a ``ValueError`` at construction.

Examples:
    >>> search = BatchUttBeamSearch.from_beam_search(speech2text.beam_search)
    >>> enc, enc_lens = model.encode(speech, speech_lengths, video, video_lengths)
    >>> nbest = search(enc, enc_lens, maxlenratio=0.0, minlenratio=0.0)
    >>> best_of_first = nbest[0][0]  # espnet.nets.beam_search.Hypothesis
"""

import contextlib
import logging
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.transformer_decoder import BaseTransformerDecoder
from espnet2.lm.abs_model import AbsLM
from espnet.nets.beam_search import BeamSearch, Hypothesis
from espnet.nets.ctc_prefix_score import CTCPrefixScoreTH
from espnet.nets.e2e_asr_common import end_detect
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet.nets.scorers.length_bonus import LengthBonus

logger = logging.getLogger(__name__)

DECODER, CTC_KEY = "decoder", "ctc"
PRE_BEAM_KEYS = ("full", None)


def length_bound(ratio: float, enc_length: int, is_max: bool) -> int:
    """``maxlen`` / ``minlen`` of one utterance from its encoder length, as BeamSearch."""
    if ratio < 0:
        return -1 * int(ratio)
    if is_max:
        return enc_length if ratio == 0 else max(1, int(ratio * enc_length))
    return int(ratio * enc_length)


class BatchUttBeamSearch:
    """Joint CTC/attention beam search over B utterances x W hypotheses.

    Args:
        decoder: Attention decoder (``BaseTransformerDecoder``), or None (CTC only).
        ctc: CTC module, or None (attention only).
        full_scorers: Other full scorers by name (``length_bonus``, ``lm``), in the
            order their weighted scores are summed.
        weights: Weight of every scorer by name (``decoder``, ``ctc``, ...).
        beam_size: W.
        vocab_size: V.
        sos: Start-of-sequence id. eos: End-of-sequence id.
        pre_beam_size: Tokens per row that CTC scores (default ``int(1.5 * beam_size)``,
            ESPnet's ``pre_beam_ratio``); no pre-beam when not below the vocabulary.
        pre_beam_score_key: ``full`` (pre-select by the weighted full scores), the
            name of a full scorer, or None (CTC scores the whole vocabulary).
        normalize_length: Sort ended hypotheses by score per output token.
        token_list: Tokens, for log messages only.
    """

    def __init__(
        self,
        decoder: Optional[BaseTransformerDecoder],
        ctc: Optional[CTC],
        full_scorers: Dict[str, Any],
        weights: Dict[str, float],
        beam_size: int,
        vocab_size: int,
        sos: int,
        eos: int,
        pre_beam_size: Optional[int] = None,
        pre_beam_score_key: Optional[str] = "full",
        normalize_length: bool = False,
        token_list: Optional[Sequence[str]] = None,
    ):
        if decoder is not None and not isinstance(decoder, BaseTransformerDecoder):
            raise ValueError(
                f"batched decoding needs a Transformer decoder, got {type(decoder).__name__}"
            )
        if decoder is None and ctc is None:
            raise ValueError("batched decoding needs a decoder or CTC (both weights are 0)")
        for name, scorer in full_scorers.items():
            if name in (DECODER, CTC_KEY) or not isinstance(scorer, (LengthBonus, AbsLM)):
                raise ValueError(
                    f"batched decoding does not support the scorer {name!r} "
                    f"({type(scorer).__name__}); supported: length bonus and LMs"
                )
        if not 1 <= beam_size <= vocab_size:
            raise ValueError(f"beam_size must be in [1, {vocab_size}] (the vocabulary), got {beam_size}")
        if pre_beam_score_key not in PRE_BEAM_KEYS and pre_beam_score_key not in full_scorers:
            raise ValueError(
                f"pre_beam_score_key must be one of {PRE_BEAM_KEYS} or a full scorer "
                f"{sorted(full_scorers)}, got {pre_beam_score_key!r}"
            )
        names = ([DECODER] if decoder is not None else []) + list(full_scorers)
        names += [CTC_KEY] if ctc is not None else []
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(f"weights are missing for the scorers {missing}")
        self.decoder = decoder
        self.ctc = ctc
        self.full_scorers = dict(full_scorers)
        # the order BatchBeamSearch sums the full scores in: the decoder first
        self.full_names = ([DECODER] if decoder is not None else []) + list(full_scorers)
        self.weights = {n: float(weights[n]) for n in names}
        self.beam_size = beam_size
        self.n_vocab = vocab_size
        self.sos = sos
        self.eos = eos
        self.pre_beam_size = int(1.5 * beam_size) if pre_beam_size is None else pre_beam_size
        self.pre_beam_score_key = pre_beam_score_key
        self.do_pre_beam = (
            pre_beam_score_key is not None and self.pre_beam_size < vocab_size and ctc is not None
        )
        self.normalize_length = normalize_length
        self.token_list = token_list
        # source attentions whose keys/values can be computed once per utterance
        self.src_attns: List[MultiHeadedAttention] = []
        if decoder is not None:
            attns = [getattr(layer, "src_attn", None) for layer in decoder.decoders]
            if all(
                type(a) is MultiHeadedAttention and not getattr(a, "use_flash_attn", False)
                for a in attns
            ):
                self.src_attns = attns

    @classmethod
    def from_beam_search(cls, beam_search: BeamSearch) -> "BatchUttBeamSearch":
        """The batched search with the scorers, weights and settings of an ESPnet
        ``BeamSearch``/``BatchBeamSearch`` (as ESPnet's Speech2Text builds it)."""
        if beam_search.hyp_primer is not None:
            raise ValueError("batched decoding does not support a hypothesis primer")
        if beam_search.return_hs:
            raise ValueError("batched decoding does not return decoder hidden states")
        decoder, ctc, others = None, None, {}
        for name, scorer in beam_search.full_scorers.items():
            if name == DECODER:
                decoder = scorer
            else:
                others[name] = scorer
        for name, scorer in beam_search.part_scorers.items():
            if name != CTC_KEY or not isinstance(scorer, CTCPrefixScorer):
                raise ValueError(
                    f"batched decoding does not support the partial scorer {name!r} "
                    f"({type(scorer).__name__}); supported: CTC"
                )
            ctc = scorer.ctc
        return cls(
            decoder=decoder,
            ctc=ctc,
            full_scorers=others,
            weights=beam_search.weights,
            beam_size=beam_search.beam_size,
            vocab_size=beam_search.n_vocab,
            sos=beam_search.sos,
            eos=beam_search.eos,
            pre_beam_size=beam_search.pre_beam_size,
            pre_beam_score_key=beam_search.pre_beam_score_key,
            normalize_length=beam_search.normalize_length,
            token_list=beam_search.token_list,
        )

    # ------------------------------------------------------------------ source attention
    def _source_kv(self, enc: torch.Tensor, width: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every source attention for the rows: (A*width, h, T, d_k)
        each, from the encoder output (A, T, D) of the running utterances."""
        out = []
        batch, time = enc.shape[:2]
        for attn in self.src_attns:
            # (A, T, D) -> (A, T, h, d_k) -> (A, h, T, d_k) -> (A*width, h, T, d_k)
            k = attn.linear_k(enc).view(batch, time, attn.h, attn.d_k).transpose(1, 2)
            v = attn.linear_v(enc).view(batch, time, attn.h, attn.d_k).transpose(1, 2)
            k = attn.k_norm(k)
            out.append((k.repeat_interleave(width, dim=0), v.repeat_interleave(width, dim=0)))
        return out

    @contextlib.contextmanager
    def _cached_source(self, kv: List[Tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
        """Within the block, each source attention projects only its queries and uses
        the given keys and values."""

        def query_only(attn, k, v):
            def forward_qkv(query, key, value, expand_kv=False):
                n_batch = query.size(0)
                # (n, 1, D) -> (n, 1, h, d_k) -> (n, h, 1, d_k)
                q = attn.linear_q(query).view(n_batch, -1, attn.h, attn.d_k).transpose(1, 2)
                assert k.size(0) == n_batch, (k.shape, query.shape)
                return attn.q_norm(q), k, v

            return forward_qkv

        for attn, (k, v) in zip(self.src_attns, kv):
            attn.forward_qkv = query_only(attn, k, v)  # shadows the method
        try:
            yield
        finally:
            for attn in self.src_attns:
                del attn.forward_qkv

    # ------------------------------------------------------------------ search
    @torch.no_grad()
    def __call__(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        maxlenratio: float = 0.0,
        minlenratio: float = 0.0,
    ) -> List[List[Hypothesis]]:
        """Search every utterance of a batch.

        Args:
            enc: (B, T, D) encoder output, padded.
            enc_lens: (B,) valid frames.
            maxlenratio, minlenratio: As ESPnet's BeamSearch.

        Returns:
            Per utterance, its ended hypotheses sorted best first (empty if none ended).
        """
        assert enc.dim() == 3 and enc_lens.shape == (enc.size(0),), (enc.shape, enc_lens.shape)
        results = self._search(enc, enc_lens, maxlenratio, minlenratio)
        missing = [b for b, hyps in enumerate(results) if not hyps]
        if missing:
            logger.warning(f"{len(missing)} utterances have no ended hypothesis")
            if minlenratio >= 0.1:
                idx = torch.tensor(missing, device=enc.device)
                again = self(enc[idx], enc_lens[idx], maxlenratio, max(0.0, minlenratio - 0.1))
                for b, hyps in zip(missing, again):
                    results[b] = hyps
        return results

    def _search(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, maxlenratio: float, minlenratio: float
    ) -> List[List[Hypothesis]]:
        n_utt = enc.size(0)
        lengths = [int(n) for n in enc_lens]
        maxlens = [length_bound(maxlenratio, n, True) for n in lengths]
        minlens = [length_bound(minlenratio, n, False) for n in lengths]
        device, dtype = enc.device, enc.dtype
        n_vocab, beam = self.n_vocab, self.beam_size
        logp = self.ctc.log_softmax(enc) if self.ctc is not None else None  # (B, T, V)
        ended: List[List[Hypothesis]] = [[] for _ in range(n_utt)]
        ended_info: List[List[Dict[str, Any]]] = [[] for _ in range(n_utt)]  # for end_detect

        # running state; rows of active[a] are a*width .. (a+1)*width-1
        # (no step at all where maxlen < 1, e.g. an empty encoder output, as BeamSearch)
        active = [b for b in range(n_utt) if maxlens[b] >= 1]
        width = 1
        yseq = torch.full((len(active), 1), self.sos, dtype=torch.long, device=device)
        score = torch.zeros(len(active), dtype=dtype, device=device)
        scores = {k: torch.zeros(len(active), dtype=dtype, device=device) for k in self.weights}
        dec_cache: Optional[List[torch.Tensor]] = None
        states = {
            k: [s.batch_init_state(enc[b, : lengths[b]]) for b in active]
            for k, s in self.full_scorers.items()
        }
        ctc_state = None
        memory = memory_mask = ctc_impl = None
        src_kv: List[Tuple[torch.Tensor, torch.Tensor]] = []
        rebuild = True
        i = 0
        while active:
            if rebuild:  # the running utterances or their row count changed
                idx = torch.tensor(active, device=device)
                time = max(lengths[b] for b in active)
                rows_enc = enc[idx, :time]  # (A, T', D)
                rows_lens = enc_lens[idx]
                # (A, T', D) -> (A*width, T', D)
                memory = rows_enc.repeat_interleave(width, dim=0)
                valid = torch.arange(time, device=device)[None, :] < rows_lens[:, None]
                memory_mask = valid.repeat_interleave(width, dim=0).unsqueeze(1)  # (A*w, 1, T')
                src_kv = self._source_kv(rows_enc, width) if self.src_attns else []
                if logp is not None and (ctc_impl is None or ctc_impl.batch != len(active)
                                         or ctc_impl.input_length != time):
                    # CTCPrefixScoreTH pads the posteriors of each utterance in place
                    ctc_impl = CTCPrefixScoreTH(logp[idx, :time].clone(), rows_lens, 0, self.eos)
                    if ctc_state is not None:
                        r, s_prev, f_min, f_max = ctc_state
                        ctc_state = (r[:time], s_prev, f_min, f_max)
                rebuild = False
            n_rows = len(active) * width

            # 1. full scorers on every row
            weighted = torch.zeros(n_rows, n_vocab, dtype=dtype, device=device)
            full: Dict[str, torch.Tensor] = {}
            new_states: Dict[str, Any] = {}
            for name in self.full_names:
                if name == DECODER:
                    ys_mask = subsequent_mask(i + 1, device=device).unsqueeze(0)  # (1, i+1, i+1)
                    cached = self._cached_source(src_kv) if src_kv else contextlib.nullcontext()
                    with cached:
                        full[name], new_cache = self.decoder.forward_one_step(
                            yseq, ys_mask, memory, memory_mask, cache=dec_cache
                        )
                else:
                    full[name], new_states[name] = self.full_scorers[name].batch_score(
                        yseq, states[name], memory
                    )
                weighted += self.weights[name] * full[name]

            # 2. CTC prefix scores of the pre-beam (or of every token)
            if self.ctc is not None:
                part_ids = None
                if self.do_pre_beam:
                    pre = weighted if self.pre_beam_score_key == "full" else full[self.pre_beam_score_key]
                    part_ids = torch.topk(pre, self.pre_beam_size, dim=-1)[1]  # (n_rows, P)
                full[CTC_KEY], ctc_out = ctc_impl(yseq, ctc_state, part_ids)
                weighted += self.weights[CTC_KEY] * full[CTC_KEY]
            weighted += score.unsqueeze(1)

            # 3. the beam best expansions of each utterance
            # (n_rows, V) -> (A, width*V)
            top = weighted.view(len(active), width * n_vocab).topk(beam, dim=1)[1]  # (A, W)
            base = torch.arange(len(active), device=device).unsqueeze(1) * width
            prev = (base + torch.div(top, n_vocab, rounding_mode="trunc")).view(-1)  # (A*W,)
            token = (top % n_vocab).view(-1)
            score = weighted[prev, token]
            for name in scores:
                scores[name] = scores[name][prev] + full[name][prev, token]
            yseq = torch.cat([yseq[prev], token.unsqueeze(1)], dim=1)  # (A*W, i+2)
            if DECODER in full:
                dec_cache = [c[prev] for c in new_cache]
            prev_list = prev.tolist()
            for name, st in new_states.items():
                scorer = self.full_scorers[name]
                states[name] = [scorer.select_state(st, r) for r in prev_list]
            if self.ctc is not None:
                r, log_psi, f_min, f_max, idmap = ctc_out
                cols = token if idmap is None else idmap[prev, token]
                # (T, 2, n_rows, S) -> (T, 2, A*W); the prefix score of each new row
                ctc_state = (
                    r[:, :, prev, cols],
                    log_psi[prev, token].unsqueeze(1).expand(-1, n_vocab),
                    f_min,
                    f_max,
                )
            if width != beam:
                width, rebuild = beam, True

            # 4. ended hypotheses, finished utterances
            is_eos = (token == self.eos).view(len(active), beam).tolist()
            dead = torch.zeros(len(active), beam, dtype=torch.bool)
            keep = []
            for a, b in enumerate(active):
                last = i == maxlens[b] - 1  # <eos> is appended to every running row
                for w in range(beam):
                    if not (last or is_eos[a][w]):
                        continue
                    dead[a, w] = True
                    if i < minlens[b]:
                        continue
                    row = a * beam + w
                    y = yseq[row]
                    if last:
                        y = torch.cat([y, y.new_tensor([self.eos])])
                    hyp = Hypothesis(
                        yseq=y,
                        score=score[row],
                        scores={k: v[row] for k, v in scores.items()},
                        states={},
                    )
                    ended[b].append(hyp)
                    ended_info[b].append({"yseq": y, "score": float(hyp.score)})
                done = bool(dead[a].all()) or (
                    maxlenratio == 0.0 and end_detect(ended_info[b], i)
                )
                if not done:
                    keep.append(a)
            score = score.masked_fill(dead.view(-1).to(device), float("-inf"))
            if len(keep) < len(active):
                rows = torch.tensor(
                    [a * beam + w for a in keep for w in range(beam)], dtype=torch.long, device=device
                )
                yseq, score = yseq[rows], score[rows]
                scores = {k: v[rows] for k, v in scores.items()}
                if dec_cache is not None:
                    dec_cache = [c[rows] for c in dec_cache]
                row_list = rows.tolist()
                states = {k: [v[r] for r in row_list] for k, v in states.items()}
                if ctc_state is not None:
                    r, s_prev, f_min, f_max = ctc_state
                    ctc_state = (r[:, :, rows], s_prev[rows], f_min, f_max)
                active = [active[a] for a in keep]
                rebuild = True
            i += 1

        out = []
        for b in range(n_utt):
            if self.normalize_length:
                hyps = sorted(ended[b], key=lambda h: h.score / (len(h.yseq) - 1), reverse=True)
            else:
                hyps = sorted(ended[b], key=lambda h: h.score, reverse=True)
            if hyps and self.token_list is not None:
                best = hyps[0]
                logger.debug(
                    f"utterance {b}: score {float(best.score):.2f}, "
                    + "".join(self.token_list[t] for t in best.yseq[1:-1].tolist())
                )
            out.append(hyps)
        return out
