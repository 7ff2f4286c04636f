"""`edgevoice serve`: an OpenAI-compatible speech server (FastAPI + uvicorn, the `serve` extra; torch-free).

* `config`   what a server serves and its limits (`ServerConfig`, `Limits`)
* `models`   the served models: a bounded pool of synthesizers per bundle, voices, family-neutral
* `formats`  wav / pcm / flac / mp3 / opus, whole or streamed
* `metrics`  Prometheus text exposition
* `app`      the FastAPI application (`create_app`) and its JSON errors
* `cli`      the `serve` command (the `edgevoice.commands` plug-in)
* `ray_app`  the same application as a Ray Serve deployment (the `cluster` extra)
"""
