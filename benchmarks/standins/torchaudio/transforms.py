from math import gcd

import torch
from scipy.signal import resample_poly


class Resample(torch.nn.Module):
    def __init__(self, orig_freq, new_freq):
        super().__init__()
        g = gcd(int(orig_freq), int(new_freq))
        self.up, self.down = int(new_freq) // g, int(orig_freq) // g

    def forward(self, audio):
        out = resample_poly(audio.detach().cpu().numpy(), self.up, self.down, axis=-1)
        return torch.from_numpy(out.astype("float32"))
