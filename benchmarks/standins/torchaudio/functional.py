from .transforms import Resample


def resample(audio, orig_freq, new_freq):
    return Resample(orig_freq, new_freq)(audio)
