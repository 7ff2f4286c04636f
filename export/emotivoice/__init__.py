"""EmotiVoice on the torch side: upstream's files → our PyTorch reference → graphs → bundle."""
