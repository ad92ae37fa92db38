"""Audio core: frames, codecs, resampling, WAV I/O, VAD and DTMF."""
