"""Stand-ins for tests, dry runs and the GPU scripts: never imported by llmops itself.

`nvml`: a fake NVML module (and a `pynvml` shim that hands it to a child process);
`gguf_shapes`: sparse GGUF files of real model shapes, which plan exactly like the real models.
They ship with the package so that scripts/ and a bare checkout's tests can use them; the
runtime modules must not (nothing outside llmops.testing imports it).
"""
