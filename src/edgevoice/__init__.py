"""edgevoice: voice-cloning text-to-speech on ordinary CPUs."""
