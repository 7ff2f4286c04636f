"""`MetaVoiceModel`: upstream's four files loaded into our PyTorch reference (stage-1 and stage-2 GPTs, speaker
encoder, EnCodec decoder), with the facts a bundle needs and the graphs to export."""

from __future__ import annotations

from dataclasses import dataclass

from edgevoice.metavoice.speaker import PARTIAL_FRAMES  # the runtime slices the mels the graph reads

from ..checkpoints import CheckpointError
from .checkpoints import MetaVoiceFiles, StageCheckpoint, load_speaker_encoder, load_stage
from .encodec import EncodecDecoder, load_encodec, padding_fact, read_encodec_config
from .models import MetaVoiceGPT, SpeakerLSTM


@dataclass
class MetaVoiceModel:
    files: MetaVoiceFiles
    stage1: MetaVoiceGPT
    stage2: MetaVoiceGPT
    speaker: SpeakerLSTM
    encodec: EncodecDecoder
    tokenizer: dict  # upstream's meta["tokenizer"] of stage 1 (stage 2 must hold the same table)
    offsets: tuple[int, int]  # text-id offsets of stage 1 and stage 2

    @classmethod
    def load(cls, files: MetaVoiceFiles) -> "MetaVoiceModel":
        first, second = load_stage(files.first_stage, 1), load_stage(files.second_stage, 2)
        _check_same_table(first, second)
        speaker = load_speaker_encoder(files.speaker_encoder)
        encodec = load_encodec(files.encodec, read_encodec_config(files.encodec_config))
        model = cls(files, MetaVoiceGPT.from_checkpoint(first), MetaVoiceGPT.from_checkpoint(second),
                    SpeakerLSTM.from_checkpoint(speaker), encodec, first.tokenizer,
                    (first.tokenizer["offset"], second.tokenizer["offset"]))
        model._check_layout(first, second, speaker.embedding)
        return model

    def _check_layout(self, first: StageCheckpoint, second: StageCheckpoint, speaker_dim: int) -> None:
        """Upstream's token layout, derived from the files: stage 1 emits codebook 0 as `0…bins−1`, codebook 1 as
        `bins…2·bins−1`, end of audio `2·bins`, text from `2·bins+1`; stage 2 reads text from `bins+1`, pads with
        `bins`, and its heads with the input rows must make EnCodec's codebooks."""
        bins, n_q = self.encodec.config.bins, self.codebooks
        ranks = len(first.tokenizer["mergeable_ranks"]) + len(first.tokenizer["special_tokens"])
        checks = [
            (self.offsets[0] == 2 * bins + 1, f"stage-1 text offset {self.offsets[0]} is not 2·{bins}+1"),
            (self.offsets[1] == bins + 1, f"stage-2 text offset {self.offsets[1]} is not {bins}+1"),
            (first.args.vocab_sizes[0] >= self.offsets[0] + ranks,
             f"stage-1 vocabulary {first.args.vocab_sizes[0]} cannot hold the {ranks} text tokens"),
            (second.args.vocab_sizes[0] >= self.offsets[1] + ranks, "stage-2 text vocabulary is too small"),
            (len(second.args.vocab_sizes) == 2, f"stage 2 reads {len(second.args.vocab_sizes)} rows, not 2"),
            (n_q <= self.encodec.config.n_q,
             f"stage 2 makes {n_q} codebooks but EnCodec has only {self.encodec.config.n_q}"),
            (set(second.args.head_vocab_sizes) == {bins + 1}, f"stage-2 heads are not {bins}+1 wide"),
            (first.speaker_dim == second.speaker_dim == speaker_dim,
             f"speaker embedding sizes differ ({first.speaker_dim}, {second.speaker_dim}, encoder {speaker_dim})"),
        ]
        for ok, message in checks:
            if not ok:
                raise CheckpointError(f"{first.path.parent}: these files do not fit together: {message}")

    @property
    def codebooks(self) -> int:
        """EnCodec codebooks MetaVoice speaks with: the two of stage 1 plus one per stage-2 head (8 of the released
        EnCodec's 32, its 6 kbps subset)."""
        return 2 + len(self.stage2.args.head_vocab_sizes)

    def tokenizer_json(self) -> dict:
        from edgevoice.metavoice.text import BpeTokenizer

        return BpeTokenizer.from_meta({**self.tokenizer, "offset": None}).to_json()

    def facts(self) -> dict:
        a1, a2, config = self.stage1.args, self.stage2.args, self.encodec.config
        return {
            "stage1": {"n_layer": a1.n_layer, "n_head": a1.n_head, "n_embd": a1.n_embd, "block_size": a1.block_size,
                       "vocab_size": a1.vocab_sizes[0], "text_offset": self.offsets[0], "end_of_audio": 2 * config.bins},
            "stage2": {"n_layer": a2.n_layer, "n_head": a2.n_head, "n_embd": a2.n_embd, "block_size": a2.block_size,
                       "hierarchies": len(a2.vocab_sizes), "vocab_sizes": list(a2.vocab_sizes),
                       "heads": len(a2.head_vocab_sizes), "head_vocab_size": a2.head_vocab_sizes[0],
                       "text_offset": self.offsets[1]},
            "speaker": {"embedding": self.speaker.linear.out_features, "mel_bands": self.speaker.lstm.input_size,
                        "partial_frames": PARTIAL_FRAMES},
            "encodec": {"n_q": self.codebooks, "bins": config.bins, "hop": config.hop_length,
                        "sample_rate": config.sample_rate, **padding_fact(config)},
            "parameters": {"stage1": _unique_parameters(self.stage1), "stage2": _unique_parameters(self.stage2)},
        }

    def graph_specs(self):
        from .encodec import encodec_graph
        from .graphs import speaker_graph, stage1_graphs, stage2_graph

        return ([speaker_graph(self.speaker, PARTIAL_FRAMES)] + stage1_graphs(self.stage1)
                + [stage2_graph(self.stage2), encodec_graph(self.encodec, self.codebooks)])


def _unique_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() yields a tied tensor once


def _check_same_table(first: StageCheckpoint, second: StageCheckpoint) -> None:
    a, b = first.tokenizer, second.tokenizer
    if a["mergeable_ranks"] != b["mergeable_ranks"] or a["pat_str"] != b["pat_str"] or \
            a["special_tokens"] != b["special_tokens"]:
        raise CheckpointError(f"{second.path}: its tokenizer table differs from {first.path.name}'s")
