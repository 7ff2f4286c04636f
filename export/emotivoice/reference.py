"""`EmotiVoiceModel`: upstream's files loaded into our PyTorch reference (style BERT, acoustic model, HiFi-GAN)
with the facts a bundle needs, the graphs to export, and a plain end-to-end run for checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .checkpoints import (SAMPLE_RATE, STYLE_DIM, CheckpointError, EmotiVoiceFiles, load_bert_config, load_config,
                          read_lines)
from .models import AcousticModel, HiFiGAN, StyleBert, frame_count, load_am_and_vocoder, load_style_bert

MAX_WAV_VALUE = 32768.0  # upstream models/hifigan/get_vocoder.py


@dataclass
class EmotiVoiceModel:
    files: EmotiVoiceFiles
    config: dict  # config.yaml plus n_vocab, n_speaker and the label counts
    bert_config: dict  # SimBERT config.json
    style_bert: StyleBert
    am: AcousticModel
    vocoder: HiFiGAN
    tokens: list[str] = field(default_factory=list)  # tokenlist: phoneme symbol of each id
    speakers: list[str] = field(default_factory=list)  # speaker2: speaker name of each row

    @classmethod
    def load(cls, files: EmotiVoiceFiles, attn_implementation: str = "sdpa") -> "EmotiVoiceModel":
        config = load_config(files)
        bert_config = load_bert_config(files.bert_dir)
        model = config["model"]
        if model["bert_embedding"] != bert_config["hidden_size"]:
            raise CheckpointError(f"{files.config_yaml}: model.bert_embedding is {model['bert_embedding']} but the "
                                  f"SimBERT config.json has hidden_size {bert_config['hidden_size']}")
        if model["initial_channel"] != config["n_mels"]:
            raise CheckpointError(f"{files.config_yaml}: model.initial_channel {model['initial_channel']} differs from "
                                  f"n_mels {config['n_mels']} (the vocoder reads the acoustic model's mel)")
        am, vocoder = load_am_and_vocoder(files, config)
        bert = load_style_bert(files, bert_config, attn_implementation)
        return cls(files, config, bert_config, bert, am, vocoder, read_lines(files.tokenlist),
                   read_lines(files.speaker2))

    def facts(self) -> dict:
        m = self.config["model"]
        return {
            "sample_rate": SAMPLE_RATE,  # upstream config.py `sampling_rate`; inference writes its wavs at this rate
            "n_mels": int(self.config["n_mels"]),
            "hop": self.vocoder.hop,  # samples per mel frame = product of upsample_rates
            "upsample_rates": list(self.vocoder.upsample_rates),
            "resblock": self.vocoder.resblock,
            "vocoder_context_frames": self.vocoder.reach_frames,  # windows of the mel carry this much context
            "hidden": self.am.hidden,
            "encoder_layers": int(m["encoder_n_layers"]),
            "decoder_layers": int(m["decoder_n_layers"]),
            "bert_hidden": int(self.bert_config["hidden_size"]),
            "bert_layers": int(self.bert_config["num_hidden_layers"]),
            "bert_vocab_size": int(self.bert_config["vocab_size"]),
            "bert_max_tokens": int(self.bert_config.get("max_position_embeddings", 512)),
            "n_vocab": int(self.config["n_vocab"]),
            "n_speaker": int(self.config["n_speaker"]),
            "style_dim": STYLE_DIM,
            "max_wav_value": MAX_WAV_VALUE,
        }

    def graph_specs(self):
        from .graphs import emotivoice_graphs

        return emotivoice_graphs(self.style_bert, self.am, self.vocoder)

    # -- plain PyTorch inference, for checks -----------------------------------------------------------------

    @torch.no_grad()
    def embed(self, input_ids) -> np.ndarray:
        """Token ids of one text (with [CLS]/[SEP]) → pooled BERT output `(hidden,)`."""
        ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64)).reshape(1, -1)
        return self.style_bert(ids)[0].numpy()

    @torch.no_grad()
    def synthesize(self, token_ids, speaker: int, style: np.ndarray, content: np.ndarray) -> np.ndarray:
        """Phoneme ids, speaker row, style and content embeddings → float waveform `(samples,)` in [-1, 1]."""
        ids = torch.as_tensor(np.asarray(token_ids, dtype=np.int64)).reshape(1, -1)
        hidden, _, durations = self.am.front(ids, torch.tensor([int(speaker)]),
                                             torch.as_tensor(style, dtype=torch.float32).reshape(1, -1),
                                             torch.as_tensor(content, dtype=torch.float32).reshape(1, -1))
        frames = torch.arange(frame_count(durations.numpy()), dtype=torch.float32)
        mel = self.am.back(hidden, durations, frames)
        return self.vocoder(mel.transpose(1, 2))[0, 0].numpy()
