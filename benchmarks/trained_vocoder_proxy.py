"""A SoVITS checkpoint whose vocoder has seen speech: the random full-size set with its HiFi-GAN trained briefly.

Why: every quantisation choice for the vocoder is gated on its audio against FP32 (`edgevoice quantize`), and a
random-weight vocoder makes a near-DC waveform whose other mel bands lie ~60 dB down, under the white noise that
8-bit tensors (or bf16 rounding) add. So on random weights the gate keeps the last two upsampling stages in float
and refuses a bf16 tail, and nobody can say what it would keep on a trained checkpoint, which cannot be downloaded
here. This trains the checkpoint's own vocoder (`dec`, every weight) for a few hundred steps on the licensed speech
in `../shared/data/speech` (multi-resolution log-STFT L1, no GAN) from a small spectrogram encoder whose output is
held, per channel, at the mean and spread of the `z` that synthesis feeds the vocoder (a KL term), then writes the
checkpoint back in upstream's container, everything else unchanged. The result is no usable vocoder (half an hour
of training, no adversary: quiet, buzzy, smeared speech) but its filters pass speech's bands, so its output is
broadband like a trained one's: what the gate then keeps is an estimate of a trained checkpoint's choice, and its
speed is what that choice runs at (benchmarks/RESULTS.md, session 17). Torch, export side; 28 minutes on 2 cores
(full size, 500 steps):

    python benchmarks/trained_vocoder_proxy.py --sovits MODELS/sovits.pth --out PROXY/sovits.pth [--steps 500]

then export and quantise a bundle from PROXY (the other model files copied or linked beside it) as usual.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgevoice.audio import read_audio, resample_soxr
from edgevoice.gpt_sovits.spectrogram import linear_spectrogram
from edgevoice_export.gpt_sovits.checkpoints import load_sovits_checkpoint
from edgevoice_export.gpt_sovits.models.sovits import SoVITS
from edgevoice_export.gpt_sovits.random_model import save_sovits

SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"
CORPORA = ("ljspeech", "libritts", "librispeech", "cmu_arctic")
SEGMENT_FRAMES = 32  # 0.64 s at 50 frames a second: upstream's training segment (20480 samples)
STFT_SIZES = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) of the multi-resolution loss


def speech_clips(folder: Path, rate: int, hop: int, most: int) -> list[np.ndarray]:
    """Up to `most` clips of at least two segments, resampled to `rate`, peak-normalised to 0.9."""
    clips = []
    for corpus in CORPORA:
        for path in sorted((folder / corpus).rglob("*.wav")) if (folder / corpus).is_dir() else []:
            audio, clip_rate = read_audio(path)
            audio = resample_soxr(audio, clip_rate, rate)
            if audio.size > 2 * SEGMENT_FRAMES * hop and np.abs(audio).max() > 0:
                clips.append((0.9 * audio / np.abs(audio).max()).astype(np.float32))
            if len(clips) == most:
                return clips
    return clips


class SpectrogramEncoder(nn.Module):
    """Log linear spectrogram `[B, bins, F]` → `z` `[B, channels, F]` with synthesis' own per-channel mean and
    spread: a standardised code `u` (reparameterised, held near N(0, 1) by a KL term) times `scale` plus `offset`.
    Synthesis feeds the vocoder `z` whose channels sit at different constant levels (random text encoder and flow);
    a vocoder trained on centred inputs turns those levels into a DC offset ~4x its speech, so it learns on them."""

    def __init__(self, bins: int, offset: torch.Tensor, scale: torch.Tensor, hidden: int = 256):
        super().__init__()
        self.register_buffer("offset", offset.reshape(1, -1, 1))
        self.register_buffer("scale", scale.reshape(1, -1, 1))
        self.net = nn.Sequential(nn.Conv1d(bins, hidden, 5, padding=2), nn.LeakyReLU(0.1),
                                 nn.Conv1d(hidden, hidden, 5, padding=2), nn.LeakyReLU(0.1),
                                 nn.Conv1d(hidden, 2 * offset.numel(), 1))

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raw_mean, raw_spread = self.net(torch.log(spec.clamp_min(1e-5)) / 5).chunk(2, dim=1)
        mean = 3 * torch.tanh(raw_mean / 3)  # bounded: unbounded, the first steps' KL term explodes
        log_spread = 3 * torch.tanh(raw_spread / 3)
        code = mean + torch.randn_like(mean) * torch.exp(log_spread)
        return self.offset + self.scale * code, mean, log_spread


def stft_loss(audio: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution log-magnitude L1 plus spectral convergence."""
    total = audio.new_zeros(())
    for n_fft, hop in STFT_SIZES:
        window = torch.hann_window(n_fft)
        a, t = (torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-5)
                for x in (audio, target))
        # spectral convergence over the whole batch: one silent segment alone would blow it up
        total = total + F.l1_loss(torch.log(a), torch.log(t)) + torch.linalg.norm(t - a) / torch.linalg.norm(t)
    return total / len(STFT_SIZES)


def synthesis_inputs(model: SoVITS, ge: torch.Tensor, draws: int = 8, tokens: int = 100, seed: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`z` as synthesis feeds the vocoder for the voice `ge` (random codes and phones, noise scale 0.5) → its
    per-channel mean and spread over `draws` utterances, and the last draw's `z`."""
    generator = torch.Generator().manual_seed(seed)
    zs = []
    for _ in range(draws):
        codes = torch.randint(0, model.quantizer.codebook.embed.shape[0], (1, 1, tokens), generator=generator)
        phones = torch.randint(0, model.enc_p.text_embedding.num_embeddings, (1, tokens // 2), generator=generator)
        noise = 0.5 * torch.randn(1, model.dec.conv_pre.in_channels, 2 * tokens, generator=generator)
        with torch.no_grad():
            zs.append(model.latent(codes, phones, ge, noise))
    frames = torch.cat(zs, dim=-1)[0]
    return frames.mean(dim=1), frames.std(dim=1), zs[-1]


def batches(clips, specs, ges, hop: int, size: int, rng: np.random.Generator):
    while True:
        picks = rng.integers(0, len(clips), size)
        starts = [int(rng.integers(0, specs[i].shape[-1] - SEGMENT_FRAMES)) for i in picks]
        spec = torch.stack([specs[i][:, s:s + SEGMENT_FRAMES] for i, s in zip(picks, starts)])
        audio = torch.stack([torch.from_numpy(clips[i][s * hop:(s + SEGMENT_FRAMES) * hop])
                             for i, s in zip(picks, starts)])
        yield spec, torch.cat([ges[i] for i in picks]), audio


def spectrogram(clip: np.ndarray, data: dict) -> torch.Tensor:
    """The checkpoint's linear spectrogram `[bins, frames]` of a clip (its `data` section's sizes)."""
    magnitude = linear_spectrogram(clip, data["filter_length"], data["hop_length"], data["win_length"])
    return torch.from_numpy(magnitude[0, :, : clip.size // data["hop_length"]])


def train(model: SoVITS, clips: list[np.ndarray], data: dict, args) -> list[float]:
    hop = data["hop_length"]
    specs = [spectrogram(clip, data) for clip in clips]
    with torch.no_grad():
        ges = [model.reference_embedding(spec[None]) for spec in specs]
    offset, scale, _ = synthesis_inputs(model, ges[0])
    print(f"synthesis feeds the vocoder z with channel means spread {float(offset.std()):.3f} and channel spreads "
          f"{float(scale.mean()):.3f} on average", flush=True)
    encoder = SpectrogramEncoder(specs[0].shape[0], offset, scale)
    parameters = list(model.dec.parameters()) + list(encoder.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, betas=(0.8, 0.99))
    model.dec.train()
    losses, start = [], time.perf_counter()
    stream = batches(clips, specs, ges, hop, args.batch, np.random.default_rng(args.seed))
    for step in range(1, args.steps + 1):
        spec, ge, target = next(stream)
        z, mean, log_spread = encoder(spec)
        audio = model.dec(z, ge)[:, 0]
        kl = (0.5 * (mean ** 2 + torch.exp(2 * log_spread) - 1) - log_spread).mean()  # to N(0, 1)
        loss = stft_loss(audio, target) + args.kl * kl
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 10.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}: loss {np.mean(losses[-10:]):.3f} (kl {kl.item():.3f}), "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    model.dec.eval()
    return losses


def band_shares(audio: np.ndarray, rate: int) -> dict[str, float]:
    """Share of the waveform's energy per band: a near-DC output has almost all of it below 100 Hz."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / rate)
    edges = (0, 100, 1000, 4000, rate / 2 + 1)
    total = power.sum() or 1.0
    return {f"{lo:.0f}-{hi:.0f} Hz": float(power[(freqs >= lo) & (freqs < hi)].sum() / total)
            for lo, hi in zip(edges[:-1], edges[1:])}


def synthesis_audio(model: SoVITS, ge: torch.Tensor, rate: int) -> dict[str, float]:
    """What the vocoder makes of synthesis' own `z`: its level, DC share and band shares (DC removed)."""
    _, _, z = synthesis_inputs(model, ge, draws=1, seed=1)
    with torch.no_grad():
        audio = model.dec(z, ge)[0, 0].numpy().astype(np.float64)
    level = {"rms": float(np.sqrt(np.mean(audio ** 2))), "dc share": float(audio.mean() ** 2 / np.mean(audio ** 2))}
    return level | band_shares(audio - audio.mean(), rate)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sovits", required=True, help="a SoVITS checkpoint (make-test-model --size full)")
    parser.add_argument("--out", required=True, help="where to write the checkpoint with the trained vocoder")
    parser.add_argument("--speech", default=str(SHARED_SPEECH), help="folder of licensed speech (wav files)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl", type=float, default=0.01)
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    checkpoint = load_sovits_checkpoint(args.sovits)
    model = SoVITS.from_checkpoint(checkpoint)
    data = checkpoint.config["data"]
    rate = data["sampling_rate"]
    clips = speech_clips(Path(args.speech), rate, data["hop_length"], args.clips)
    if not clips:
        raise SystemExit(f"no speech clips found under {args.speech}")
    with torch.no_grad():  # a voice made from the first clip, as synthesis would
        ge = model.reference_embedding(spectrogram(clips[0], data)[None])
    print(f"{len(clips)} clips, {sum(c.size for c in clips) / rate:.0f} s of speech; the vocoder on synthesis' z "
          "before training: " + ", ".join(f"{k} {v:.4f}" for k, v in synthesis_audio(model, ge, rate).items()),
          flush=True)
    losses = train(model, clips, data, args)
    print("after training: " + ", ".join(f"{k} {v:.4f}" for k, v in synthesis_audio(model, ge, rate).items()))
    weights = dict(checkpoint.weights)
    for name, value in model.dec.state_dict().items():
        weights[f"dec.{name}"] = value.detach().numpy().astype(checkpoint.weights[f"dec.{name}"].dtype)
    save_sovits(Path(args.out), {k: torch.from_numpy(np.array(v)) for k, v in weights.items()},
                checkpoint.config, checkpoint.version)
    print(f"wrote {args.out} (vocoder trained {args.steps} steps, final loss {np.mean(losses[-10:]):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
